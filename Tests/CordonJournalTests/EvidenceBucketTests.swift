import CordonCore
import Crypto
import Foundation
import GRDB
import Testing

@testable import CordonJournal

/// Evidence in `evidence_items` (schema 3), indexed by a bucket that grows with the
/// journal; evidence of earlier schemas in `evidence_content`, still read.
@Suite struct EvidenceBucketTests {
    static let shift = Int(EvidenceStore.bucketShift)

    /// Appends `count` records citing nothing.
    func filler(_ journal: SQLiteJournal, _ count: Int) async throws {
        _ = try await journal.append((0..<count).map { i in NewRecord(kind: "test", actor: "cordon/test", data: ["i": .number(JSONNumber(i))]) })
    }

    func buckets(_ dir: DataDirectory, _ hash: String) throws -> [Int64] {
        let db = try DatabaseQueue(path: dir.journal.path)
        return try db.read { db in try Int64.fetchAll(db, sql: "SELECT bucket FROM evidence_items WHERE hash = ? ORDER BY bucket", arguments: [hash]) }
    }

    @Test func evidencePutLongBeforeTheRecordCitingItIsFoundAndVerified() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        let bytes = Array(#"{"response":"long action"}"#.utf8)
        let ref = try journal.evidence.put(bytes, name: "response")
        // Committed with the next records, then cited three buckets later (an action
        // that took long), and the same bytes put again a bucket later and cited at once.
        try await filler(journal, 1)
        try await filler(journal, 3 << Self.shift)
        let late = try await journal.append(NewRecord(kind: "test", actor: "cordon/test", data: ["evidence": [ref.json]]))
        #expect(late.seq >> Self.shift >= 3)
        #expect(try journal.evidence.get(ref.sha256, citedAt: late.seq) == bytes)
        #expect(try journal.evidence.get(ref.sha256) == bytes)
        #expect(try journal.evidence.find(String(repeating: "0", count: 64), citedAt: late.seq) == nil)
        try await filler(journal, 1 << Self.shift)
        _ = try journal.evidence.put(bytes, name: "response")
        let again = try await journal.append(NewRecord(kind: "test", actor: "cordon/test", data: ["evidence": [ref.json]]))
        try await journal.close()
        #expect(try buckets(dir, ref.sha256) == [0, again.seq >> Self.shift])
        #expect(try JournalVerifier(directory: dir).verify().isValid)

        // A lookup takes the newest copy at or before the citing record: altering the
        // first copy is found at the record that cites it there.
        try tamper(dir, "UPDATE evidence_items SET bytes = ? WHERE hash = ? AND bucket = 0", [Data("forged".utf8), ref.sha256])
        let report = try JournalVerifier(directory: dir).verify()
        #expect(report.problems.contains { $0.seq == late.seq && $0.message.contains("evidence \(ref.sha256) was altered") })
    }

    /// Every lookup searches the index, never scans it: `MIN` and `MAX` in one query made
    /// `journal verify` scan the whole index for every item (203 s for 50,000 findings).
    @Test func lookupsSearchTheIndexAndScanNothing() async throws {
        let dir = temporaryDataDirectory()
        try await SQLiteJournal(directory: dir).close()
        let db = try DatabaseQueue(path: dir.journal.path)
        let queries: [(String, StatementArguments)] = [(EvidenceStore.bucketRangeQuery, []), (EvidenceStore.probeQuery, [0, "h"])]
        for (sql, arguments) in queries {
            let plan = try await db.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: arguments).map { $0["detail"] as String }
            }
            #expect(plan.contains { $0.contains("SEARCH") && $0.contains("evidence_items_by_bucket") }, "\(sql): \(plan)")
            #expect(!plan.contains { $0.contains("SCAN evidence_items") }, "\(sql): \(plan)")
        }
    }

    @Test func aJournalOfSchemaTwoIsReadAsItIsAndMigratedOnOpening() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        let old = try journal.evidence.put(Array(#"{"finding":"before schema 3"}"#.utf8), name: "finding")
        let cited = try await journal.append(NewRecord(incident: "inc-a", kind: "test", actor: "cordon/test", data: ["evidence": [old.json]]))
        try await filler(journal, 5)
        try await journal.close()
        // As an earlier build left it: evidence in evidence_content, no evidence_items.
        try tamper(
            dir,
            """
            INSERT INTO evidence_content (hash, bytes) SELECT hash, bytes FROM evidence_items;
            DROP TABLE evidence_items;
            PRAGMA user_version = 2;
            """)
        let reader = try SQLiteJournal(directory: dir, readOnly: true)
        #expect(!reader.oldIncidentIndex, "schema 2 has the incident index of this build")
        #expect(try await reader.records(incident: "inc-a").map(\.seq) == [cited.seq])
        #expect(try reader.evidence.get(old.sha256, citedAt: cited.seq) == Array(#"{"finding":"before schema 3"}"#.utf8))
        #expect(try JournalVerifier(directory: dir).verify().isValid)

        let migrated = try SQLiteJournal(directory: dir)
        let new = try migrated.evidence.put(Array(#"{"finding":"after"}"#.utf8), name: "finding")
        let next = try await migrated.append(NewRecord(incident: "inc-a", kind: "test", actor: "cordon/test", data: ["evidence": [new.json, old.json]]))
        #expect(try migrated.evidence.get(old.sha256, citedAt: next.seq) == Array(#"{"finding":"before schema 3"}"#.utf8))
        #expect(try await migrated.records(incident: "inc-a").map(\.seq) == [cited.seq, next.seq])
        try await migrated.close()
        let db = try DatabaseQueue(path: dir.journal.path)
        #expect(try await db.read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") } == SQLiteJournal.schemaVersion)
        #expect(try buckets(dir, new.sha256).count == 1)
        #expect(try buckets(dir, old.sha256).isEmpty, "evidence already stored is not copied")
        let report = try JournalVerifier(directory: dir).verify()
        #expect(report.isValid, "\(report.problems)")
        // Tampering with the earlier table is still found.
        try tamper(dir, "UPDATE evidence_content SET bytes = ? WHERE hash = ?", [Data("forged".utf8), old.sha256])
        #expect(try JournalVerifier(directory: dir).verify().problems.contains { $0.message.contains("evidence \(old.sha256) was altered") })
    }
}
