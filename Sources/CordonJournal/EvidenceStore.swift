import CCordonSys
import CordonCore
import Crypto
import Foundation
import Synchronization

/// Evidence (raw findings, API responses, pre- and post-state) stored by content: the
/// file's name is the SHA-256 of its bytes, so a replaced or damaged file is detected.
public struct EvidenceStore: Sendable {
    public let directory: URL
    /// Known secrets are redacted from evidence before it is stored.
    public let secrets: SecretStore?
    /// When true, `put` does not fsync: the journal flushes the file system once before it
    /// commits any record that cites evidence (`syncIfNeeded`), so one flush serves a whole
    /// group commit instead of two fsyncs per file.
    public let deferredSync: Bool
    let unsynced: UnsyncedFlag

    final class UnsyncedFlag: Sendable {
        let value = Mutex(false)
    }

    public init(directory: URL, secrets: SecretStore? = nil, deferredSync: Bool = false) {
        self.directory = directory
        self.secrets = secrets
        self.deferredSync = deferredSync
        self.unsynced = UnsyncedFlag()
    }

    /// Makes every file written with deferred sync durable (one `syncfs`).
    public func syncIfNeeded() throws {
        guard unsynced.value.withLock({ pending in
            let was = pending
            pending = false
            return was
        }) else { return }
        let fd = open(directory.path, O_RDONLY)
        guard fd >= 0 else { throw SigningKey.Error(message: "cannot open \(directory.path) to sync evidence") }
        defer { close(fd) }
        guard cordon_syncfs(fd) == 0 else {
            unsynced.value.withLock { $0 = true }
            throw SigningKey.Error(message: "cannot sync evidence: \(String(cString: strerror(errno)))")
        }
    }

    public struct Reference: Sendable, Equatable {
        public var sha256: String
        public var size: Int
        public var mediaType: String
        /// What it is, e.g. `finding`, `pre-state`, `response`.
        public var name: String

        public var json: JSONValue {
            ["name": .string(name), "sha256": .string(sha256), "size": .number(JSONNumber(size)), "media_type": .string(mediaType)]
        }
    }

    public func path(for hash: String) -> URL {
        directory.appendingPathComponent(String(hash.prefix(2))).appendingPathComponent(hash)
    }

    /// Stores bytes durably (written to a temporary file, fsynced, renamed, directory
    /// fsynced); storing the same bytes again is a no-op.
    @discardableResult
    public func put(_ original: [UInt8], name: String, mediaType: String = "application/json") throws -> Reference {
        let bytes = secrets?.redact(original) ?? original
        let hash = SHA256.hash(data: bytes).hex
        let reference = Reference(sha256: hash, size: bytes.count, mediaType: mediaType, name: name)
        let target = path(for: hash)
        let fm = FileManager.default
        if fm.fileExists(atPath: target.path) { return reference }
        let folder = target.deletingLastPathComponent()
        try fm.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let temporary = folder.appendingPathComponent(".\(hash).\(UUID().uuidString).tmp")
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw SigningKey.Error(message: "cannot write evidence \(temporary.path): \(String(cString: strerror(errno)))") }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 {
                close(fd)
                unlink(temporary.path)
                throw SigningKey.Error(message: "cannot write evidence \(temporary.path): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        if !deferredSync { fsync(fd) }
        close(fd)
        if deferredSync { unsynced.value.withLock { $0 = true } }
        guard rename(temporary.path, target.path) == 0 else {
            unlink(temporary.path)
            throw SigningKey.Error(message: "cannot store evidence \(target.path): \(String(cString: strerror(errno)))")
        }
        if !deferredSync {
            let dirFD = open(folder.path, O_RDONLY)
            if dirFD >= 0 {
                fsync(dirFD)
                close(dirFD)
            }
        }
        return reference
    }

    public func get(_ hash: String) throws -> [UInt8] {
        Array(try Data(contentsOf: path(for: hash)))
    }

    /// nil when the file is present and its content matches its hash; else what is wrong.
    public func check(_ hash: String, size: Int?) -> String? {
        let url = path(for: hash)
        guard let data = try? Data(contentsOf: url) else { return "evidence \(hash) is missing (\(url.path))" }
        let actual = SHA256.hash(data: data).hex
        if actual != hash { return "evidence \(hash) was altered: its content hashes to \(actual)" }
        if let size, size != data.count { return "evidence \(hash) has \(data.count) bytes, the journal recorded \(size)" }
        return nil
    }
}

extension EvidenceStore: EvidenceSink {
    public func store(_ bytes: [UInt8], name: String, mediaType: String) throws -> JSONValue {
        try put(bytes, name: name, mediaType: mediaType).json
    }

    public func load(_ sha256: String) throws -> [UInt8] { try get(sha256) }
}
