import CordonCore
import CordonEngine
import CordonTestSupport
import Foundation
import Synchronization
import Testing

/// The engine's side of the lifecycle: evaluations per finding, decisions from other
/// engines (processes, each with its own opening of the journal's store), rollback of
/// steps that failed or were cut short.
@Suite struct LifecycleEngineTests {
    static let playbook = """
        name: demo
        version: 1
        description: test
        trigger: {source: [aws.guardduty]}
        incident: {key: "{{ detail.resource.instanceDetails.instanceId }}"}
        steps:
          - id: contain
            action: test.record
            with: {target: "{{ detail.resource.instanceDetails.instanceId }}", note: "{{ detail.type }}"}
          - id: only_for_backdoors
            action: test.record
            when: {detail: {type: [{prefix: "Backdoor:"}]}}
            with: {target: "{{ detail.resource.instanceDetails.instanceId }}", note: backdoor}
        """

    static func finding(_ id: String, type: String) -> Finding {
        let text = #"{"version":"0","id":"\#(id)","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"1","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":[],"detail":{"id":"\#(id)","type":"\#(type)","severity":8,"updatedAt":"2026-03-01T10:00:00Z","resource":{"instanceDetails":{"instanceId":"i-1"}}}}"#
        return FindingDecoder().decode(Array(text.utf8), source: "test").findings[0]
    }

    @Test func eachAttachedFindingEvaluatesThePlaybookAgain() async throws {
        let h = try EngineHarness(playbook: Self.playbook)
        let action = RecordingAction()
        let engine = try await h.engine(["test.record": action], retention: .live(findings: 1_000))
        let id = try #require(try await engine.process([Self.finding("f1", type: "Recon:EC2/Portscan")]).first?.incidents.first)
        #expect(action.count == 1, "contain ran; the backdoor step's `when` did not hold")
        // A second finding: `when` sees it, and contain's inputs are new.
        #expect(try await engine.process([Self.finding("f2", type: "Backdoor:EC2/C&CActivity.B")]).first?.incidents == [id])
        #expect(action.count == 3)
        // A third with the first's inputs: journaled as already done, nothing called.
        #expect(try await engine.process([Self.finding("f3", type: "Recon:EC2/Portscan")]).first?.incidents == [id])
        #expect(action.count == 3)
        let records = try await h.records(id)
        #expect(records.filter { $0.kind == RecordKind.incidentCompleted }.compactMap { $0.data["round"]?.numberValue?.intValue } == [1, 2, 3])
        let round3 = records.filter { $0.data["round"] == .number(JSONNumber(3)) && $0.kind == RecordKind.stepSucceeded }
        #expect(round3.count == 1 && round3.first?.data["already_done"] == .bool(true))
        let full = try #require(try await engine.incident(id))
        #expect(full.rounds == 3 && full.state == .contained)
        // A restart's index agrees, and a further duplicate of the first inputs calls nothing.
        let restarted = try await h.engine(["test.record": action], retention: .live(findings: 1_000))
        _ = try await restarted.process([Self.finding("f4", type: "Recon:EC2/Portscan")])
        #expect(action.count == 3)
        #expect(try await h.chainProblems() == [])
    }

    static let approvalPlaybook = """
        name: demo
        version: 1
        description: test
        trigger: {source: [aws.guardduty]}
        incident: {key: "{{ detail.resource.instanceDetails.instanceId }}"}
        steps:
          - id: contain
            action: test.record
            with: {target: "{{ detail.resource.instanceDetails.instanceId }}"}
            approval: {timeout: 1h, on_timeout: proceed}
        """

    /// Two engines on one journal, as a runner and `cordon approve` are: one decision
    /// wins, the timeout loses to it, the loser is told who decided, and the runner takes
    /// the decision in when it follows the journal.
    @Test func theFirstDecisionWinsAcrossEnginesAndTheTimeoutNeverOverridesIt() async throws {
        let h = try EngineHarness(playbook: Self.approvalPlaybook)
        let action = RecordingAction()
        let runner = try await h.engine(["test.record": action])
        let id = try #require(try await runner.process([Self.finding("f1", type: "Backdoor:X")]).first?.incidents.first)
        #expect(await runner.index.incidents[id]?.pendingApproval == "contain")
        // Another process (its own opening of the journal) denies.
        let other = MemoryJournal(storage: h.journal.storage, secrets: h.secrets)
        let cli = Engine(
            config: h.config, actions: CoreActions.all.merging(["test.record": action]) { $1 }, journal: other, evidence: h.evidence,
            secrets: h.secrets, actor: "cordon/cli", index: try await IncidentIndex.load(from: other))
        try await cli.decide(incident: id, step: "contain", by: "oncall", approve: false, reason: "not in prod", continuing: false)
        // The runner has not followed yet: its timeout fires and loses to the denial.
        let moved = try await runner.expireApprovals(now: Date().addingTimeInterval(7200))
        #expect(moved == [id])
        #expect(action.count == 0)
        #expect(await runner.index.incidents[id]?.steps["contain"]?.status == "skipped")
        let decisions = try await h.records(id).filter { $0.kind == RecordKind.approvalDecided }
        #expect(decisions.count == 1 && decisions.first?.actor == "user:oncall")
        // A second decision from either side is refused, naming the first.
        await #expect {
            try await runner.decide(incident: id, step: "contain", by: "lead", approve: true, reason: nil)
        } throws: { error in
            "\(error)".contains("already denied by user:oncall") && "\(error)".contains("not in prod")
        }
    }

    /// A decision taken in by following the journal lets the runner continue.
    @Test func aDecisionFromElsewhereIsTakenInByFollowing() async throws {
        let h = try EngineHarness(playbook: Self.approvalPlaybook)
        let action = RecordingAction()
        let runner = try await h.engine(["test.record": action])
        let id = try #require(try await runner.process([Self.finding("f1", type: "Backdoor:X")]).first?.incidents.first)
        let other = MemoryJournal(storage: h.journal.storage, secrets: h.secrets)
        let cli = Engine(
            config: h.config, actions: [:], journal: other, evidence: h.evidence, secrets: h.secrets, actor: "cordon/cli",
            index: try await IncidentIndex.load(from: other))
        try await cli.decide(incident: id, step: "contain", by: "lead", approve: true, reason: nil, continuing: false)
        #expect(try await runner.follow() == [id])
        try await runner.run(incident: id)
        #expect(action.count == 1)
        #expect(await runner.index.incidents[id]?.state == .contained)
        #expect(try await runner.follow().isEmpty, "taken in once")
    }
}

/// A containment action that changes its target, then fails (`failing`) or never returns
/// until cancelled (`hanging`, a crash in the middle of the call).
final class PartialIsolateAction: ReversibleAction, Sendable {
    enum Mode { case failing, hanging }
    let mode: Mode
    let state: Mutex<[String: String]>
    let called = Mutex(false)

    init(_ mode: Mode, state: [String: String] = [:]) {
        self.mode = mode
        self.state = Mutex(state)
    }

    func capturePreState(_ request: ActionRequest) async throws(ActionError) -> JSONValue {
        ["state": .string(state.withLock { $0[request.inputs["target"]?.stringValue ?? ""] } ?? "open")]
    }

    func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        state.withLock { $0[request.inputs["target"]?.stringValue ?? ""] = "half-isolated" }
        called.withLock { $0 = true }
        switch mode {
        case .failing:
            throw .permanent("IsolationNotVerified", "the change did not take everywhere")
        case .hanging:
            try? await Task.sleep(for: .seconds(3600))
            throw .retryable("Cancelled", "cut short")
        }
    }

    func rollback(_ request: ActionRequest, preState: JSONValue) async throws(ActionError) -> ActionOutcome {
        guard let previous = preState["state"]?.stringValue else { throw .permanent("NoPreState", "nothing recorded") }
        state.withLock { $0[request.inputs["target"]?.stringValue ?? ""] = previous }
        return ActionOutcome(outputs: ["restored": .string(previous)])
    }
}

@Suite struct PartialRollbackTests {
    static let playbook = """
        name: demo
        version: 1
        description: test
        trigger: {source: [aws.guardduty]}
        incident: {key: "{{ detail.resource.instanceDetails.instanceId }}"}
        steps:
          - id: isolate
            action: test.record
            with: {target: "{{ detail.resource.instanceDetails.instanceId }}"}
            retry: {attempts: 1}
        """

    @Test func aStepThatFailedAfterItsFirstChangeIsRolledBack() async throws {
        let h = try EngineHarness(playbook: Self.playbook)
        let action = PartialIsolateAction(.failing)
        let engine = try await h.engine(["test.record": action])
        let id = try #require(try await engine.process([LifecycleEngineTests.finding("f1", type: "X")]).first?.incidents.first)
        #expect(await engine.index.incidents[id]?.steps["isolate"]?.status == "failed")
        #expect(action.state.withLock { $0["i-1"] } == "half-isolated")
        let intent = try #require(try await h.records(id).first { $0.kind == RecordKind.stepIntent })
        #expect(intent.data["pre_state"] == ["state": "open"], "the pre-state is journaled before the first change")
        let results = try await engine.rollback(incident: id)
        #expect(results.map(\.status) == ["rolled back"])
        #expect(action.state.withLock { $0["i-1"] } == "open")
    }

    /// Cut short by a crash: the engine is dropped while the action runs; an engine
    /// started on the same journal (the next process) rolls back from the intent.
    @Test func aStepCutShortByACrashIsRolledBack() async throws {
        let h = try EngineHarness(playbook: Self.playbook)
        let hanging = PartialIsolateAction(.hanging)
        let engine = try await h.engine(["test.record": hanging])
        let run = Task { try await engine.process([LifecycleEngineTests.finding("f1", type: "X")]) }
        while !hanging.called.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
        run.cancel()
        _ = try? await run.value
        let next = PartialIsolateAction(.failing, state: hanging.state.withLock { $0 })
        let restarted = try await h.engine(["test.record": next])
        let id = try #require(await restarted.index.incidents.keys.first)
        #expect(await restarted.index.incidents[id]?.steps["isolate"]?.status == "running", "an intent without a result")
        let results = try await restarted.rollback(incident: id)
        #expect(results.map(\.status) == ["rolled back"])
        #expect(next.state.withLock { $0["i-1"] } == "open")
    }
}

@Suite struct QuarantineTests {
    /// A finding received but never handled (a crash before its incident was opened),
    /// quarantined: not resumed, and a redelivery is a duplicate.
    @Test func aQuarantinedFindingIsNeverTakenUpAgain() async throws {
        let h = try EngineHarness(playbook: LifecycleEngineTests.playbook)
        let action = RecordingAction()
        let engine = try await h.engine(["test.record": action])
        let receipts = try await engine.receive([LifecycleEngineTests.finding("f-poison", type: "X")])
        let restarted = try await h.engine(["test.record": action])
        let work = try await restarted.unfinished()
        #expect(work.receipts.map(\.id) == ["f-poison"])
        let done = try await restarted.quarantine(Set(work.crashIDs), reason: "test")
        #expect(done == ["f:" + CrashGuard.findingID(receipts[0].dedupe)])
        #expect(try await restarted.unfinished().isEmpty)
        #expect(await restarted.counts().quarantined == 1)
        let again = try await restarted.process([LifecycleEngineTests.finding("f-poison", type: "X")])
        #expect(again.first?.duplicate == true)
        #expect(action.count == 0)
        // A later engine reads it quarantined from the journal.
        let later = try await h.engine(["test.record": action])
        #expect(await later.index.quarantined(finding: receipts[0].dedupe))
        #expect(try await later.unfinished().isEmpty)
    }
}

@Suite struct RollbackAcrossEvaluationsTests {
    static let playbook = """
        name: demo
        version: 1
        description: test
        trigger: {source: [aws.guardduty]}
        incident: {key: host}
        steps:
          - id: isolate
            action: test.record
            with: {target: "{{ detail.resource.instanceDetails.instanceId }}"}
        """

    static func finding(_ id: String, instance: String) -> Finding {
        let text = #"{"version":"0","id":"\#(id)","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"1","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":[],"detail":{"id":"\#(id)","type":"X","severity":8,"updatedAt":"2026-03-01T10:00:00Z","resource":{"instanceDetails":{"instanceId":"\#(instance)"}}}}"#
        return FindingDecoder().decode(Array(text.utf8), source: "test").findings[0]
    }

    /// Rolled back, a step is no longer done: the next finding with the same inputs
    /// contains again, and that run rolls back on its own.
    @Test func aRolledBackStepRunsAgainForTheNextFinding() async throws {
        let h = try EngineHarness(playbook: Self.playbook)
        let action = IsolateAction()
        let engine = try await h.engine(["test.record": action], retention: .live(findings: 1_000))
        let id = try #require(try await engine.process([Self.finding("f1", instance: "i-1")]).first?.incidents.first)
        #expect(try await engine.rollback(incident: id).map(\.status) == ["rolled back"])
        #expect(action.state.withLock { $0["i-1"] } == "open")
        _ = try await engine.process([Self.finding("f2", instance: "i-1")])
        #expect(action.state.withLock { $0["i-1"] } == "isolated", "contained again")
        let again = try await engine.rollback(incident: id)
        #expect(again.map(\.status).sorted() == ["already rolled back", "rolled back"])
        #expect(action.state.withLock { $0["i-1"] } == "open")
    }

    /// Each evaluation captures the state of what it acts on, not an earlier one's.
    @Test func eachEvaluationCapturesItsOwnPreState() async throws {
        let h = try EngineHarness(playbook: Self.playbook)
        let first = IsolateAction()
        first.state.withLock { $0["i-2"] = "quarantined-by-hand" }
        let engine = try await h.engine(["test.record": first])
        let id = try #require(try await engine.process([Self.finding("f1", instance: "i-1")]).first?.incidents.first)
        _ = try await engine.process([Self.finding("f2", instance: "i-2")])
        let intents = try await h.records(id).filter { $0.kind == RecordKind.stepIntent }
        #expect(intents.map { $0.data["pre_state"] } == [["state": "open"], ["state": "quarantined-by-hand"]])
    }
}
