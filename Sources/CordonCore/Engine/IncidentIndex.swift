import DequeModule
import OrderedCollections

/// What the journal says about incidents, rebuilt by replaying records: the engine
/// keeps it current as it appends, `cordon incidents` and `cordon show` read it.
public struct IncidentIndex: Sendable {
    public struct Step: Sendable {
        public var id: String
        public var action: String
        /// planned, running, succeeded, failed, skipped or awaiting-approval.
        public var status: String
        public var attempts: Int
        public var outputs: JSONValue?
        public var error: String?
        public var target: String?
        public var evidence: [String]
    }

    public struct Incident: Sendable {
        public var id: String
        public var playbook: String
        public var playbookVersion: Int
        public var key: String
        public var title: String?
        public var severity: JSONValue?
        public var openedAt: String
        /// running, awaiting-approval, completed, failed or closed.
        public var status: String
        public var findings: [String]
        public var steps: OrderedDictionary<String, Step>
        public var pendingApproval: String?
        public var dryRun: Bool
        /// Decided approvals: step id → approved, denied or aborted.
        public var approvals: [String: String] = [:]
        /// The pending approval's request time, timeout and on_timeout.
        public var approvalRequestedAt: String?
        public var approvalTimeout: String?
        public var approvalOnTimeout: String?
        /// The finding.received record of the finding that opened it.
        public var findingRef: RecordRef?
        /// Its seq (nil while its commit is under way).
        public var findingSeq: Int64? { findingRef?.seq }
        /// The summary of the finding that opened it (id, type, account, region…).
        public var finding: JSONValue = .null

        public var isOpen: Bool { status != "closed" }

        /// The step statuses as templates and `when` patterns see them (`steps.ID.status`).
        public var stepsContext: JSONValue {
            var o = JSONObject()
            for (id, step) in steps {
                var s: JSONObject = ["status": .string(step.status), "attempts": .number(JSONNumber(step.attempts))]
                if let outputs = step.outputs { s["output"] = outputs }
                if let error = step.error { s["error"] = .string(error) }
                o[id] = .object(s)
            }
            return .object(o)
        }

        public var json: JSONValue {
            [
                "id": .string(id), "key": .string(key), "title": title.map(JSONValue.string) ?? .null, "severity": severity ?? .null,
                "playbook": .string(playbook), "status": .string(status), "opened_at": .string(openedAt),
                "findings": .array(findings.map(JSONValue.string)), "finding": finding,
                "account": finding["account"] ?? .null, "region": finding["region"] ?? .null,
                "steps": .array(steps.values.map { ["id": .string($0.id), "action": .string($0.action), "status": .string($0.status)] }),
                "rollback": .string("cordon rollback \(id)"),
            ]
        }
    }

    /// How much of what the journal says an index keeps.
    public enum Retention: Sendable, Equatable {
        /// Every incident in full and every finding received: what `cordon incidents`
        /// and drill reports read.
        case everything
        /// What a long-running runner needs, so that its memory does not grow with the
        /// journal: incidents in full while they run or await an approval, finished ones
        /// (completed, failed, closed) by their id, playbook and key only, enough to attach
        /// later findings and never to open one twice; and what was done with the last
        /// `findings` findings received (the dedupe window). A finding delivered again
        /// after it left the window is still never handled twice by a playbook whose
        /// incident it opened (the incident's id says so); one it was attached to gets
        /// a second `finding.attached`, and no step runs again.
        case live(findings: Int)

        /// The dedupe window of `cordon run` unless `--dedupe-window` says otherwise.
        public static let defaultWindow = 100_000
    }

    public let retention: Retention

    /// Incidents kept in full: all of them, or (`.live`) those not finished.
    public private(set) var incidents: OrderedDictionary<String, Incident> = [:]

    /// A finished incident whose state was let go (`.live`).
    struct Finished: Sendable {
        var playbook: Int32
        /// Its `playbook\0key`.
        var key: Digest
        /// Not closed: later findings with its key attach to it.
        var open: Bool
    }
    private var finished: [StoredID: Finished] = [:]
    /// Finished incidents not closed, by playbook.
    private var finishedOpen: [Int32: Int] = [:]

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
    /// By the digest of `id|updatedAt`.
    private var findings: [Digest: FindingState] = [:]
    /// `.live`: the findings in the order they were first seen, oldest first.
    private var findingOrder: Deque<Digest> = []

    /// Findings received whose matching playbooks have not all opened or attached an
    /// incident (their handling was cut short), by `id|updatedAt`. A plain dictionary:
    /// an entry is removed as each finding is handled, which an ordered one does in time
    /// proportional to its size (thousands under load); resuming orders them by `seq`.
    /// Never let go of before it is handled.
    public private(set) var unhandled: [String: Unhandled] = [:]
    /// The open incident of each `playbook\0key`.
    private var openByKey: [Digest: StoredID] = [:]
    /// Playbook names by ordinal, and their ordinals.
    private var playbookNames: [String] = []
    private var playbookOrdinals: [String: Int32] = [:]

    public struct Unhandled: Sendable {
        public var ref: RecordRef
        public var seq: Int64 { ref.seq ?? 0 }
        public var playbooks: Set<String>
        /// The finding's evidence (its hash).
        public var evidence: String?
    }

    public init(retention: Retention = .everything) {
        if case .live(let window) = retention { precondition(window > 0, "the dedupe window holds at least one finding") }
        self.retention = retention
    }

    private mutating func ordinal(_ playbook: String) -> Int32 {
        if let ordinal = playbookOrdinals[playbook] { return ordinal }
        let ordinal = Int32(playbookNames.count)
        playbookNames.append(playbook)
        playbookOrdinals[playbook] = ordinal
        return ordinal
    }

    /// Updates what the index knows of a finding; `.live` lets go of the oldest finding
    /// beyond the window.
    private mutating func updateFinding(_ digest: Digest, _ body: (inout FindingState) -> Void) {
        if case .live(let window) = retention, findings[digest] == nil {
            findingOrder.append(digest)
            if findingOrder.count > window { findings.removeValue(forKey: findingOrder.removeFirst()) }
        }
        body(&findings[digest, default: FindingState()])
    }

    private mutating func markHandled(_ playbook: String, _ key: String) {
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

    /// Whether a playbook has already opened or attached an incident for this finding
    /// (within the window).
    public func playbook(_ name: String, handled key: String) -> Bool {
        guard let ordinal = playbookOrdinals[name] else { return false }
        return findings[Digest(key)]?.handled.contains(ordinal) ?? false
    }

    /// Whether an incident was ever opened (in full or finished).
    public func knows(incident id: String) -> Bool { incidents[id] != nil || finished[StoredID(id)] != nil }

    /// The open incident of a playbook with this key, if any.
    public func open(playbook: String, key: String) -> String? {
        guard let stored = openByKey[Digest(playbook: playbook, key: key)] else { return nil }
        let id = stored.id
        if let incident = incidents[id] { return incident.isOpen ? id : nil }
        return finished[stored]?.open == true ? id : nil
    }

    /// Incidents not closed, by playbook, and the approvals pending.
    public var openCounts: (byPlaybook: [String: Int], approvalsPending: Int) {
        var open: [String: Int] = [:]
        for (ordinal, count) in finishedOpen where count > 0 { open[playbookNames[Int(ordinal)]] = count }
        var pending = 0
        for incident in incidents.values where incident.isOpen {
            open[incident.playbook, default: 0] += 1
            if incident.pendingApproval != nil { pending += 1 }
        }
        return (open, pending)
    }

    /// How many incidents and findings the index holds, in full and in part (benchmarks).
    public var sizes: (incidents: Int, finished: Int, findings: Int) { (incidents.count, finished.count, findings.count) }

    public static func dedupeKey(id: String, updatedAt: String?) -> String { id + "|" + (updatedAt ?? "") }

    static func dedupeKey(_ summary: JSONValue?) -> String {
        dedupeKey(id: summary?["id"]?.stringValue ?? "", updatedAt: summary?["updated_at"]?.stringValue)
    }

    /// A playbook's name, shared with every incident of that playbook.
    private mutating func interned(_ name: String) -> String { playbookNames[Int(ordinal(name))] }

    /// Applies a record. `ref` says where a record not yet written (`seq` 0) will be: for
    /// `finding.received`, its own slot; for `incident.opened`, its finding's record when
    /// `finding_seq` is set by the journal as it writes it.
    public mutating func apply(_ record: JournalRecord, ref: RecordRef? = nil) {
        let d = record.data
        switch record.kind {
        case RecordKind.findingReceived:
            let key = Self.dedupeKey(d["finding"])
            let at: RecordRef = record.seq != 0 ? .seq(record.seq) : (ref ?? .seq(0))
            let matched = d["matched"]?.arrayValue
            let digest = Digest(key)
            updateFinding(digest) { state in
                state.received = at
                if matched?.isEmpty == true { state.unmatched = true }
            }
            if let matched, !matched.isEmpty {
                // Playbooks that handled it already (applied before this record, which
                // a handler may do while the record's commit is under way) are done.
                let handled = findings[digest]?.handled ?? PlaybookSet()
                let playbooks = Set(matched.compactMap(\.stringValue)).filter { name in
                    !(playbookOrdinals[name].map(handled.contains) ?? false)
                }
                if !playbooks.isEmpty {
                    unhandled[key] = Unhandled(ref: at, playbooks: playbooks, evidence: record.evidenceHashes.first)
                }
            }
            return
        case RecordKind.findingUnmatched:
            updateFinding(Digest(Self.dedupeKey(d["finding"]))) { $0.unmatched = true }
            return
        case RecordKind.incidentOpened:
            guard let id = record.incident else { return }
            let playbook = interned(d["playbook"]?.stringValue ?? "")
            if d["playbook"]?.stringValue != nil { markHandled(playbook, Self.dedupeKey(d["finding"])) }
            if let earlier = finished.removeValue(forKey: StoredID(id)), earlier.open { finishedOpen[earlier.playbook, default: 1] -= 1 }
            openByKey[Digest(playbook: playbook, key: d["key"]?.stringValue ?? "")] = StoredID(id)
            var findingRef = ref
            if let seq = d["finding_seq"]?.numberValue?.intValue { findingRef = RecordRef.seq(Int64(seq)) }
            incidents[id] = Incident(
                id: id, playbook: playbook, playbookVersion: d["playbook_version"]?.numberValue?.intValue ?? 0,
                key: d["key"]?.stringValue ?? "", title: d["title"]?.stringValue, severity: d["severity"], openedAt: record.time,
                status: "running", findings: d["finding"]?["id"]?.stringValue.map { [$0] } ?? [], steps: [:], pendingApproval: nil,
                dryRun: d["dry_run"] == .bool(true), findingRef: findingRef,
                finding: d["finding"] ?? .null)
            return
        default:
            break
        }
        guard let id = record.incident else { return }
        guard let position = incidents.index(forKey: id) else {
            applyFinished(record, d, id)
            return
        }
        let playbook = incidents.values[position].playbook
        let key = incidents.values[position].key
        switch record.kind {
        case RecordKind.findingAttached:
            markHandled(playbook, Self.dedupeKey(d["finding"]))
        case RecordKind.incidentClosed:
            let digest = Digest(playbook: playbook, key: key)
            if openByKey[digest] == StoredID(id) { openByKey.removeValue(forKey: digest) }
        default:
            break
        }
        // Mutated in place (taking it out and writing it back would copy its steps).
        Self.apply(record, d, to: &incidents.values[position])
        if case .live = retention {
            let incident = incidents.values[position]
            if ["completed", "failed", "closed"].contains(incident.status) && incident.pendingApproval == nil {
                incidents.remove(at: position)
                let ordinal = ordinal(playbook)
                finished[StoredID(id)] = Finished(playbook: ordinal, key: Digest(playbook: playbook, key: key), open: incident.isOpen)
                if incident.isOpen { finishedOpen[ordinal, default: 0] += 1 }
            }
        }
    }

    /// A record of a finished incident let go of: only what attaches findings to it
    /// and closes it matters.
    private mutating func applyFinished(_ record: JournalRecord, _ d: JSONValue, _ id: String) {
        let stored = StoredID(id)
        guard let incident = finished[stored] else { return }
        switch record.kind {
        case RecordKind.findingAttached:
            markHandled(playbookNames[Int(incident.playbook)], Self.dedupeKey(d["finding"]))
        case RecordKind.incidentClosed where incident.open:
            finished[stored]?.open = false
            finishedOpen[incident.playbook, default: 1] -= 1
            if openByKey[incident.key] == stored { openByKey.removeValue(forKey: incident.key) }
        default:
            break
        }
    }

    private static func apply(_ record: JournalRecord, _ d: JSONValue, to incident: inout Incident) {
        let stepID = d["step"]?.stringValue ?? ""
        func updateStep(_ body: (inout Step) -> Void) {
            var step = incident.steps[stepID] ?? Step(id: stepID, action: d["action"]?.stringValue ?? "", status: "planned", attempts: 0, evidence: [])
            body(&step)
            incident.steps[stepID] = step
        }
        switch record.kind {
        case RecordKind.findingAttached:
            if let f = d["finding"]?["id"]?.stringValue { incident.findings.append(f) }
        case RecordKind.stepPlanned:
            updateStep { $0.status = "planned" }
        case RecordKind.stepIntent:
            updateStep {
                $0.status = "running"
                $0.attempts = d["attempt"]?.numberValue?.intValue ?? $0.attempts + 1
                $0.target = d["target"]?.stringValue ?? $0.target
            }
        case RecordKind.stepSucceeded:
            updateStep {
                $0.status = "succeeded"
                $0.outputs = d["outputs"]
                $0.error = nil
                $0.target = d["target"]?.stringValue ?? $0.target
                $0.evidence = record.evidenceHashes
            }
        case RecordKind.stepFailed:
            updateStep {
                // A failed attempt that is to be retried leaves the step unfinished: a
                // runner stopped during the backoff retries it when it resumes.
                $0.status = d["will_retry_in"] == nil ? "failed" : "retrying"
                $0.error = d["error"]?.stringValue
            }
        case RecordKind.stepSkipped:
            updateStep {
                $0.status = "skipped"
                $0.error = d["reason"]?.stringValue
            }
        case RecordKind.approvalRequested:
            updateStep { $0.status = "awaiting-approval" }
            incident.status = "awaiting-approval"
            incident.pendingApproval = stepID
            incident.approvalRequestedAt = record.time
            incident.approvalTimeout = d["timeout"]?.stringValue
            incident.approvalOnTimeout = d["on_timeout"]?.stringValue
        case RecordKind.approvalDecided:
            incident.pendingApproval = nil
            incident.status = "running"
            incident.approvals[stepID] = d["decision"]?.stringValue ?? "denied"
            incident.approvalRequestedAt = nil
            updateStep { $0.status = d["decision"]?.stringValue == "approved" ? "approved" : "denied" }
        case RecordKind.rollbackSucceeded:
            updateStep { $0.status = "rolled-back" }
        case RecordKind.rollbackFailed:
            updateStep { $0.error = "rollback failed: " + (d["error"]?.stringValue ?? "") }
        case RecordKind.incidentCompleted:
            incident.status = d["status"]?.stringValue ?? "completed"
        case RecordKind.incidentClosed:
            incident.status = "closed"
        default:
            break
        }
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
        }
        return index
    }
}
