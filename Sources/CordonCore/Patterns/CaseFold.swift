/// `equals-ignore-case` as EventBridge matches it (aws/event-ruler 2.x
/// `EqualsIgnoreCaseParser`): each UTF-16 unit of the pattern stands for its own lower or
/// upper case in Java's root locale, taken alone — so `ß` matches `SS` but not `ẞ`, `ı`
/// matches `I`, the Kelvin sign matches only `k` and itself… — and the event's text is
/// taken as it is. A unit of a surrogate pair stands for `?` (how Java encodes a lone
/// surrogate in UTF-8), so a pattern with an emoji matches question marks, not the emoji.
///
/// An ASCII pattern is the common case: its letters match either case and nothing else,
/// which the matcher tests with one table lookup on the event's ASCII-lowercased bytes.
struct CaseFoldPattern: Sendable, Hashable {
    let source: String
    /// For each unit of the pattern, the UTF-8 texts it matches.
    let positions: [[[UInt8]]]

    init(_ source: String) {
        self.source = source
        positions = source.utf16.map { unit in
            guard let scalar = Unicode.Scalar(unit) else { return [[UInt8(ascii: "?")]] }
            let text = String(Character(scalar))
            var forms: [[UInt8]] = []
            for form in [text.lowercased(), text.uppercased()] where !forms.contains(Array(form.utf8)) {
                forms.append(Array(form.utf8))
            }
            return forms
        }
    }

    /// Whether the text is ASCII: then the ASCII-lowercased bytes stand for the pattern.
    static func isASCII(_ s: String) -> Bool { s.utf8.allSatisfy { $0 < 0x80 } }

    /// ASCII letters lowercased, every other byte kept.
    static func asciiLowercased(_ s: String) -> [UInt8] { s.utf8.map { $0 &- 65 < 26 ? $0 | 0x20 : $0 } }

    func matchesWhole(_ s: UnsafeBufferPointer<UInt8>) -> Bool { ends(s).contains(s.count) }

    func matchesPrefix(_ s: UnsafeBufferPointer<UInt8>) -> Bool { !ends(s).isEmpty }

    /// Where a match of the pattern from the start of `s` can end.
    private func ends(_ s: UnsafeBufferPointer<UInt8>) -> Set<Int> {
        var reachable: Set<Int> = [0]
        for forms in positions {
            var next: Set<Int> = []
            for offset in reachable {
                for form in forms where offset + form.count <= s.count {
                    if (0..<form.count).allSatisfy({ s[offset + $0] == form[$0] }) { next.insert(offset + form.count) }
                }
            }
            if next.isEmpty { return [] }
            reachable = next
        }
        return reachable
    }

    /// Whether `s` ends with a match of the pattern.
    func matchesSuffix(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        var reachable: Set<Int> = [s.count]
        for forms in positions.reversed() {
            var next: Set<Int> = []
            for end in reachable {
                for form in forms where form.count <= end {
                    let start = end - form.count
                    if (0..<form.count).allSatisfy({ s[start + $0] == form[$0] }) { next.insert(start) }
                }
            }
            if next.isEmpty { return false }
            reachable = next
        }
        return true
    }
}
