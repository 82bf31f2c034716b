/// A compiled `wildcard` value: literal segments separated by `*`, with `\*` and `\\`
/// standing for a literal star and backslash.
struct WildcardPattern: Sendable, Hashable {
    /// The literal pieces between stars (unescaped).
    let segments: [[UInt8]]
    /// The source text, for canonical keys and messages.
    let source: String

    /// Parses a wildcard value; throws a message for the field's error.
    init(_ text: String) throws(PatternError) {
        var segments: [[UInt8]] = [[]]
        var previousWasStar = false
        var iterator = Array(text.utf8).makeIterator()
        while let c = iterator.next() {
            if c == UInt8(ascii: "*") {
                if previousWasStar {
                    throw PatternError(path: "", message: "wildcard \"\(text)\" has consecutive '*' characters")
                }
                segments.append([])
                previousWasStar = true
                continue
            }
            previousWasStar = false
            if c == UInt8(ascii: "\\") {
                guard let escaped = iterator.next(), escaped == UInt8(ascii: "*") || escaped == UInt8(ascii: "\\") else {
                    throw PatternError(
                        path: "",
                        message: "wildcard \"\(text)\" has an invalid escape: only \\* and \\\\ are allowed")
                }
                segments[segments.count - 1].append(escaped)
                continue
            }
            segments[segments.count - 1].append(c)
        }
        self.segments = segments
        self.source = text
    }

    /// Whether the (unescaped) string matches.
    func matches(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        if segments.count == 1 { return bytesEqual(s, 0, s.count, segments[0]) }
        let first = segments[0]
        let last = segments[segments.count - 1]
        guard s.count >= first.count + last.count else { return false }
        guard bytesEqual(s, 0, first.count, first), bytesEqual(s, s.count - last.count, last.count, last) else {
            return false
        }
        var position = first.count
        let end = s.count - last.count
        var k = 1
        while k < segments.count - 1 {
            let segment = segments[k]
            guard let found = find(segment, in: s, from: position, to: end) else { return false }
            position = found + segment.count
            k += 1
        }
        return true
    }

    private func find(_ needle: [UInt8], in s: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Int? {
        if needle.isEmpty { return from }
        var i = from
        while i + needle.count <= to {
            if s[i] == needle[0], bytesEqual(s, i, needle.count, needle) { return i }
            i += 1
        }
        return nil
    }
}

@inline(__always)
func bytesEqual(_ s: UnsafeBufferPointer<UInt8>, _ start: Int, _ count: Int, _ other: [UInt8]) -> Bool {
    guard count == other.count, start + count <= s.count else { return false }
    return other.withUnsafeBufferPointer { o in
        var k = 0
        while k < count {
            if s[start + k] != o[k] { return false }
            k += 1
        }
        return true
    }
}
