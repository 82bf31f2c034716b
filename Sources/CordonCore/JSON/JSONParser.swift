/// A JSON syntax error, with where it happened.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// Byte offset (0-based) from the start of the parsed text.
    public var offset: Int
    /// 1-based line and column (column counted in bytes).
    public var line: Int
    public var column: Int

    public var description: String { "line \(line), column \(column) (byte \(offset)): \(message)" }
}

/// A strict RFC 8259 JSON parser over UTF-8 bytes.
///
/// - Numbers keep their literal (`JSONNumber`), so nothing is rounded.
/// - Strings must be valid UTF-8; `\u` escapes must pair surrogates correctly.
/// - Duplicate keys in one object are rejected: two parsers reading one finding
///   differently is a classic way to smuggle a value past a filter.
/// - Nesting deeper than `maxDepth` is rejected instead of exhausting the stack.
public struct JSONParser {
    public static let defaultMaxDepth = 256

    /// Parses exactly one JSON value; only whitespace may follow it.
    public static func parse(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> JSONValue {
        var result: Result<JSONValue, JSONParseError> = .failure(JSONParseError(message: "", offset: 0, line: 1, column: 1))
        bytes.withUnsafeBufferPointer { buffer in
            var parser = Parser(buffer, maxDepth: maxDepth)
            result = Result { () throws(JSONParseError) -> JSONValue in try parser.parseDocument() }
        }
        return try result.get()
    }

    public static func parse(_ text: String, maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8), maxDepth: maxDepth)
    }

    /// Parses one JSON value starting at `start` (after optional whitespace) and returns it
    /// with the offset just past it. Used for streams of values.
    public static func parsePrefix(
        _ buffer: UnsafeBufferPointer<UInt8>, from start: Int = 0, maxDepth: Int = defaultMaxDepth
    ) throws(JSONParseError) -> (value: JSONValue, end: Int) {
        var parser = Parser(buffer, maxDepth: maxDepth)
        parser.position = start
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        return (value, parser.position)
    }

    /// Line and column (1-based) of a byte offset.
    public static func location(of offset: Int, in buffer: UnsafeBufferPointer<UInt8>) -> (line: Int, column: Int) {
        var line = 1
        var lineStart = 0
        var i = 0
        let end = min(offset, buffer.count)
        while i < end {
            if buffer[i] == UInt8(ascii: "\n") { line += 1; lineStart = i + 1 }
            i += 1
        }
        return (line, offset - lineStart + 1)
    }

    struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0
        let maxDepth: Int
        // The members and elements of the objects and arrays being parsed, innermost last:
        // each container is built once at its exact size when it closes, instead of
        // growing (and reallocating) member by member. Allocations were most of the cost
        // of parsing a finding.
        var keyStack: [String] = []
        var valueStack: [JSONValue] = []
        var elementStack: [JSONValue] = []

        init(_ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
            self.bytes = bytes
            self.maxDepth = maxDepth
            // Enough for the open containers of a typical finding (a few levels of a dozen
            // members), so that the stacks themselves rarely grow.
            keyStack.reserveCapacity(64)
            valueStack.reserveCapacity(64)
            elementStack.reserveCapacity(32)
        }

        func error(_ message: String, at offset: Int? = nil) -> JSONParseError {
            let at = offset ?? position
            let (line, column) = JSONParser.location(of: at, in: bytes)
            return JSONParseError(message: message, offset: at, line: line, column: column)
        }

        mutating func parseDocument() throws(JSONParseError) -> JSONValue {
            // A UTF-8 byte order mark is tolerated at the very start.
            if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { position = 3 }
            skipWhitespace()
            if position >= bytes.count { throw error("empty input: expected a JSON value") }
            let value = try parseValue(depth: 0)
            skipWhitespace()
            if position < bytes.count {
                throw error("unexpected \(describe(bytes[position])) after the end of the JSON value")
            }
            return value
        }

        @inline(__always) mutating func skipWhitespace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x0A, 0x0D, 0x09: position += 1
                default: return
                }
            }
        }

        func describe(_ byte: UInt8) -> String {
            if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
            return "byte 0x" + String(byte, radix: 16, uppercase: true)
        }

        mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
            guard position < bytes.count else { throw error("unexpected end of input: expected a value") }
            switch bytes[position] {
            case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
            case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
            case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
            case UInt8(ascii: "n"): try expectLiteral("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
            case let byte: throw error("unexpected \(describe(byte)): expected a value")
            }
        }

        mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
            let start = position
            let count = literal.utf8CodeUnitCount
            let p = literal.utf8Start
            var k = 0
            while k < count {
                guard position < bytes.count, bytes[position] == p[k] else {
                    throw error("invalid literal: expected '\(literal)'", at: start)
                }
                position += 1
                k += 1
            }
        }

        mutating func parseNumber() throws(JSONParseError) -> JSONNumber {
            let start = position
            guard let end = JSONScan.numberEnd(bytes, from: position) else {
                throw error("invalid number", at: start)
            }
            position = end
            if position < bytes.count, !JSONScan.isDelimiter(bytes[position]) {
                throw error("invalid number: unexpected \(describe(bytes[position]))")
            }
            return JSONNumber(validatedLiteral: String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self))
        }

        mutating func parseString() throws(JSONParseError) -> String {
            let start = position
            position += 1  // opening quote
            let contentStart = position
            var hasEscape = false
            var high: UInt8 = 0
            while true {
                guard position < bytes.count else { throw error("unterminated string", at: start) }
                let c = bytes[position]
                if c == UInt8(ascii: "\"") { break }
                if c == UInt8(ascii: "\\") { hasEscape = true; position += 2; continue }
                if c < 0x20 { throw error("control character \(describe(c)) in string: it must be escaped") }
                high |= c
                position += 1
            }
            let raw = UnsafeBufferPointer(rebasing: bytes[contentStart..<position])
            position += 1  // closing quote
            if !hasEscape {
                guard let s = Self.string(raw, ascii: high < 0x80) else {
                    throw error("string is not valid UTF-8", at: start)
                }
                return s
            }
            var decoded: [UInt8] = []
            decoded.reserveCapacity(raw.count)
            switch JSONScan.unescape(raw, into: &decoded) {
            case .success:
                guard let s = decoded.withUnsafeBufferPointer({ Self.string($0, ascii: false) }) else {
                    throw error("string is not valid UTF-8", at: start)
                }
                return s
            case .failure(let relativeOffset, let message):
                throw error(message, at: contentStart + relativeOffset)
            }
        }

        /// The string of UTF-8 bytes, or nil when they are not valid UTF-8. (The generic
        /// `String(validating:as:)` looks up type metadata on every call, which made it a
        /// tenth of the cost of decoding a finding; `String(decoding:as:)` is specialised
        /// for UTF-8 and replaces invalid sequences, so a result that differs from its
        /// input means the input was invalid.)
        @inline(__always)
        static func string(_ raw: UnsafeBufferPointer<UInt8>, ascii: Bool) -> String? {
            let s = String(decoding: raw, as: UTF8.self)
            if ascii { return s }
            var s2 = s
            return s2.withUTF8 { $0.elementsEqual(raw) } ? s : nil
        }

        mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
            if depth > maxDepth { throw error("nesting deeper than \(maxDepth) levels") }
            position += 1
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "]") { position += 1; return .array([]) }
            let base = elementStack.count
            while true {
                skipWhitespace()
                let element = try parseValue(depth: depth)
                elementStack.append(element)
                skipWhitespace()
                guard position < bytes.count else { throw error("unexpected end of input: expected ',' or ']'") }
                let c = bytes[position]
                position += 1
                if c == UInt8(ascii: ",") { continue }
                if c == UInt8(ascii: "]") {
                    let elements = Array(elementStack[base...])
                    elementStack.removeLast(elementStack.count - base)
                    return .array(elements)
                }
                throw error("unexpected \(describe(c)) in array: expected ',' or ']'", at: position - 1)
            }
        }

        mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
            if depth > maxDepth { throw error("nesting deeper than \(maxDepth) levels") }
            position += 1
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "}") { position += 1; return .object([:]) }
            let base = keyStack.count
            // Duplicate keys: a linear search among the few members of most objects, a set
            // once an object has many.
            var seen: Set<String>? = nil
            while true {
                skipWhitespace()
                guard position < bytes.count else { throw error("unexpected end of input: expected a key") }
                guard bytes[position] == UInt8(ascii: "\"") else {
                    throw error("unexpected \(describe(bytes[position])): expected a quoted key")
                }
                let keyStart = position
                let key = try parseString()
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else {
                    throw error("expected ':' after key \"\(key)\"")
                }
                position += 1
                skipWhitespace()
                let count = keyStack.count - base
                if count >= 16 {
                    if seen == nil { seen = Set(keyStack[base...]) }
                    if seen?.insert(key).inserted == false {
                        throw error("duplicate key \"\(key)\" in object", at: keyStart)
                    }
                } else if keyStack[base...].contains(key) {
                    throw error("duplicate key \"\(key)\" in object", at: keyStart)
                }
                let value = try parseValue(depth: depth)
                keyStack.append(key)
                valueStack.append(value)
                skipWhitespace()
                guard position < bytes.count else { throw error("unexpected end of input: expected ',' or '}'") }
                let c = bytes[position]
                position += 1
                if c == UInt8(ascii: ",") { continue }
                if c == UInt8(ascii: "}") {
                    let members = JSONObject(uncheckedUniqueKeys: Array(keyStack[base...]), values: Array(valueStack[base...]))
                    keyStack.removeLast(keyStack.count - base)
                    valueStack.removeLast(valueStack.count - base)
                    return .object(members)
                }
                throw error("unexpected \(describe(c)) in object: expected ',' or '}'", at: position - 1)
            }
        }
    }
}

/// Low-level scanning helpers shared by the parser and the pattern engine's flattener.
enum JSONScan {
    @inline(__always) static func isDelimiter(_ c: UInt8) -> Bool {
        switch c {
        case 0x20, 0x0A, 0x0D, 0x09, UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"): return true
        default: return false
        }
    }

    /// The end of a number literal starting at `start`, validated against the JSON grammar.
    @inline(__always)
    static func numberEnd(_ s: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        var i = start
        let n = s.count
        if i < n, s[i] == UInt8(ascii: "-") { i += 1 }
        guard i < n, isDigit(s[i]) else { return nil }
        if s[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while i < n, isDigit(s[i]) { i += 1 }
        }
        if i < n, s[i] == UInt8(ascii: ".") {
            i += 1
            guard i < n, isDigit(s[i]) else { return nil }
            while i < n, isDigit(s[i]) { i += 1 }
        }
        if i < n, s[i] | 0x20 == UInt8(ascii: "e") {
            i += 1
            if i < n, s[i] == UInt8(ascii: "+") || s[i] == UInt8(ascii: "-") { i += 1 }
            guard i < n, isDigit(s[i]) else { return nil }
            while i < n, isDigit(s[i]) { i += 1 }
        }
        return i
    }

    enum UnescapeResult { case success, failure(offset: Int, message: String) }

    /// Decodes the escapes of a string's content (without quotes) into UTF-8 bytes.
    static func unescape(_ raw: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) -> UnescapeResult {
        var i = 0
        let n = raw.count
        while i < n {
            let c = raw[i]
            if c != UInt8(ascii: "\\") {
                if c < 0x20 { return .failure(offset: i, message: "control character in string: it must be escaped") }
                out.append(c); i += 1; continue
            }
            guard i + 1 < n else { return .failure(offset: i, message: "unterminated escape sequence") }
            let e = raw[i + 1]
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                guard let high = hex4(raw, i + 2) else { return .failure(offset: i, message: "invalid \\u escape: expected four hex digits") }
                var scalar = high
                var consumed = 6
                if high >= 0xD800 && high <= 0xDBFF {
                    guard i + 7 < n, raw[i + 6] == UInt8(ascii: "\\"), raw[i + 7] == UInt8(ascii: "u"),
                        let low = hex4(raw, i + 8), low >= 0xDC00 && low <= 0xDFFF
                    else { return .failure(offset: i, message: "invalid \\u escape: unpaired UTF-16 surrogate") }
                    scalar = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                    consumed = 12
                } else if high >= 0xDC00 && high <= 0xDFFF {
                    return .failure(offset: i, message: "invalid \\u escape: unpaired UTF-16 surrogate")
                }
                appendUTF8(scalar, to: &out)
                i += consumed
                continue
            default:
                return .failure(offset: i, message: "invalid escape sequence '\\\(Character(Unicode.Scalar(e)))'")
            }
            i += 2
        }
        return .success
    }

    @inline(__always) static func hex4(_ s: UnsafeBufferPointer<UInt8>, _ at: Int) -> UInt32? {
        guard at + 4 <= s.count else { return nil }
        var v: UInt32 = 0
        for k in 0..<4 {
            let c = s[at + k]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - 48)
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - 87)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - 55)
            default: return nil
            }
            v = v << 4 | d
        }
        return v
    }

    static func appendUTF8(_ scalar: UInt32, to out: inout [UInt8]) {
        switch scalar {
        case 0..<0x80:
            out.append(UInt8(scalar))
        case 0x80..<0x800:
            out.append(UInt8(0xC0 | (scalar >> 6)))
            out.append(UInt8(0x80 | (scalar & 0x3F)))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | (scalar >> 12)))
            out.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (scalar & 0x3F)))
        default:
            out.append(UInt8(0xF0 | (scalar >> 18)))
            out.append(UInt8(0x80 | ((scalar >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (scalar & 0x3F)))
        }
    }
}
