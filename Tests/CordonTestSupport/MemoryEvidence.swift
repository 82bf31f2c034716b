import CordonCore
import Crypto
import Synchronization

/// An `EvidenceSink` kept in memory, for tests: items by the SHA-256 of their bytes,
/// redacted first when given secrets, and cited by the same reference `EvidenceStore`
/// returns (`name`, `sha256`, `size`, `media_type`). Everything stored is at once as
/// durable as the records of a `MemoryJournal`.
public final class MemoryEvidence: EvidenceSink {
    public let secrets: SecretStore?
    private let items = Mutex<[String: [UInt8]]>([:])

    public struct Error: Swift.Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public init(secrets: SecretStore? = nil) {
        self.secrets = secrets
    }

    public func store(_ original: [UInt8], name: String, mediaType: String) throws -> JSONValue {
        let bytes = secrets?.redact(original) ?? original
        let hash = SHA256.hash(data: bytes).hex
        items.withLock { stored in
            if stored[hash] == nil { stored[hash] = bytes }
        }
        return ["name": .string(name), "sha256": .string(hash), "size": .number(JSONNumber(bytes.count)), "media_type": .string(mediaType)]
    }

    public func load(_ sha256: String) throws -> [UInt8] {
        guard let bytes = items.withLock({ $0[sha256] }) else { throw Error(message: "evidence \(sha256) is missing") }
        return bytes
    }

    /// The hashes of everything stored.
    public var hashes: Set<String> { items.withLock { Set($0.keys) } }
}
