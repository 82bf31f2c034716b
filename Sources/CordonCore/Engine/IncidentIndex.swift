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

    public private(set) var incidents: OrderedDictionary<String, Incident> = [:]
    /// Findings already received, by `id|updatedAt`, with their `finding.received` record
    /// (a slot while its commit is under way).
    public private(set) var receivedFindings: [String: RecordRef] = [:]
    /// Findings that matched no playbook: `finding.received` with `matched: []`, or
    /// `finding.unmatched` (written by earlier versions, and when a finding received
    /// with matches arrives again after its playbooks were removed); and those that did,
    /// an incident per matching playbook (`playbook` → finding keys it handled).
    public private(set) var unmatchedFindings: Set<String> = []
    public private(set) var handled: [String: Set<String>] = [:]
    /// Findings received whose matching playbooks have not all opened or attached an
    /// incident (their handling was cut short), by `id|updatedAt`. A plain dictionary:
    /// an entry is removed as each finding is handled, which an ordered one does in time
    /// proportional to its size (thousands under load); resuming orders them by `seq`.
    public private(set) var unhandled: [String: Unhandled] = [:]
    /// The open incident of each `playbook\0key`.
    private var openByKey: [String: String] = [:]

    public struct Unhandled: Sendable {
        public var ref: RecordRef
        public var seq: Int64 { ref.seq ?? 0 }
        public var playbooks: Set<String>
        /// The finding's evidence (its hash).
        public var evidence: String?
    }

    private mutating func markHandled(_ playbook: String, _ key: String) {
        handled[playbook, default: []].insert(key)
        if var entry = unhandled[key] {
            entry.playbooks.remove(playbook)
            if entry.playbooks.isEmpty { unhandled.removeValue(forKey: key) } else { unhandled[key] = entry }
        }
    }

    /// Whether a playbook has already opened or attached an incident for this finding.
    public func playbook(_ name: String, handled key: String) -> Bool { handled[name]?.contains(key) ?? false }

    public init() {}

    /// The open incident of a playbook with this key, if any.
    public func open(playbook: String, key: String) -> Incident? {
        guard let id = openByKey[playbook + "\u{0}" + key], let incident = incidents[id], incident.isOpen else { return nil }
        return incident
    }

    public static func dedupeKey(id: String, updatedAt: String?) -> String { id + "|" + (updatedAt ?? "") }

    static func dedupeKey(_ summary: JSONValue?) -> String {
        dedupeKey(id: summary?["id"]?.stringValue ?? "", updatedAt: summary?["updated_at"]?.stringValue)
    }

    /// Applies a record. `ref` says where a record not yet written (`seq` 0) will be: for
    /// `finding.received`, its own slot; for `incident.opened`, its finding's record when
    /// `finding_seq` is set by the journal as it writes it.
    public mutating func apply(_ record: JournalRecord, ref: RecordRef? = nil) {
        let d = record.data
        switch record.kind {
        case RecordKind.findingReceived:
            let key = Self.dedupeKey(d["finding"])
            let at: RecordRef = record.seq != 0 ? .seq(record.seq) : (ref ?? .seq(0))
            receivedFindings[key] = at
            if let matched = d["matched"]?.arrayValue {
                if matched.isEmpty {
                    unmatchedFindings.insert(key)
                } else {
                    // Playbooks that handled it already (applied before this record, which
                    // a handler may do while the record's commit is under way) are done.
                    let playbooks = Set(matched.compactMap(\.stringValue)).filter { !self.playbook($0, handled: key) }
                    if !playbooks.isEmpty {
                        unhandled[key] = Unhandled(ref: at, playbooks: playbooks, evidence: record.evidenceHashes.first)
                    }
                }
            }
            return
        case RecordKind.findingUnmatched:
            unmatchedFindings.insert(Self.dedupeKey(d["finding"]))
            return
        case RecordKind.incidentOpened:
            guard let id = record.incident else { return }
            if let playbook = d["playbook"]?.stringValue { markHandled(playbook, Self.dedupeKey(d["finding"])) }
            openByKey[(d["playbook"]?.stringValue ?? "") + "\u{0}" + (d["key"]?.stringValue ?? "")] = id
            var findingRef = ref
            if let seq = d["finding_seq"]?.numberValue?.intValue { findingRef = RecordRef.seq(Int64(seq)) }
            incidents[id] = Incident(
                id: id, playbook: d["playbook"]?.stringValue ?? "", playbookVersion: d["playbook_version"]?.numberValue?.intValue ?? 0,
                key: d["key"]?.stringValue ?? "", title: d["title"]?.stringValue, severity: d["severity"], openedAt: record.time,
                status: "running", findings: d["finding"]?["id"]?.stringValue.map { [$0] } ?? [], steps: [:], pendingApproval: nil,
                dryRun: d["dry_run"] == .bool(true), findingRef: findingRef,
                finding: d["finding"] ?? .null)
            return
        default:
            break
        }
        guard let id = record.incident, let position = incidents.index(forKey: id) else { return }
        let playbook = incidents.values[position].playbook
        let key = incidents.values[position].key
        switch record.kind {
        case RecordKind.findingAttached:
            markHandled(playbook, Self.dedupeKey(d["finding"]))
        case RecordKind.incidentClosed:
            if openByKey[playbook + "\u{0}" + key] == id { openByKey.removeValue(forKey: playbook + "\u{0}" + key) }
        default:
            break
        }
        // Mutated in place (taking it out and writing it back would copy its steps).
        Self.apply(record, d, to: &incidents.values[position])
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
    public static func load(from journal: any Journal) async throws -> IncidentIndex {
        var index = IncidentIndex()
        var next: Int64 = 1
        while true {
            let batch = try await journal.records(from: next, limit: 5_000)
            for record in batch { index.apply(record) }
            guard let last = batch.last else { break }
            next = last.seq + 1
        }
        return index
    }
}
