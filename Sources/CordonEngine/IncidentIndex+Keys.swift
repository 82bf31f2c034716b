import CordonCore
import Crypto

extension IncidentIndex {
    /// 128 bits of a string's SHA-256: how the index keys findings (`id|updatedAt`) and
    /// incident keys (`playbook\0key`) without keeping their text, which would cost a
    /// hundred bytes or more each. Two different strings share one with a chance of 2⁻¹²⁸.
    struct Digest: Hashable, Sendable {
        let high: UInt64
        let low: UInt64

        init(_ text: String) {
            var hash = SHA256()
            var text = text
            text.withUTF8 { hash.update(bufferPointer: UnsafeRawBufferPointer($0)) }
            (high, low) = Self.words(hash.finalize())
        }

        /// The digest of a playbook's incident key.
        init(playbook: String, key: String) {
            var hash = SHA256()
            var playbook = playbook
            var key = key
            playbook.withUTF8 { hash.update(bufferPointer: UnsafeRawBufferPointer($0)) }
            hash.update(data: [0])
            key.withUTF8 { hash.update(bufferPointer: UnsafeRawBufferPointer($0)) }
            (high, low) = Self.words(hash.finalize())
        }

        private static func words(_ digest: SHA256.Digest) -> (UInt64, UInt64) {
            digest.withUnsafeBytes { ($0.loadUnaligned(fromByteOffset: 0, as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
        }
    }

    /// An incident's id as the index keeps it: in eight bytes when it is one the engine
    /// makes (`inc-` and 12 lowercase hex digits), else as its text.
    enum StoredID: Hashable, Sendable {
        case number(UInt64)
        case text(String)

        init(_ id: String) {
            let utf8 = id.utf8
            if utf8.count == 16, id.hasPrefix("inc-"),
                utf8.dropFirst(4).allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }),
                let number = UInt64(id.dropFirst(4), radix: 16)
            {
                self = .number(number)
            } else {
                self = .text(id)
            }
        }

        var id: String {
            switch self {
            case .number(let n):
                let hex = String(n, radix: 16)
                return "inc-" + String(repeating: "0", count: max(0, 12 - hex.count)) + hex
            case .text(let id): return id
            }
        }
    }

    /// The playbooks (by ordinal) that opened or attached an incident for a finding:
    /// usually one or two, kept inline.
    struct PlaybookSet: Sendable {
        private var first: Int32 = -1
        private var second: Int32 = -1
        private var more: [Int32] = []

        func contains(_ playbook: Int32) -> Bool { first == playbook || second == playbook || more.contains(playbook) }

        mutating func insert(_ playbook: Int32) {
            guard !contains(playbook) else { return }
            if first < 0 {
                first = playbook
            } else if second < 0 {
                second = playbook
            } else {
                more.append(playbook)
            }
        }
    }
}
