import CordonCore
import Crypto
import Foundation
import GRDB
import Synchronization

/// Evidence (raw findings, API responses, pre- and post-state) stored by content: keyed by
/// the SHA-256 of its bytes, so a replaced or damaged item is detected.
///
/// Evidence lives in the journal's database (`evidence_items`; `evidence_content` in
/// journals before schema 3, still read), written in the same
/// transaction as the first record that cites it: it is exactly as durable as the
/// record, costs no file creation or extra fsync, and a crash can never leave a record
/// citing evidence that was not written. `put` only hashes and queues the bytes; the
/// journal's writer inserts everything queued at the start of its next commit, and
/// every record is appended after the evidence it cites was put.
///
/// Journals written by Cordon 0.2 kept evidence as files under `evidence/`; those are
/// still read (and verified) where the database has no copy.
public final class EvidenceStore: Sendable {
    /// Where Cordon 0.2 kept evidence files (read-only fallback).
    public let directory: URL
    /// Known secrets are redacted from evidence before it is stored.
    public let secrets: SecretStore?
    let database: (any DatabaseReader)?
    /// Put but not yet committed, by hash.
    private let pending = Mutex<[String: [UInt8]]>([:])

    public init(directory: URL, database: (any DatabaseReader)?, secrets: SecretStore? = nil) {
        self.directory = directory
        self.database = database
        self.secrets = secrets
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

    public struct Error: Swift.Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Where Cordon 0.2 kept an item's file.
    public func legacyPath(for hash: String) -> URL {
        directory.appendingPathComponent(String(hash.prefix(2))).appendingPathComponent(hash)
    }

    /// Stores bytes (after redacting known secrets); they become durable with the next
    /// journal commit, which includes every record that cites them. Storing the same bytes
    /// again is a no-op.
    @discardableResult
    public func put(_ original: [UInt8], name: String, mediaType: String = "application/json") throws -> Reference {
        let bytes = secrets?.redact(original) ?? original
        let hash = SHA256.hash(data: bytes).hex
        pending.withLock { queued in
            if queued[hash] == nil { queued[hash] = bytes }
        }
        return Reference(sha256: hash, size: bytes.count, mediaType: mediaType, name: name)
    }

    /// Everything put since the last call, for the journal's writer to insert.
    func takePending() -> [String: [UInt8]] {
        pending.withLock { queued in
            let taken = queued
            queued = [:]
            return taken
        }
    }

    /// Gives back what a failed commit did not write.
    func restorePending(_ items: [String: [UInt8]]) {
        pending.withLock { queued in queued.merge(items) { current, _ in current } }
    }

    /// Records per evidence bucket, as a shift of the seq: 1,024. A bucket's index
    /// entries fill a page or two of 16 KiB, so a commit's evidence lands on the last
    /// pages of the index instead of one random page per item.
    static let bucketShift: Int64 = 10

    /// The bucket of evidence committed with (or before) a record of this seq.
    static func bucket(ofSeq seq: Int64) -> Int64 { max(0, seq) >> bucketShift }

    /// Inserts queued evidence within the writer's transaction, in the bucket of
    /// `nextSeq`, the seq the next record will have: every record citing it has that seq
    /// or a later one. The same bytes put again in a later bucket are stored again
    /// (harmless: content is checked by its hash, and a lookup takes the newest copy at
    /// or before the citing record).
    static func insert(_ items: [String: [UInt8]], nextSeq: Int64, db: Database) throws {
        guard !items.isEmpty else { return }
        let statement = try db.cachedStatement(sql: "INSERT OR IGNORE INTO evidence_items (bucket, hash, bytes) VALUES (?, ?, ?)")
        for (hash, bytes) in items { try statement.execute(arguments: [bucket(ofSeq: nextSeq), hash, Data(bytes)]) }
    }

    /// The bytes stored under a hash, or nil when there are none.
    /// - Parameters:
    ///   - seq: the seq of a record citing it, where known: evidence is looked for in
    ///     that record's bucket, then in earlier ones (usually found at once); without
    ///     it, from the newest bucket down.
    ///   - db: a connection already open (inside a read), else the store's own.
    public func find(_ hash: String, citedAt seq: Int64? = nil, in db: Database? = nil) throws -> [UInt8]? {
        if let queued = pending.withLock({ $0[hash] }) { return queued }
        if let db {
            if let data = try Self.find(hash, citedAt: seq, db: db) { return Array(data) }
        } else if let database {
            if let data = try database.read({ db in try Self.find(hash, citedAt: seq, db: db) }) { return Array(data) }
        }
        if let data = try? Data(contentsOf: legacyPath(for: hash)) { return Array(data) }
        return nil
    }

    /// The lowest and highest bucket, each read off one end of the index (`MIN` and
    /// `MAX` together in one query would scan all of it).
    static let bucketRangeQuery = "SELECT (SELECT MIN(bucket) FROM evidence_items), (SELECT MAX(bucket) FROM evidence_items)"
    static let probeQuery = "SELECT bytes FROM evidence_items WHERE bucket = ? AND hash = ?"

    private static func find(_ hash: String, citedAt seq: Int64?, db: Database) throws -> Data? {
        // Journals before schema 3, and evidence written by earlier builds.
        let earlier = try db.cachedStatement(sql: "SELECT bytes FROM evidence_content WHERE hash = ?")
        if let data = try Data.fetchOne(earlier, arguments: [hash]) { return data }
        guard try db.tableExists("evidence_items"),
            let range = try Row.fetchOne(db, sql: bucketRangeQuery),
            let low = range[0] as Int64?, let high = range[1] as Int64?
        else { return nil }
        let probe = try db.cachedStatement(sql: probeQuery)
        var bucket = min(high, seq.map(bucket(ofSeq:)) ?? high)
        while bucket >= low {
            if let data = try Data.fetchOne(probe, arguments: [bucket, hash]) { return data }
            bucket -= 1
        }
        return nil
    }

    public func get(_ hash: String, citedAt seq: Int64? = nil) throws -> [UInt8] {
        guard let bytes = try find(hash, citedAt: seq) else { throw Error(message: "evidence \(hash) is missing") }
        return bytes
    }

    /// nil when the item is present and its content matches its hash; else what is wrong.
    public func check(_ hash: String, size: Int?, citedAt seq: Int64? = nil, in db: Database? = nil) -> String? {
        let bytes: [UInt8]
        do {
            guard let found = try find(hash, citedAt: seq, in: db) else { return "evidence \(hash) is missing" }
            bytes = found
        } catch {
            return "evidence \(hash) cannot be read: \(error)"
        }
        let actual = SHA256.hash(data: bytes).hex
        if actual != hash { return "evidence \(hash) was altered: its content hashes to \(actual)" }
        if let size, size != bytes.count { return "evidence \(hash) has \(bytes.count) bytes, the journal recorded \(size)" }
        return nil
    }
}

extension EvidenceStore: EvidenceSink {
    public func store(_ bytes: [UInt8], name: String, mediaType: String) throws -> JSONValue {
        try put(bytes, name: name, mediaType: mediaType).json
    }

    public func load(_ sha256: String) throws -> [UInt8] { try get(sha256) }

    public func load(_ sha256: String, citedAt seq: Int64) throws -> [UInt8] { try get(sha256, citedAt: seq) }
}
