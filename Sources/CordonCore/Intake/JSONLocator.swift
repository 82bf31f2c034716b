import Foundation

// Locating problems: the byte offset (and line) in the input of each issue's record.
extension FindingDecoder {
    /// Gives each issue that has no byte offset yet the offset (and, for a whole
    /// document, the line) of the value its steps lead to in `bytes`: the record itself,
    /// or the envelope string it came out of.
    static func locate(_ issues: inout ArraySlice<DecodeIssue>, in bytes: ArraySlice<UInt8>, base: Int, countLines: Bool) {
        guard issues.contains(where: { $0.origin.byteOffset == nil }) else { return }
        var locator = JSONLocator(bytes)
        for i in issues.indices where issues[i].origin.byteOffset == nil {
            var steps = issues[i].origin.steps
            if let envelope = steps.firstIndex(of: .embedded) { steps = Array(steps[..<envelope]) }
            let offset = locator.offset(of: steps) ?? bytes.startIndex
            issues[i].origin.byteOffset = base + (offset - bytes.startIndex)
            if countLines { issues[i].origin.line = locator.line(at: offset) }
        }
    }

    static func locate(_ issues: inout [DecodeIssue], in bytes: ArraySlice<UInt8>, base: Int, countLines: Bool) {
        var all = issues[...]
        locate(&all, in: bytes, base: base, countLines: countLines)
        issues = Array(all)
    }
}

/// Finds where a value is in JSON text, following array indexes and object keys, without
/// building the values: the text was parsed already, so it is well-formed. The offsets of
/// a container's elements are found once, so locating many records of one large array
/// reads it once.
struct JSONLocator {
    let bytes: ArraySlice<UInt8>
    /// Container start → the offsets of its elements (arrays) or of its members' values
    /// by key (objects; the last of duplicate keys, the one parsed).
    private var elements: [Int: [Int]] = [:]
    private var members: [Int: [String: Int]] = [:]
    private var lineStarts: [Int]?

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
    }

    /// The index in `bytes` of the first byte of the value at `steps` (`.embedded` steps
    /// are not followed), or nil when the text does not have it.
    mutating func offset(of steps: [FindingOrigin.Step]) -> Int? {
        var i = Self.skipSpace(bytes, bytes.startIndex)
        for step in steps {
            guard i < bytes.endIndex else { return nil }
            switch step {
            case .embedded:
                return i
            case .index(let wanted):
                if elements[i] == nil { elements[i] = Self.elementOffsets(bytes, i) ?? [] }
                guard let list = elements[i], wanted < list.count else { return nil }
                i = list[wanted]
            case .key(let wanted):
                if members[i] == nil { members[i] = Self.memberOffsets(bytes, i) ?? [:] }
                guard let found = members[i]?[wanted] else { return nil }
                i = found
            }
        }
        return i
    }

    /// The line (from 1) of an index.
    mutating func line(at offset: Int) -> Int {
        if lineStarts == nil {
            var starts = [bytes.startIndex]
            for i in bytes.indices where bytes[i] == UInt8(ascii: "\n") { starts.append(i + 1) }
            lineStarts = starts
        }
        let starts = lineStarts ?? [bytes.startIndex]
        // The last line start at or before the offset.
        var low = 0, high = starts.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if starts[mid] <= offset { low = mid } else { high = mid - 1 }
        }
        return low + 1
    }

    static func elementOffsets(_ b: ArraySlice<UInt8>, _ start: Int) -> [Int]? {
        guard start < b.endIndex, b[start] == UInt8(ascii: "[") else { return nil }
        var out: [Int] = []
        var i = skipSpace(b, start + 1)
        while i < b.endIndex, b[i] != UInt8(ascii: "]") {
            out.append(i)
            guard let after = skipValue(b, i) else { return out }
            i = skipSpace(b, after)
            guard i < b.endIndex, b[i] == UInt8(ascii: ",") else { break }
            i = skipSpace(b, i + 1)
        }
        return out
    }

    static func memberOffsets(_ b: ArraySlice<UInt8>, _ start: Int) -> [String: Int]? {
        guard start < b.endIndex, b[start] == UInt8(ascii: "{") else { return nil }
        var out: [String: Int] = [:]
        var i = skipSpace(b, start + 1)
        while i < b.endIndex, b[i] == UInt8(ascii: "\"") {
            guard let keyEnd = skipString(b, i) else { return out }
            let key = decodeKey(b[i..<keyEnd])
            i = skipSpace(b, keyEnd)
            guard i < b.endIndex, b[i] == UInt8(ascii: ":") else { return out }
            i = skipSpace(b, i + 1)
            out[key] = i
            guard let after = skipValue(b, i) else { return out }
            i = skipSpace(b, after)
            guard i < b.endIndex, b[i] == UInt8(ascii: ",") else { break }
            i = skipSpace(b, i + 1)
        }
        return out
    }

    static func skipSpace(_ b: ArraySlice<UInt8>, _ from: Int) -> Int {
        var i = from
        while i < b.endIndex, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0A || b[i] == 0x0D { i += 1 }
        return i
    }

    /// The index after the string that starts at `from` (a quote).
    static func skipString(_ b: ArraySlice<UInt8>, _ from: Int) -> Int? {
        var i = from + 1
        while i < b.endIndex {
            switch b[i] {
            case UInt8(ascii: "\\"): i += 2
            case UInt8(ascii: "\""): return i + 1
            default: i += 1
            }
        }
        return nil
    }

    /// The index after the value that starts at `from`.
    static func skipValue(_ b: ArraySlice<UInt8>, _ from: Int) -> Int? {
        guard from < b.endIndex else { return nil }
        switch b[from] {
        case UInt8(ascii: "\""):
            return skipString(b, from)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            var i = from
            while i < b.endIndex {
                switch b[i] {
                case UInt8(ascii: "\""):
                    guard let after = skipString(b, i) else { return nil }
                    i = after
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { return i + 1 }
                default: break
                }
                i += 1
            }
            return nil
        default:
            var i = from
            while i < b.endIndex, !(b[i] == UInt8(ascii: ",") || b[i] == UInt8(ascii: "}") || b[i] == UInt8(ascii: "]") || b[i] <= 0x20) { i += 1 }
            return i
        }
    }

    /// A key's text: its escapes decoded when it has any.
    static func decodeKey(_ quoted: ArraySlice<UInt8>) -> String {
        let inner = quoted.dropFirst().dropLast()
        if !inner.contains(UInt8(ascii: "\\")) { return String(decoding: inner, as: UTF8.self) }
        return (try? JSONParser.parse(Array(quoted)))?.stringValue ?? String(decoding: inner, as: UTF8.self)
    }
}
