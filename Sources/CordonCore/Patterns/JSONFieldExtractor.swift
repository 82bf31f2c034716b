/// Reads the leaf values at a few paths out of raw JSON bytes without building a tree,
/// using the pattern engine's flattener (it skips everything else). For hot paths that
/// need a handful of fields from many documents, such as journal verification.
public struct JSONFieldExtractor: Sendable {
    let trie: FieldTrie
    var flattener: EventFlattener
    let pathCount: Int

    public init(paths: [[String]]) {
        trie = FieldTrie(paths: paths)
        flattener = EventFlattener(pathCount: paths.count)
        pathCount = paths.count
    }

    /// For each path (in the order given), its leaf values in document order.
    public mutating func extract(_ bytes: UnsafeRawBufferPointer) throws(EventMatchError) -> [[JSONValue]] {
        let input = bytes.bindMemory(to: UInt8.self)
        guard input.baseAddress != nil else { throw EventMatchError(message: "empty document", offset: 0) }
        try flattener.flatten(input, trie: trie)
        var out = [[JSONValue]](repeating: [], count: pathCount)
        for p in 0..<pathCount {
            var v = flattener.heads[p]
            while v >= 0 {
                let value = flattener.values[Int(v)]
                let raw = UnsafeBufferPointer(rebasing: input[Int(value.start)..<Int(value.end)])
                switch value.kind {
                case FlatValue.string:
                    if value.escaped {
                        var decoded: [UInt8] = []
                        _ = JSONScan.unescape(raw, into: &decoded)
                        out[p].append(.string(String(decoding: decoded, as: UTF8.self)))
                    } else {
                        out[p].append(.string(String(decoding: raw, as: UTF8.self)))
                    }
                case FlatValue.number: out[p].append(.number(JSONNumber(validatedLiteral: String(decoding: raw, as: UTF8.self))))
                case FlatValue.trueValue: out[p].append(.bool(true))
                case FlatValue.falseValue: out[p].append(.bool(false))
                default: out[p].append(.null)
                }
                v = value.next
            }
            out[p].reverse()
        }
        return out
    }
}
