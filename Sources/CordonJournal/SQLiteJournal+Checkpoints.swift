import CordonCore
import Foundation
import GRDB

extension SQLiteJournal {
    @discardableResult
    static func sign(db: Database, seq: Int64, hash: String, key: SigningKey) throws -> Checkpoint {
        let signature = try key.signNow(Checkpoint.message(seq: seq, hash: hash))
        let checkpoint = Checkpoint(seq: seq, hash: hash, time: Timestamp.string(Date()), signature: signature, keyFingerprint: key.fingerprint)
        try db.execute(
            sql: "INSERT OR REPLACE INTO checkpoints (seq, hash, time, signature, key) VALUES (?, ?, ?, ?, ?)",
            arguments: [seq, hash, checkpoint.time, signature, key.fingerprint])
        return checkpoint
    }

    @discardableResult
    public func checkpoint() async throws -> Checkpoint? {
        // Sign what was posted too.
        try await barrier()
        let blobs = evidence.takePending()
        let result: Checkpoint?
        do {
            result = try await pool.write { [key] db -> Checkpoint? in
                if !blobs.isEmpty { try EvidenceStore.insert(blobs, nextSeq: Self.head(db).seq + 1, db: db) }
                return try Self.checkpoint(db: db, key: key, writer: writerID)
            }
        } catch {
            evidence.restorePending(blobs)
            throw error
        }
        noteCheckpoint()
        return result
    }

    func checkpointNow() throws -> Checkpoint? {
        let result = try pool.write { [key, writerID] db in try Self.checkpoint(db: db, key: key, writer: writerID) }
        noteCheckpoint()
        return result
    }

    static func checkpoint(db: Database, key: SigningKey?, writer: Int64) throws -> Checkpoint? {
        guard let key else { throw Error(message: "the journal was opened read-only: it signs nothing") }
        let (seq, hash) = try head(db)
        let lastSigned = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM checkpoints") ?? 0
        if seq > lastSigned {
            let foreign = try unsignedByOthers(db, after: lastSigned, writer: writer)
            guard foreign <= maxUnsignedByOthers else {
                throw Error(
                    message: "the journal has \(foreign) records after its last checkpoint (seq \(lastSigned)) that this process did not write, "
                        + "more than a crash leaves (\(maxUnsignedByOthers)): they may have been added by hand, and Cordon will not sign them "
                        + "(see cordon journal verify)")
            }
            try sign(db: db, seq: seq, hash: hash, key: key)
        }
        return try latestCheckpoint(db)
    }

    /// The most unsigned records written by other openings (other processes, or records
    /// without a writer) a checkpoint may cover: what a crash leaves, since every writer
    /// signs once 100 records are unsigned. More were not written by Cordon, and a
    /// signature over them would make them look as if they had been.
    static let maxUnsignedByOthers = 100

    static func unsignedByOthers(_ db: Database, after lastSigned: Int64, writer: Int64) throws -> Int {
        try Int.fetchOne(
            db.cachedStatement(sql: "SELECT COUNT(*) FROM records WHERE seq > ? AND (writer IS NULL OR writer != ?)"),
            arguments: [lastSigned, writer]) ?? 0
    }

    static func latestCheckpoint(_ db: Database) throws -> Checkpoint? {
        try Row.fetchOne(db, sql: "SELECT * FROM checkpoints ORDER BY seq DESC LIMIT 1").flatMap(checkpoint)
    }

    /// A checkpoint row; nil for one with a value missing or of the wrong type (the table
    /// edited by hand), which no reader trusts or traps on.
    static func checkpoint(_ row: Row) -> Checkpoint? {
        guard let seq = row["seq"] as Int64?, let hash = row["hash"] as String?, let time = row["time"] as String?,
            let signature = row["signature"] as String?, let key = row["key"] as String?
        else { return nil }
        return Checkpoint(seq: seq, hash: hash, time: time, signature: signature, keyFingerprint: key)
    }

    /// After a checkpoint was committed (or found up to date): restarts the timer and
    /// tells whoever watches for checkpoints (the witnesses' publisher).
    func noteCheckpoint() {
        let watchers = shared.withLock { s in
            s.lastCheckpoint = .now
            return s.checkpointWatchers
        }
        for watcher in watchers { watcher() }
    }

    /// Calls `watcher` (on the writer's thread or the caller's: it must return at once)
    /// after every checkpoint this journal writes.
    public func watchCheckpoints(_ watcher: @escaping @Sendable () -> Void) {
        shared.withLock { s in s.checkpointWatchers.append(watcher) }
    }
}
