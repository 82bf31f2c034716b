import CordonCore
import Foundation
import Testing

@testable import CordonJournal

/// Claims (one record per claim, whoever writes it) and foreign records (what other
/// openings of the journal appended), on real SQLite files shared by two openings, as two
/// processes share them.
@Suite struct JournalClaimTests {
    func decision(_ by: String, claim: String = "approval:inc-1:7") -> NewRecord {
        var record = NewRecord(incident: "inc-1", kind: RecordKind.approvalDecided, actor: "user:\(by)", data: ["step": "isolate", "by": .string(by)])
        record.claim = claim
        return record
    }

    @Test func exactlyOneOfTwoJournalsRacingForAClaimWins() async throws {
        for round in 0..<20 {
            let dir = temporaryDataDirectory()
            let a = try SQLiteJournal(directory: dir)
            let b = try SQLiteJournal(directory: dir)
            _ = try await a.append(NewRecord(kind: "test", actor: "cordon/test"))
            async let first = attempt { try await a.append(decision("alice")) }
            async let second = attempt { try await b.append(decision("bob")) }
            let results = await [first, second]
            let won = results.compactMap { try? $0.get() }
            let lost = results.compactMap { result -> JournalClaimConflict? in
                if case .failure(let error) = result { return error as? JournalClaimConflict }
                return nil
            }
            #expect(won.count == 1 && lost.count == 1, "round \(round): \(results)")
            #expect(lost.first?.existing.seq == won.first?.seq)
            #expect(lost.first?.existing.actor == won.first?.actor)
            #expect(try await a.count(kind: RecordKind.approvalDecided) == 1)
            try await a.close()
            try await b.close()
            #expect(JournalVerifierCheck.valid(dir))
        }
    }

    @Test func aClaimIsRefusedInTheSameCommitAndAfterwardsButOthersPass() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        // Appended together, the two groups usually share a commit.
        async let x = attempt { try await journal.append([NewRecord(kind: "before", actor: "t"), decision("alice")]) }
        async let y = attempt { try await journal.append(decision("bob")) }
        let (rx, ry) = await (x, y)
        #expect([rx.isSuccess, ry.isSuccess].filter { $0 }.count == 1)
        // A refused group writes none of its records.
        #expect(try await journal.count(kind: "before") == (rx.isSuccess ? 1 : 0))
        // Another claim, and a record with none, still pass.
        _ = try await journal.append(decision("carol", claim: "approval:inc-1:9"))
        _ = try await journal.append(NewRecord(kind: "after", actor: "t"))
        await #expect(throws: JournalClaimConflict.self) { try await journal.append(decision("dave", claim: "approval:inc-1:9")) }
        try await journal.close()
        #expect(JournalVerifierCheck.valid(dir))
    }

    @Test func foreignRecordsAreThoseAnotherOpeningWrote() async throws {
        let dir = temporaryDataDirectory()
        let runner = try SQLiteJournal(directory: dir)
        let cli = try SQLiteJournal(directory: dir)
        _ = try await runner.append((0..<5).map { NewRecord(kind: "mine", actor: "runner", data: ["i": .number(JSONNumber($0))]) })
        _ = try await cli.append(decision("alice"))
        runner.post([NewRecord(kind: "mine", actor: "runner")])
        try await runner.durable()
        _ = try await cli.append(NewRecord(incident: "inc-1", kind: RecordKind.incidentClosed, actor: "user:alice"))
        let (seen, through) = try await runner.foreignRecords(after: 0, limit: 100)
        #expect(seen.map(\.kind) == [RecordKind.approvalDecided, RecordKind.incidentClosed])
        #expect(seen.map(\.seq) == [6, 8])
        #expect(through == 8)
        // Paged by the limit, and nothing past the cursor.
        let (page, upTo) = try await runner.foreignRecords(after: 0, limit: 1)
        #expect(page.map(\.seq) == [6] && upTo == 6)
        let (rest, end) = try await runner.foreignRecords(after: upTo, limit: 1)
        #expect(rest.map(\.seq) == [8] && end == 8)
        #expect(try await runner.foreignRecords(after: 8, limit: 10).records.isEmpty)
        let (mine, _) = try await cli.foreignRecords(after: 0, limit: 100)
        #expect(mine.map(\.kind) == Array(repeating: "mine", count: 6))
        try await runner.close()
        try await cli.close()
    }
}

enum JournalVerifierCheck {
    static func valid(_ dir: DataDirectory) -> Bool { (try? JournalVerifier(directory: dir).verify().isValid) ?? false }
}

extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}

func attempt<T: Sendable>(_ body: () async throws -> T) async -> Result<T, any Error> {
    do { return .success(try await body()) } catch { return .failure(error) }
}
