import CordonCore
import CordonEngine
import CordonTestSupport
import Foundation
import GRDB
import Synchronization
import Testing

@testable import CordonJournal

/// The engine on a `SQLiteJournal`, for what depends on its file.
typealias EngineHarness = EngineFixture<SQLiteJournal>

extension EngineFixture where J == SQLiteJournal {
    /// On a new `SQLiteJournal` under the directory's `data`, and its evidence store.
    init(playbook: String, environment: [String: String] = [:]) throws {
        try self.init(playbook: playbook, environment: environment) { dir, secrets in
            let journal = try SQLiteJournal(directory: DataDirectory(dir.path + "/data"), secrets: secrets)
            return (journal, journal.evidence)
        }
    }
}

/// What depends on the journal's file: nothing a run used in clear reaches the disk.
@Suite struct EngineDiskTests {
    /// A secret used by a playbook run never reaches the journal, the evidence store or an export.
    @Test func secretsUsedInARunNeverReachTheDiskInClear() async throws {
        let token = "xoxb-SECRET-7d1e2f3a4b5c6d7e"
        let playbook = basicPlaybook.replacingOccurrences(of: "with: {target: \"{{ vars.instance }}\", note: one}", with: "with: {target: \"{{ vars.instance }}\", note: one, token: \"Bearer {{ secret.TEST_TOKEN }}\"}")
        let h = try EngineHarness(playbook: playbook, environment: ["TEST_TOKEN": token])
        let engine = try await h.engine(["test.record": RecordingAction()])
        let id = try #require(try await engine.process([EngineHarness.finding(id: "f1")]).first?.incidents.first)
        let out = h.dir.url.appendingPathComponent("data/bundle")
        try await EvidenceBundle.export(incident: id, journal: h.journal, to: out)
        try await h.journal.close()
        let (_, found) = try await run("grep -r -l -a -F '\(token)' data || true", in: h.dir.url)
        #expect(found.isEmpty, "secret found in: \(found)")
        let intent = try #require(try await h.records(id).first { $0.kind == "step.intent" })
        #expect(intent.data["inputs"]?["token"] == "Bearer «secret:TEST_TOKEN»")
    }
}

/// A test action that, when called, looks at the journal's file from another connection
/// (as another process would after a crash) and notes a call made before its incident's
/// finding and the step's intent were committed.
final class CommittedCheckingAction: Action, Sendable {
    let path: String
    let calls = Mutex<[String]>([])
    let violations = Mutex<[String]>([])
    init(path: String) { self.path = path }

    func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        let incident = request.incident["id"]?.stringValue ?? ""
        let finding = request.incident["finding"]?["id"]?.stringValue ?? ""
        do {
            let db = try DatabaseQueue(path: path, configuration: .waiting)
            let received = try await db.read { db in
                try Int.fetchOne(
                    db, sql: "SELECT count(*) FROM records WHERE kind = ? AND instr(canonical, ?) > 0",
                    arguments: [RecordKind.findingReceived.rawValue, #""id":"\#(finding)""#]) ?? 0
            }
            let intents = try await db.read { db in
                try Int.fetchOne(
                    db, sql: "SELECT count(*) FROM records WHERE kind = ? AND incident = ? AND instr(canonical, ?) > 0",
                    arguments: [RecordKind.stepIntent.rawValue, incident, request.idempotencyKey]) ?? 0
            }
            if received != 1 || intents < 1 { violations.withLock { $0.append("\(incident): received \(received), intents \(intents)") } }
        } catch {
            violations.withLock { $0.append("\(incident): \(error)") }
        }
        calls.withLock { $0.append(request.idempotencyKey) }
        return ActionOutcome(outputs: [:])
    }
}

@Suite struct QueuedIntakeTests {
    @Test func handlersStartBeforeTheFindingsCommitAndActOnlyAfterIt() async throws {
        let h = try EngineHarness(playbook: basicPlaybook)
        let action = CommittedCheckingAction(path: DataDirectory(h.dir.path + "/data").journal.path)
        let engine = try await h.engine(["test.record": action])
        let findings = (0..<8).map { EngineHarness.finding(id: "f\($0)", instance: "i-\($0)") } + [EngineHarness.finding(id: "low", severity: 2)]
        let intake = try await engine.receiveQueued(findings)
        #expect(intake.receipts.map(\.pending.isEmpty) == Array(repeating: false, count: 8) + [true])
        // Handled at once, as the queue runner does, while the findings' commit is under way.
        let outcomes = try await withThrowingTaskGroup(of: Engine.Outcome.self) { group in
            for receipt in intake.receipts where !receipt.pending.isEmpty { group.addTask { try await engine.handle(receipt) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        try await intake.durable()
        #expect(outcomes.map(\.incidents.count) == Array(repeating: 1, count: 8))
        // Every call saw its finding and its intent committed; two calls per incident.
        #expect(action.violations.withLock { $0 } == [])
        #expect(action.calls.withLock { $0.count } == 16)
        // Each opening names its finding's record, in the journal and in the index.
        let records = try await h.journal.records(from: 1, limit: 1000)
        var receivedSeq: [String: Int64] = [:]
        for r in records where r.kind == RecordKind.findingReceived { receivedSeq[r.data["finding"]?["id"]?.stringValue ?? ""] = r.seq }
        #expect(receivedSeq.count == 9)
        let openings = records.filter { $0.kind == RecordKind.incidentOpened }
        #expect(openings.count == 8)
        for opened in openings {
            let seq = receivedSeq[opened.data["finding"]?["id"]?.stringValue ?? ""]
            #expect(seq != nil && opened.data["finding_seq"] == .number(JSONNumber(Int(seq ?? -1))))
            #expect(seq != nil && opened.seq > seq ?? .max)
            #expect(await engine.index.incidents[opened.incident ?? ""]?.findingSeq == seq)
        }
        // The same deliveries again: all duplicates, and nothing more is called.
        let again = try await engine.receiveQueued(findings)
        #expect(again.receipts.map(\.duplicate) == Array(repeating: true, count: findings.count))
        try await again.durable()
        #expect(action.calls.withLock { $0.count } == 16)
        // A runner started on this journal sees the same incidents and findings.
        let restarted = try await IncidentIndex.load(from: h.journal)
        for opened in openings {
            #expect(restarted.incidents[opened.incident ?? ""]?.findingSeq == receivedSeq[opened.data["finding"]?["id"]?.stringValue ?? ""])
        }
        #expect(restarted.unhandled.isEmpty)
        try await h.journal.close()
        let report = try JournalVerifier(directory: DataDirectory(h.dir.path + "/data")).verify()
        #expect(report.isValid, "\(report.problems)")
    }
}
