import CordonCore
import Foundation
import GRDB

extension SQLiteJournal {
    /// Waits until everything appended or posted before is committed, so that reads see
    /// it: posted records still queued are flushed by an empty durable append behind
    /// them; records being written hold the writer connection, which this queues behind.
    func barrier() async throws {
        let (queued, reason) = postState()
        if let reason { throw Self.brokenError(reason) }
        if queued { _ = try await enqueue([]) }
        try await pool.writeWithoutTransaction { _ in }
    }

    private func postState() -> (queued: Bool, broken: String?) {
        shared.withLock { s in (s.unwrittenPosts > 0, s.broken) }
    }

    public func records(from seq: Int64, limit: Int) async throws -> [JournalRecord] {
        try await barrier()
        return try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.recordColumns) FROM records WHERE seq >= ? ORDER BY seq LIMIT ?", arguments: [seq, limit]).map(Self.record)
        }
    }

    public func records(incident: String) async throws -> [JournalRecord] {
        try await barrier()
        let oldIncidentIndex = self.oldIncidentIndex
        return try await pool.read { db in
            try Row.fetchAll(db, sql: Self.incidentRecordsQuery(old: oldIncidentIndex), arguments: [incident]).map(Self.record)
        }
    }

    /// The records of one incident, in order (through the index of `schemaVersion`, or
    /// of schema 0 when `old`).
    static func incidentRecordsQuery(old: Bool) -> String {
        old
            ? "SELECT \(recordColumns) FROM records WHERE incident = ? ORDER BY seq"
            : "SELECT \(recordColumns) FROM records WHERE first_seq = (SELECT first_seq FROM incidents WHERE id = ?) ORDER BY seq"
    }

    public func foreignRecords(after seq: Int64, limit: Int) async throws -> (records: [JournalRecord], through: Int64) {
        guard recordsWriters else { return ([], seq) }
        let writerID = self.writerID
        return try await pool.read { db in
            // One read transaction: the head and the records are of the same moment.
            let head = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM records") ?? 0
            let records = try Row.fetchAll(
                db, sql: "SELECT \(Self.recordColumns) FROM records WHERE seq > ? AND seq <= ? AND writer IS NOT ? ORDER BY seq LIMIT ?",
                arguments: [seq, head, writerID, limit]
            ).map(Self.record)
            return (records, records.count == limit ? records.last?.seq ?? head : max(seq, head))
        }
    }

    public func checkpoints(from seq: Int64 = 0) async throws -> [Checkpoint] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM checkpoints WHERE seq >= ? ORDER BY seq", arguments: [seq]).compactMap(Self.checkpoint)
        }
    }

    /// The number of records of one kind.
    public func count(kind: RecordKind) async throws -> Int {
        try await barrier()
        return try await pool.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM records WHERE kind = ?", arguments: [kind.rawValue]) ?? 0
        }
    }

    /// The distinct incident ids, in order of their first record.
    public func incidents() async throws -> [String] {
        try await barrier()
        let oldIncidentIndex = self.oldIncidentIndex
        return try await pool.read { db in
            try String.fetchAll(
                db,
                sql: oldIncidentIndex
                    ? "SELECT incident FROM records WHERE incident IS NOT NULL GROUP BY incident ORDER BY MIN(seq)"
                    : "SELECT id FROM incidents ORDER BY first_seq")
        }
    }

    /// The exact hashed bytes of records `from...to`.
    public func canonicalRecords(from: Int64, to: Int64) async throws -> [(seq: Int64, bytes: Data)] {
        try await barrier()
        return try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT seq, canonical FROM records WHERE seq BETWEEN ? AND ? ORDER BY seq", arguments: [from, to])
                .map { ($0["seq"], $0["canonical"]) }
        }
    }

    public func records(seqs: [Int64]) async throws -> [JournalRecord] {
        try await barrier()
        guard !seqs.isEmpty else { return [] }
        return try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.recordColumns) FROM records WHERE seq IN (\(seqs.map(String.init).joined(separator: ","))) ORDER BY seq")
                .map(Self.record)
        }
    }

    /// The writer connection's journal mode and synchronous level (2 = FULL).
    public func pragmas() async throws -> (journalMode: String, synchronous: Int, pageSize: Int, walAutocheckpoint: Int) {
        try await pool.write { db in
            (
                try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "", try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1,
                try Int.fetchOne(db, sql: "PRAGMA page_size") ?? -1, try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint") ?? -1
            )
        }
    }

    /// What `record(_:)` reads, in its order (by position: GRDB looks a column up by
    /// name with a lowercased copy of it, a few percent of replaying a journal).
    static let recordColumns = "seq, canonical, hash"

    static func record(_ row: Row) throws -> JournalRecord {
        let canonical: Data = row[1]
        let value = try JSONParser.parse(Array(canonical))
        guard let seq = value["seq"]?.numberValue?.intValue, let time = value["time"]?.stringValue,
            let kind = value["kind"]?.stringValue, let actor = value["actor"]?.stringValue,
            let prev = value["prev"]?.stringValue
        else {
            throw Error(message: "journal record \(row[0] as Int64) is malformed")
        }
        return JournalRecord(
            seq: Int64(seq), time: time, incident: value["incident"]?.stringValue, kind: RecordKind(rawValue: kind), actor: actor,
            data: value["data"] ?? .null, prev: prev, hash: row[2])
    }
}
