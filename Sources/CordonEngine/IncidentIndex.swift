import CordonCore
import Foundation
import DequeModule
import OrderedCollections

/// Where an incident is in its lifecycle: `open` while a playbook's steps run or wait
/// (for an approval, or for an earlier evaluation to finish), `contained` once they have
/// all finished, `closed` once someone closed it or its quiet period passed. A finding
/// attaches to an incident that is not closed, and makes its playbook evaluate again.
public enum IncidentState: String, Sendable, CaseIterable {
    case open, contained, closed
}

/// What the journal says about incidents, rebuilt by replaying records: the engine
/// keeps it current as it appends, `cordon incidents` and `cordon show` read it.
public struct IncidentIndex: Sendable {
    public struct Step: Sendable {
        public var id: String
        public var action: String
        /// In the incident's latest evaluation of it.
        public var status: StepStatus
        public var attempts: Int
        public var outputs: JSONValue?
        public var error: String?
        public var target: String?
        public var evidence: [String]
        /// The evaluation (1 for the finding that opened the incident, one more for each
        /// finding attached) these fields describe.
        public var round: Int = 1
        /// The state the step's action captured before its first change in this round.
        public var preState: JSONValue?
        /// The decision on this round's approval of the step.
        public var decision: ApprovalDecision?
        /// The seq of that decision's record (0 while unknown).
        var decisionSeq: Int64 = 0
        /// Every run of the step that succeeded, by idempotency key, with its outputs: a
        /// later evaluation with the same inputs is done already.
        public var succeeded: [String: JSONValue] = [:]
    }

    /// Who closed an incident, when and why.
    public struct Closure: Sendable {
        public var time: String
        public var by: String
        public var reason: String?
    }

    public struct Incident: Sendable {
        public var id: String
        public var playbook: String
        public var playbookVersion: Int
        public var key: String
        public var title: String?
        public var severity: JSONValue?
        public var openedAt: String
        /// Derived from the rest (`refreshStatus`).
        public var status: IncidentStatus
        public var findings: [String]
        public var steps: OrderedDictionary<String, Step>
        public var pendingApproval: String?
        public var dryRun: Bool
        /// Decided approvals of the latest round: step id → approved, denied or aborted.
        public var approvals: [String: ApprovalDecision] {
            var out: [String: ApprovalDecision] = [:]
            for step in steps.values { if let d = step.decision { out[step.id] = d } }
            return out
        }
        /// The pending approval's request (its record's seq and time), timeout and on_timeout.
        public var approvalRequestSeq: Int64?
        public var approvalRequestedAt: String?
        public var approvalTimeout: String?
        public var approvalOnTimeout: String?
        /// The finding.received record of the finding that opened it.
        public var findingRef: RecordRef?
        /// Its seq (nil while its commit is under way).
        public var findingSeq: Int64? { findingRef?.seq }
        /// The summary of the finding that opened it (id, type, account, region…).
        public var finding: JSONValue = .null
        /// Evaluations started: 1 for the opening finding, one more per finding attached.
        public var rounds = 1
        /// Evaluations whose steps have all finished.
        public var completedRounds = 0
        /// The finding.received record of each evaluation not yet finished.
        public var roundFindings: [Int: RecordRef] = [:]
        /// How the latest finished evaluation ended: completed or failed.
        public var outcome: String?
        /// When the latest finding opened or attached to it (a quiet period counts from here).
        public var lastActivity: String = ""
        public var closure: Closure?
        /// The closed incident of the same playbook and key that this one follows.
        public var follows: String?
        /// Why it is quarantined: its handling was in progress during crashes.
        public var quarantine: String?

        public var isOpen: Bool { closure == nil }

        public var state: IncidentState {
            if closure != nil { return .closed }
            return status == .completed || status == .failed ? .contained : .open
        }

        /// Whether steps remain to run and nothing holds them (an approval, a close, a quarantine).
        public var isRunnable: Bool {
            closure == nil && quarantine == nil && pendingApproval == nil && completedRounds < rounds
        }

        mutating func refreshStatus() {
            if closure != nil {
                status = .closed
            } else if quarantine != nil {
                status = .quarantined
            } else if pendingApproval != nil {
                status = .awaitingApproval
            } else if completedRounds < rounds {
                status = .running
            } else {
                status = outcome.map(IncidentStatus.init(rawValue:)) ?? .completed
            }
        }

        /// The step statuses as templates and `when` patterns see them (`steps.ID.status`):
        /// those of the steps already evaluated in `round`. In a dry run a planned step
        /// reads as succeeded (the branch a real run takes when it works).
        public func stepsContext(round: Int, dryRun: Bool = false) -> JSONValue {
            var o = JSONObject()
            for (id, step) in steps where step.round == round {
                let status = dryRun && step.status == .planned ? StepStatus.succeeded : step.status
                var s: JSONObject = ["status": .string(status.rawValue), "attempts": .number(JSONNumber(step.attempts))]
                if let outputs = step.outputs { s["output"] = outputs }
                if let error = step.error { s["error"] = .string(error) }
                if dryRun && step.status == .planned { s["planned"] = true }
                o[id] = .object(s)
            }
            return .object(o)
        }

        /// The step statuses of the latest round.
        public var stepsContext: JSONValue { stepsContext(round: rounds) }

        public var json: JSONValue {
            var o: JSONObject = [
                "id": .string(id), "key": .string(key), "title": title.map(JSONValue.string) ?? .null, "severity": severity ?? .null,
                "playbook": .string(playbook), "state": .string(state.rawValue), "status": .string(status.rawValue), "opened_at": .string(openedAt),
                "findings": .array(findings.map(JSONValue.string)), "finding": finding,
                "account": finding["account"] ?? .null, "region": finding["region"] ?? .null,
                "steps": .array(steps.values.map { ["id": .string($0.id), "action": .string($0.action), "status": .string($0.status.rawValue)] }),
                "rollback": .string("cordon rollback \(id)"), "dry_run": .bool(dryRun), "rounds": .number(JSONNumber(rounds)),
            ]
            if let closure {
                o["closed_at"] = .string(closure.time)
                o["closed_by"] = .string(closure.by)
                o["close_reason"] = closure.reason.map(JSONValue.string) ?? .null
            }
            if let follows { o["follows"] = .string(follows) }
            if let quarantine { o["quarantined"] = .string(quarantine) }
            return .object(o)
        }
    }

    /// How much of what the journal says an index keeps.
    public enum Retention: Sendable, Equatable {
        /// Every incident in full and every finding received: what `cordon incidents`
        /// and drill reports read.
        case everything
        /// What a long-running runner needs, so that its memory does not grow with the
        /// journal: incidents in full while they run or await an approval, contained and
        /// closed ones by their id, playbook and key only (enough to attach later findings,
        /// to close them after their quiet period and never to open one twice; the engine
        /// reads one in full from the journal when a finding attaches to it); and what was
        /// done with the last `findings` findings received (the dedupe window). A finding
        /// delivered again after it left the window is still never handled twice by a
        /// playbook whose incident it opened (the incident's id says so); one it was
        /// attached to gets a second `finding.attached`, whose evaluation finds every step
        /// done already.
        case live(findings: Int)

        /// The dedupe window of `cordon run` unless `--dedupe-window` says otherwise.
        public static let defaultWindow = 100_000
    }

    public let retention: Retention

    /// Incidents kept in full: all of them, or (`.live`) those not contained or closed.
    public internal(set) var incidents: OrderedDictionary<String, Incident> = [:]

    /// An incident let go of (`.live`): what attaching, closing and the counts need.
    struct Finished: Sendable {
        var playbook: Int32
        /// Its `playbook\0key`.
        var key: Digest
        var closed: Bool
        var dryRun: Bool
        /// Evaluations started and finished (one started since it was let go of means it
        /// must be read in full again to run).
        var rounds: Int32
        var completedRounds: Int32
        /// When its latest finding came, in seconds since 1970.
        var lastActivity: Int64
        /// Records applied to it since it was let go of: a reading of it in full from the
        /// journal that began before one of them is out of date (`changes(ofLetGo:)`).
        var changes: UInt32 = 0
        var state: IncidentState { closed ? .closed : completedRounds < rounds ? .open : .contained }
    }
    var finished: [StoredID: Finished] = [:]

    /// What was done with a finding.
    struct FindingState: Sendable {
        /// Its `finding.received` record (a slot while its commit is under way).
        var received: RecordRef?
        /// It matched no playbook: `finding.received` with `matched: []`, or
        /// `finding.unmatched` (written by earlier versions, and when a finding received
        /// with matches arrives again after its playbooks were removed).
        var unmatched = false
        /// The playbooks that opened or attached an incident for it.
        var handled = PlaybookSet()
    }
    /// By the digest of the finding's dedupe key.
    var findings: [Digest: FindingState] = [:]
    /// `.live`: the findings in the order they were first seen, oldest first.
    var findingOrder: Deque<Digest> = []

    /// Findings received whose matching playbooks have not all opened or attached an
    /// incident (their handling was cut short), by dedupe key. A plain dictionary: an
    /// entry is removed as each finding is handled, which an ordered one does in time
    /// proportional to its size (thousands under load); resuming orders them by `seq`.
    /// Never let go of before it is handled or quarantined.
    public internal(set) var unhandled: [String: Unhandled] = [:]
    /// Findings quarantined before an incident was opened for them, by dedupe key, with
    /// the reason and the finding's summary.
    public internal(set) var quarantinedFindings: OrderedDictionary<String, (reason: String, finding: JSONValue)> = [:]
    /// The open incident of each `playbook\0key`, and the latest closed one.
    var openByKey: [Digest: StoredID] = [:]
    var closedByKey: [Digest: StoredID] = [:]
    /// Playbook names by ordinal, and their ordinals.
    var playbookNames: [String] = []
    var playbookOrdinals: [String: Int32] = [:]
    /// The highest seq `load(from:)` replayed: records after it are those appended since
    /// (by this process, or by others: `Journal.foreignRecords`).
    public private(set) var loadedThrough: Int64 = 0

    public struct Unhandled: Sendable {
        public var ref: RecordRef
        public var seq: Int64 { ref.seq ?? 0 }
        public var playbooks: Set<String>
        /// The finding's evidence (its hash).
        public var evidence: String?
        /// What records say about it.
        public var finding: JSONValue = .null
    }

    public init(retention: Retention = .everything) {
        if case .live(let window) = retention { precondition(window > 0, "the dedupe window holds at least one finding") }
        self.retention = retention
    }

    mutating func ordinal(_ playbook: String) -> Int32 {
        if let ordinal = playbookOrdinals[playbook] { return ordinal }
        let ordinal = Int32(playbookNames.count)
        playbookNames.append(playbook)
        playbookOrdinals[playbook] = ordinal
        return ordinal
    }

    /// Updates what the index knows of a finding; `.live` lets go of the oldest finding
    /// beyond the window.
    mutating func updateFinding(_ digest: Digest, _ body: (inout FindingState) -> Void) {
        if case .live(let window) = retention, findings[digest] == nil {
            findingOrder.append(digest)
            if findingOrder.count > window { findings.removeValue(forKey: findingOrder.removeFirst()) }
        }
        body(&findings[digest, default: FindingState()])
    }

    mutating func markHandled(_ playbook: String, _ key: String) {
        let ordinal = ordinal(playbook)
        updateFinding(Digest(key)) { $0.handled.insert(ordinal) }
        if var entry = unhandled[key] {
            entry.playbooks.remove(playbook)
            if entry.playbooks.isEmpty { unhandled.removeValue(forKey: key) } else { unhandled[key] = entry }
        }
    }

    /// The `finding.received` record of a finding received before (within the window).
    public func received(_ key: String) -> RecordRef? { findings[Digest(key)]?.received }

    /// Whether a finding received before (within the window) matched no playbook.
    public func unmatched(_ key: String) -> Bool { findings[Digest(key)]?.unmatched ?? false }

    /// Whether a finding was quarantined before its incidents were opened.
    public func quarantined(finding key: String) -> Bool { quarantinedFindings[key] != nil }

    /// Whether a playbook has already opened or attached an incident for this finding
    /// (within the window).
    public func playbook(_ name: String, handled key: String) -> Bool {
        guard let ordinal = playbookOrdinals[name] else { return false }
        return findings[Digest(key)]?.handled.contains(ordinal) ?? false
    }

    /// Whether an incident was ever opened (in full or let go of).
    public func knows(incident id: String) -> Bool { incidents[id] != nil || finished[StoredID(id)] != nil }

    /// The open incident of a playbook with this key, if any.
    public func open(playbook: String, key: String, dryRun: Bool = false) -> String? {
        guard let stored = openByKey[Self.keyDigest(playbook, key, dryRun: dryRun)] else { return nil }
        let id = stored.id
        if let incident = incidents[id] { return incident.isOpen ? id : nil }
        return finished[stored]?.closed == false ? id : nil
    }

    /// The latest closed incident of a playbook with this key, if any.
    public func lastClosed(playbook: String, key: String, dryRun: Bool = false) -> String? {
        closedByKey[Self.keyDigest(playbook, key, dryRun: dryRun)]?.id
    }

    /// An incident's state, in full or let go of.
    public func state(of id: String) -> IncidentState? {
        incidents[id]?.state ?? finished[StoredID(id)]?.state
    }

    /// How many records were applied to an incident since it was let go of (nil: it is
    /// kept in full, or unknown).
    public func changes(ofLetGo id: String) -> UInt32? { finished[StoredID(id)]?.changes }

    /// When the latest finding of an incident came (in full or let go of).
    public func lastActivity(of id: String) -> Date? {
        if let incident = incidents[id] { return Timestamp.parse(incident.lastActivity) }
        return finished[StoredID(id)].map { Date(timeIntervalSince1970: Double($0.lastActivity)) }
    }

    /// Contained incidents not kept in full, with their playbook and latest finding: those
    /// whose quiet period may pass (`.live`).
    public var containedLetGo: [(id: String, playbook: String, lastActivity: Date)] {
        finished.compactMap { stored, f in
            guard f.state == .contained, !f.dryRun else { return nil }
            return (stored.id, playbookNames[Int(f.playbook)], Date(timeIntervalSince1970: Double(f.lastActivity)))
        }
    }

    /// Incidents let go of whose evaluations are not all finished (a finding attached after
    /// they were let go of, then a stop): they resume from the journal.
    public var unfinishedLetGo: [String] {
        finished.compactMap { stored, f in f.state == .open && !f.dryRun ? stored.id : nil }
    }

    /// Incidents by playbook and state (dry runs left out), the approvals pending and the
    /// quarantined incidents and findings: what the metrics show.
    public struct Counts: Sendable, Equatable {
        public var byPlaybook: [String: [IncidentState: Int]] = [:]
        public var approvalsPending = 0
        public var quarantined = 0
        public init() {}
        /// Incidents in `state`, all playbooks together.
        public func total(_ state: IncidentState) -> Int { byPlaybook.values.reduce(0) { $0 + ($1[state] ?? 0) } }
    }

    public var counts: Counts {
        var counts = Counts()
        for f in finished.values where !f.dryRun { counts.byPlaybook[playbookNames[Int(f.playbook)], default: [:]][f.state, default: 0] += 1 }
        for incident in incidents.values where !incident.dryRun {
            counts.byPlaybook[incident.playbook, default: [:]][incident.state, default: 0] += 1
            if incident.pendingApproval != nil { counts.approvalsPending += 1 }
            if incident.quarantine != nil { counts.quarantined += 1 }
        }
        counts.quarantined += quarantinedFindings.count
        return counts
    }

    /// How many incidents and findings the index holds, in full and in part (benchmarks).
    public var sizes: (incidents: Int, finished: Int, findings: Int) { (incidents.count, finished.count, findings.count) }

    public static func dedupeKey(id: String, updatedAt: String?, dryRun: Bool = false) -> String {
        (dryRun ? dryRunPrefix : "") + id + "|" + (updatedAt ?? "")
    }

    static let dryRunPrefix = "dry-run\u{0}"

    /// Whether a dedupe key is a dry run's.
    public static func isDryRun(_ dedupeKey: String) -> Bool { dedupeKey.hasPrefix(dryRunPrefix) }

    /// The dedupe key of the finding a record is about (`data.finding`, and `data.dry_run`:
    /// a dry run's findings are kept apart, so that they never suppress a real run).
    static func dedupeKey(_ data: JSONValue) -> String {
        let summary = data["finding"]
        return dedupeKey(id: summary?["id"]?.stringValue ?? "", updatedAt: summary?["updated_at"]?.stringValue, dryRun: data["dry_run"] == .bool(true))
    }

    /// The digest of a playbook's incident key; a dry run's incidents have keys of their own.
    static func keyDigest(_ playbook: String, _ key: String, dryRun: Bool) -> Digest {
        Digest(playbook: dryRun ? dryRunPrefix + playbook : playbook, key: key)
    }

    /// A playbook's name, shared with every incident of that playbook.
    mutating func interned(_ name: String) -> String { playbookNames[Int(ordinal(name))] }

    /// Takes an incident read in full from the journal (`load(incident:from:)`) in place of
    /// what was kept of it (`.live`), so that it can run again.
    public mutating func adopt(_ incident: Incident) {
        finished.removeValue(forKey: StoredID(incident.id))
        incidents[incident.id] = incident
    }

    /// Replays the records of one incident only: its state is built from them alone
    /// (the records of no incident, such as `finding.received`, feed deduplication), so
    /// `cordon show` need not read the rest of a large journal.
    public static func load(incident id: String, from journal: any Journal) async throws -> Incident? {
        var index = IncidentIndex()
        for record in try await journal.records(incident: id) { index.apply(record) }
        return index.incidents[id]
    }

    /// Replays every record of a journal.
    public static func load(from journal: any Journal, retention: Retention = .everything) async throws -> IncidentIndex {
        var index = IncidentIndex(retention: retention)
        var next: Int64 = 1
        while true {
            let batch = try await journal.records(from: next, limit: 1_000)
            for record in batch { index.apply(record) }
            guard let last = batch.last else { break }
            next = last.seq + 1
            index.loadedThrough = last.seq
        }
        return index
    }
}
