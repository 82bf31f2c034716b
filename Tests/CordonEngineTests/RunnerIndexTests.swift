@testable import CordonCore
@testable import CordonEngine
import CordonTestSupport
import Foundation
import Testing

/// A runner's index (`IncidentIndex.Retention.live`): bounded by the work in progress and
/// the dedupe window, not by the journal, and never the cause of a step run twice.
@Suite struct RunnerIndexTests {
    static func record(_ kind: RecordKind, incident: String? = nil, _ data: JSONValue = [:]) -> JournalRecord {
        JournalRecord(unwritten: NewRecord(incident: incident, kind: kind, actor: "test", data: data), now: Date())
    }

    static func summary(_ id: String) -> JSONValue { ["id": .string(id), "updated_at": "2026-03-01T10:00:00Z"] }

    static func opened(_ incident: String, finding: String, key: String) -> JournalRecord {
        record(RecordKind.incidentOpened, incident: incident, ["playbook": "demo", "key": .string(key), "finding": summary(finding)])
    }

    @Test func findingsLeaveTheWindowOldestFirstButWorkCutShortStays() {
        var index = IncidentIndex(retention: .live(findings: 2))
        let key = { (id: String) in IncidentIndex.dedupeKey(id: id, updatedAt: "2026-03-01T10:00:00Z") }
        // f0 matched a playbook and its incident was never opened (a crash).
        index.apply(Self.record(RecordKind.findingReceived, ["finding": Self.summary("f0"), "matched": ["demo"]]))
        #expect(index.received(key("f0")) != nil)
        for id in ["f1", "f2"] {
            index.apply(Self.record(RecordKind.findingReceived, ["finding": Self.summary(id), "matched": []]))
        }
        #expect(index.received(key("f0")) == nil, "the oldest finding left the window")
        #expect(index.received(key("f1")) != nil && index.unmatched(key("f1")) && index.unmatched(key("f2")))
        #expect(index.sizes.findings == 2)
        #expect(index.unhandled[key("f0")]?.playbooks == ["demo"], "work cut short is kept until it is done")
        index.apply(Self.opened("inc-a", finding: "f0", key: "i-1"))
        #expect(index.unhandled.isEmpty)
        #expect(index.playbook("demo", handled: key("f0")))
        #expect(!index.unmatched(key("f1")), "f1 left the window for f0")
    }

    @Test func incidentIdsTheEngineMakesAreKeptInEightBytes() {
        for id in ["inc-0123456789ab", "inc-000000000000", "inc-ffffffffffff", "inc-00000000abcd"] {
            guard case .number = IncidentIndex.StoredID(id) else {
                Issue.record("\(id) kept as text")
                continue
            }
            #expect(IncidentIndex.StoredID(id).id == id)
        }
        for id in ["inc-a", "inc-0123456789AB", "inc-0123456789abc", "abc-0123456789ab", "inc-+123456789ab", "inc-0123456789a\u{e9}"] {
            #expect(IncidentIndex.StoredID(id) == .text(id))
            #expect(IncidentIndex.StoredID(id).id == id)
        }
        var set = IncidentIndex.PlaybookSet()
        for p: Int32 in [4, 0, 9, 4, 7] { set.insert(p) }
        #expect([0, 4, 7, 9].allSatisfy(set.contains) && !set.contains(1))
        #expect(IncidentIndex.Digest(playbook: "p", key: "k") == IncidentIndex.Digest(playbook: "p", key: "k"))
        #expect(IncidentIndex.Digest("f1|t") != IncidentIndex.Digest("f2|t"))
    }

    @Test func finishedIncidentsAreKeptByIdAndKeyOnly() {
        var live = IncidentIndex(retention: .live(findings: 10))
        var everything = IncidentIndex()
        let records = [
            Self.opened("inc-a", finding: "f1", key: "i-1"),
            Self.record(RecordKind.stepIntent, incident: "inc-a", ["step": "first", "action": "test.record"]),
            Self.record(RecordKind.stepSucceeded, incident: "inc-a", ["step": "first", "action": "test.record"]),
            Self.opened("inc-b", finding: "f2", key: "i-2"),
            Self.record(RecordKind.approvalRequested, incident: "inc-b", ["step": "first", "timeout": "1h", "on_timeout": "abort"]),
            Self.record(RecordKind.incidentCompleted, incident: "inc-a", ["status": "completed"]),
            Self.record(RecordKind.findingAttached, incident: "inc-a", ["finding": Self.summary("f3")]),
            Self.opened("inc-c", finding: "f4", key: "i-3"),
            Self.record(RecordKind.incidentCompleted, incident: "inc-c", ["status": "failed"]),
            Self.record(RecordKind.incidentClosed, incident: "inc-c"),
        ]
        for record in records {
            live.apply(record)
            everything.apply(record)
        }
        // In full: the incident awaiting an approval only.
        #expect(Array(live.incidents.keys) == ["inc-b"])
        #expect(live.sizes.finished == 2)
        #expect(everything.incidents.count == 3)
        for id in ["inc-a", "inc-b", "inc-c"] { #expect(live.knows(incident: id)) }
        #expect(!live.knows(incident: "inc-d"))
        // A completed incident still takes findings with its key; a closed one does not.
        #expect(live.open(playbook: "demo", key: "i-1") == "inc-a")
        #expect(live.open(playbook: "demo", key: "i-3") == nil)
        #expect(everything.open(playbook: "demo", key: "i-1") == "inc-a")
        #expect(everything.open(playbook: "demo", key: "i-3") == nil)
        #expect(live.playbook("demo", handled: IncidentIndex.dedupeKey(id: "f3", updatedAt: "2026-03-01T10:00:00Z")))
        // The metrics read the same from both.
        #expect(live.counts.byPlaybook == ["demo": [.contained: 1, .open: 1, .closed: 1]] && live.counts.approvalsPending == 1)
        #expect(everything.counts == live.counts)
        live.apply(Self.record(RecordKind.incidentClosed, incident: "inc-a"))
        #expect(live.open(playbook: "demo", key: "i-1") == nil)
        #expect(live.counts.byPlaybook == ["demo": [.open: 1, .closed: 2]])
    }

    @Test func aRunnerNeverRunsAStepTwiceForAFindingThatLeftTheWindow() async throws {
        let h = try EngineHarness(playbook: basicPlaybook)
        let action = RecordingAction()
        let engine = try await h.engine(["test.record": action], retention: .live(findings: 2))
        let a = try #require(try await engine.process([EngineHarness.finding(id: "f1")]).first?.incidents.first)
        #expect(await engine.index.incidents.isEmpty, "a finished incident is not kept in full")
        #expect(try await engine.process([EngineHarness.finding(id: "f2")]).first?.incidents == [a])
        _ = try await engine.process([EngineHarness.finding(id: "f3", instance: "i-2")])
        _ = try await engine.process([EngineHarness.finding(id: "f4", instance: "i-3")])
        #expect(action.count == 6)
        #expect(await engine.index.received(IncidentIndex.dedupeKey(id: "f1", updatedAt: "2026-03-01T10:00:00Z")) == nil)
        // f1 again, out of the window: its incident's id says it was handled.
        let again = try #require(try await engine.process([EngineHarness.finding(id: "f1")]).first)
        #expect(again.duplicate && again.incidents.isEmpty)
        // f2 again: attached a second time, and nothing runs.
        #expect(try await engine.process([EngineHarness.finding(id: "f2")]).first?.incidents == [a])
        #expect(action.count == 6)
        // Within the window, a duplicate as always.
        #expect(try await engine.process([EngineHarness.finding(id: "f2")]).first?.duplicate == true)

        // The finished incident in full, from its records.
        let full = try #require(try await engine.incident(a))
        #expect(full.status == "completed")
        #expect(full.findings == ["f1", "f2", "f2"])
        #expect(full.steps.values.map(\.status) == ["succeeded", "succeeded", "succeeded"])
        #expect(try await engine.incident("inc-none") == nil)
        #expect(await engine.counts().byPlaybook == ["demo": [.contained: 3]])

        // A restarted runner's index agrees with the whole journal's.
        let restarted = try await h.engine(["test.record": action], retention: .live(findings: 2))
        let whole = try await IncidentIndex.load(from: h.journal)
        #expect(whole.incidents.count == 3)
        for id in whole.incidents.keys { #expect(await restarted.index.knows(incident: id)) }
        #expect(await restarted.counts() == whole.counts)
        #expect(try await restarted.process([EngineHarness.finding(id: "f1")]).first?.duplicate == true)
        #expect(try await restarted.process([EngineHarness.finding(id: "f5")]).first?.incidents == [a])
        #expect(action.count == 6)
        let kinds = try await h.journal.records(from: 1, limit: 1_000).map(\.kind)
        #expect(kinds.filter { $0 == RecordKind.findingDuplicate }.count == 3)
        #expect(try await h.chainProblems() == [])
    }
}
