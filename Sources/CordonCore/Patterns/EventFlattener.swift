/// A malformed event given to the matcher, with the byte offset of the problem.
public struct EventMatchError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var offset: Int
    public var description: String { "byte \(offset): \(message)" }
}

/// One leaf value of an event at a path some pattern reads.
struct FlatValue {
    static let string: UInt8 = 1
    static let number: UInt8 = 2
    static let trueValue: UInt8 = 3
    static let falseValue: UInt8 = 4
    static let null: UInt8 = 5

    var kind: UInt8
    var escaped: Bool
    /// Byte range in the event: a string's content without quotes, or a literal.
    var start: Int32
    var end: Int32
    /// The arrays the value sits in (outermost first), as a slice of `trailStorage`.
    var trailStart: Int32
    var trailCount: Int32
    /// The previous value at the same path, or -1.
    var next: Int32
}

/// Where a value sits in one event array: the array's id (unique in the event) and the index.
struct TrailEntry: Equatable {
    var array: Int32
    var index: Int32
}

/// Reads an event's raw JSON bytes and keeps only the leaf values at paths some pattern
/// mentions, skipping everything else without building a tree. The whole text is still
/// checked for JSON structure (brackets, commas, literals, number syntax, string ends).
struct EventFlattener: Sendable {
    var values: [FlatValue] = []
    var heads: [Int32]
    var touched: [Int32] = []
    var trail: [TrailEntry] = []
    var trailStorage: [TrailEntry] = []
    var nextArrayID: Int32 = 0
    var keyScratch: [UInt8] = []

    static let maxDepth = 256

    init(pathCount: Int) {
        heads = [Int32](repeating: -1, count: pathCount)
        values.reserveCapacity(64)
        touched.reserveCapacity(32)
    }

    mutating func reset() {
        for p in touched { heads[Int(p)] = -1 }
        touched.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        trail.removeAll(keepingCapacity: true)
        trailStorage.removeAll(keepingCapacity: true)
        nextArrayID = 0
    }

    mutating func flatten(_ input: UnsafeBufferPointer<UInt8>, trie: FieldTrie) throws(EventMatchError) {
        reset()
        // Offsets are kept in 32 bits.
        guard input.count < Int(Int32.max) else { throw EventMatchError(message: "an event of \(input.count) bytes is too large to match", offset: 0) }
        var cursor = Cursor(input: input)
        if input.count >= 3, input[0] == 0xEF, input[1] == 0xBB, input[2] == 0xBF { cursor.pos = 3 }
        cursor.skipWhitespace()
        guard cursor.pos < input.count else { throw cursor.error("empty event: expected a JSON object") }
        guard input[cursor.pos] == UInt8(ascii: "{") else {
            throw cursor.error("an event must be a JSON object")
        }
        try parseObject(&cursor, node: 0, trie: trie, depth: 1)
        cursor.skipWhitespace()
        if cursor.pos < input.count { throw cursor.error("unexpected data after the end of the event") }
    }

    private mutating func parseObject(_ c: inout Cursor, node: Int, trie: FieldTrie, depth: Int) throws(EventMatchError) {
        if depth > EventFlattener.maxDepth { throw c.error("nesting deeper than \(EventFlattener.maxDepth) levels") }
        c.pos += 1
        c.skipWhitespace()
        if c.pos < c.count, c.input[c.pos] == UInt8(ascii: "}") { c.pos += 1; return }
        while true {
            c.skipWhitespace()
            guard c.pos < c.count, c.input[c.pos] == UInt8(ascii: "\"") else { throw c.error("expected a quoted key") }
            let (keyStart, keyEnd, escaped) = try c.scanString()
            let child: Int
            if !escaped {
                child = trie.child(of: node, key: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(c.input)[keyStart..<keyEnd]))
            } else {
                keyScratch.removeAll(keepingCapacity: true)
                if case .failure(let offset, let message) = JSONScan.unescape(
                    UnsafeBufferPointer(rebasing: c.input[keyStart..<keyEnd]), into: &keyScratch)
                {
                    throw EventMatchError(message: message, offset: keyStart + offset)
                }
                child = keyScratch.withUnsafeBytes { trie.child(of: node, key: $0) }
            }
            c.skipWhitespace()
            guard c.pos < c.count, c.input[c.pos] == UInt8(ascii: ":") else { throw c.error("expected ':' after a key") }
            c.pos += 1
            c.skipWhitespace()
            if child >= 0 {
                try parseValue(&c, node: child, trie: trie, depth: depth)
            } else {
                try c.skipValue(depth: depth)
            }
            c.skipWhitespace()
            guard c.pos < c.count else { throw c.error("unexpected end of input: expected ',' or '}'") }
            let b = c.input[c.pos]
            c.pos += 1
            if b == UInt8(ascii: ",") { continue }
            if b == UInt8(ascii: "}") { return }
            c.pos -= 1
            throw c.error("expected ',' or '}' in an object")
        }
    }

    private mutating func parseValue(_ c: inout Cursor, node: Int, trie: FieldTrie, depth: Int) throws(EventMatchError) {
        guard c.pos < c.count else { throw c.error("unexpected end of input: expected a value") }
        let pathID = trie.nodes[node].pathID
        switch c.input[c.pos] {
        case UInt8(ascii: "{"):
            if trie.nodes[node].childCount > 0 {
                try parseObject(&c, node: node, trie: trie, depth: depth + 1)
            } else {
                try c.skipValue(depth: depth)
            }
        case UInt8(ascii: "["):
            try parseArray(&c, node: node, trie: trie, depth: depth + 1)
        case UInt8(ascii: "\""):
            let (start, end, escaped) = try c.scanString()
            if pathID >= 0 { try emit(c, pathID, FlatValue.string, start, end, escaped) }
        case UInt8(ascii: "t"):
            try c.literal("true")
            if pathID >= 0 { try emit(c, pathID, FlatValue.trueValue, c.pos - 4, c.pos, false) }
        case UInt8(ascii: "f"):
            try c.literal("false")
            if pathID >= 0 { try emit(c, pathID, FlatValue.falseValue, c.pos - 5, c.pos, false) }
        case UInt8(ascii: "n"):
            try c.literal("null")
            if pathID >= 0 { try emit(c, pathID, FlatValue.null, c.pos - 4, c.pos, false) }
        default:
            let start = c.pos
            try c.number()
            if pathID >= 0 { try emit(c, pathID, FlatValue.number, start, c.pos, false) }
        }
    }

    private mutating func parseArray(_ c: inout Cursor, node: Int, trie: FieldTrie, depth: Int) throws(EventMatchError) {
        if depth > EventFlattener.maxDepth { throw c.error("nesting deeper than \(EventFlattener.maxDepth) levels") }
        c.pos += 1
        let arrayID = nextArrayID
        nextArrayID += 1
        c.skipWhitespace()
        if c.pos < c.count, c.input[c.pos] == UInt8(ascii: "]") { c.pos += 1; return }
        var index: Int32 = 0
        while true {
            c.skipWhitespace()
            // Only objects and arrays in an array tie the values beneath them to one
            // element; the scalar elements of one array are independent (as in EventBridge).
            if c.pos < c.count, c.input[c.pos] == UInt8(ascii: "{") || c.input[c.pos] == UInt8(ascii: "[") {
                trail.append(TrailEntry(array: arrayID, index: index))
                try parseValue(&c, node: node, trie: trie, depth: depth)
                trail.removeLast()
            } else {
                try parseValue(&c, node: node, trie: trie, depth: depth)
            }
            index += 1
            c.skipWhitespace()
            guard c.pos < c.count else { throw c.error("unexpected end of input: expected ',' or ']'") }
            let b = c.input[c.pos]
            c.pos += 1
            if b == UInt8(ascii: ",") { continue }
            if b == UInt8(ascii: "]") { return }
            c.pos -= 1
            throw c.error("expected ',' or ']' in an array")
        }
    }

    /// Array positions kept for one event at most (8 bytes each): every value kept carries
    /// the position in each array around it, so values deep in nested arrays cost their
    /// depth each. An event beyond this (a crafted one: 1 MB of values 250 arrays deep
    /// would need over 100 million) is refused instead of taking gigabytes.
    static let maxTrailEntries = 4 << 20

    @inline(__always)
    private mutating func emit(_ c: Cursor, _ pathID: Int32, _ kind: UInt8, _ start: Int, _ end: Int, _ escaped: Bool) throws(EventMatchError) {
        let p = Int(pathID)
        let head = heads[p]
        if head < 0 { touched.append(pathID) }
        var trailStart: Int32 = 0
        let trailCount = Int32(trail.count)
        if trailCount > 0 {
            guard trailStorage.count + trail.count <= Self.maxTrailEntries else {
                throw c.error("values nested in arrays too deeply to match: more than \(Self.maxTrailEntries) array positions to keep")
            }
            trailStart = Int32(trailStorage.count)
            trailStorage.append(contentsOf: trail)
        }
        heads[p] = Int32(values.count)
        values.append(
            FlatValue(
                kind: kind, escaped: escaped, start: Int32(start), end: Int32(end),
                trailStart: trailStart, trailCount: trailCount, next: head))
    }
}

/// A position in raw JSON bytes with fast, validating skips.
struct Cursor {
    let input: UnsafeBufferPointer<UInt8>
    let count: Int
    var pos = 0

    init(input: UnsafeBufferPointer<UInt8>) {
        self.input = input
        self.count = input.count
    }

    func error(_ message: String) -> EventMatchError { EventMatchError(message: message, offset: pos) }

    @inline(__always) mutating func skipWhitespace() {
        while pos < count {
            switch input[pos] {
            case 0x20, 0x0A, 0x0D, 0x09: pos += 1
            default: return
            }
        }
    }

    /// Scans a string starting at its opening quote; returns the content range and
    /// whether it holds escapes. Leaves `pos` after the closing quote.
    @inline(__always)
    mutating func scanString() throws(EventMatchError) -> (Int, Int, Bool) {
        let opening = pos
        pos += 1
        let start = pos
        var escaped = false
        let base = UnsafeRawPointer(input.baseAddress!)
        while true {
            // 16 bytes at a time to skip plain text; on a hit, 8-byte SWAR finds the byte.
            while pos + 16 <= count {
                let v = base.loadUnaligned(fromByteOffset: pos, as: SIMD16<UInt8>.self)
                let special =
                    (v .== SIMD16<UInt8>(repeating: 0x22)) .| (v .== SIMD16<UInt8>(repeating: 0x5C))
                    .| (v .< SIMD16<UInt8>(repeating: 0x20))
                if any(special) { break }
                pos += 16
            }
            while pos + 8 <= count {
                let w = base.loadUnaligned(fromByteOffset: pos, as: UInt64.self)
                let q = w ^ 0x2222_2222_2222_2222
                let b = w ^ 0x5C5C_5C5C_5C5C_5C5C
                let m =
                    (((q &- 0x0101_0101_0101_0101) & ~q) | ((b &- 0x0101_0101_0101_0101) & ~b)
                        | ((w &- 0x2020_2020_2020_2020) & ~w)) & 0x8080_8080_8080_8080
                if m != 0 {
                    pos += m.trailingZeroBitCount >> 3
                    break
                }
                pos += 8
            }
            guard pos < count else { throw EventMatchError(message: "unterminated string", offset: opening) }
            let c = input[pos]
            if c == UInt8(ascii: "\"") {
                let end = pos
                pos += 1
                return (start, end, escaped)
            }
            if c == UInt8(ascii: "\\") {
                escaped = true
                guard pos + 1 < count else { throw EventMatchError(message: "unterminated string", offset: opening) }
                switch input[pos + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    pos += 2
                case UInt8(ascii: "u"):
                    guard JSONScan.hex4(input, pos + 2) != nil else { throw error("invalid \\u escape") }
                    pos += 6
                default:
                    throw error("invalid escape sequence in string")
                }
                continue
            }
            if c < 0x20 { throw error("control character in string: it must be escaped") }
            pos += 1
        }
    }

    mutating func literal(_ text: StaticString) throws(EventMatchError) {
        let n = text.utf8CodeUnitCount
        guard pos + n <= count, memcmp(input.baseAddress! + pos, text.utf8Start, n) == 0 else {
            throw error("invalid literal: expected '\(text)'")
        }
        pos += n
        if pos < count, !JSONScan.isDelimiter(input[pos]) { throw error("invalid literal: expected '\(text)'") }
    }

    mutating func number() throws(EventMatchError) {
        guard let end = JSONScan.numberEnd(input, from: pos) else {
            throw error(pos < count && (input[pos] == UInt8(ascii: "-") || isDigit(input[pos])) ? "invalid number" : "unexpected character: expected a value")
        }
        pos = end
        if pos < count, !JSONScan.isDelimiter(input[pos]) { throw error("invalid number") }
    }

    /// Skips one value that no pattern reads. Scalars are checked fully; objects and
    /// arrays are skipped fast: strings (with their escapes) and the nesting of brackets
    /// are followed exactly, the rest of their grammar is left to the intake parser,
    /// which validates every finding before it reaches the matcher.
    mutating func skipValue(depth: Int) throws(EventMatchError) {
        guard pos < count else { throw error("unexpected end of input: expected a value") }
        switch input[pos] {
        case UInt8(ascii: "\""):
            _ = try scanString()
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            try skipContainer(depth: depth)
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default: try number()
        }
    }

    /// Skips an object or array starting at its opening bracket.
    mutating func skipContainer(depth: Int) throws(EventMatchError) {
        // Bit k of `kinds` is 1 when the container open at nesting level k is an array.
        var kinds: UInt64 = 0
        var level = 0
        let opening = pos
        let base = UnsafeRawPointer(input.baseAddress!)
        while pos < count {
            let c = input[pos]
            switch c {
            case UInt8(ascii: "\""):
                // A string: find the closing quote, stepping over escapes.
                pos += 1
                while true {
                    while pos + 8 <= count {
                        let w = base.loadUnaligned(fromByteOffset: pos, as: UInt64.self)
                        let q = w ^ 0x2222_2222_2222_2222
                        let b = w ^ 0x5C5C_5C5C_5C5C_5C5C
                        let m = (((q &- 0x0101_0101_0101_0101) & ~q) | ((b &- 0x0101_0101_0101_0101) & ~b))
                            & 0x8080_8080_8080_8080
                        if m != 0 {
                            pos += m.trailingZeroBitCount >> 3
                            break
                        }
                        pos += 8
                    }
                    guard pos < count else { throw EventMatchError(message: "unterminated string", offset: opening) }
                    let s = input[pos]
                    if s == UInt8(ascii: "\"") { pos += 1; break }
                    pos += s == UInt8(ascii: "\\") ? 2 : 1
                }
                continue
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                if depth + level + 1 > EventFlattener.maxDepth || level >= 64 {
                    throw error("nesting deeper than \(min(EventFlattener.maxDepth, depth + 64)) levels")
                }
                if c == UInt8(ascii: "[") { kinds |= 1 << UInt64(level) } else { kinds &= ~(1 << UInt64(level)) }
                level += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                level -= 1
                let isArray = kinds & (1 << UInt64(level)) != 0
                guard isArray == (c == UInt8(ascii: "]")) else {
                    throw error("mismatched '\(Character(Unicode.Scalar(c)))'")
                }
                if level == 0 {
                    pos += 1
                    return
                }
            default:
                break
            }
            pos += 1
        }
        throw EventMatchError(message: "unexpected end of input: unclosed object or array", offset: opening)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
