import CordonCore
import Foundation

// Replaying the journal: how each record changes the index and its incidents.
extension IncidentIndex {
    /// Applies a record. `ref` says where a record not yet written (`seq` 0) will be: for
    /// `finding.received`, its own slot; for `incident.opened` and `finding.attached`, its
    /// finding's record when `finding_seq` is set by the journal as it writes it.
    public mutating func apply(_ record: JournalRecord, ref: RecordRef? = nil) {
        let d = record.data
        switch record.kind {
        case RecordKind.findingReceived:
            applyReceived(record, d, ref: ref)
            return
        case RecordKind.findingUnmatched:
            updateFinding(Digest(Self.dedupeKey(d))) { $0.unmatched = true }
            return
        case RecordKind.findingQuarantined where record.incident == nil:
            let key = Self.dedupeKey(d)
            unhandled.removeValue(forKey: key)
            quarantinedFindings[key] = (d["reason"]?.stringValue ?? "", d["finding"] ?? .null)
            return
        case RecordKind.incidentOpened:
            applyOpened(record, d, ref: ref)
            return
        default:
            break
        }
        guard let id = record.incident else { return }
        guard let position = incidents.index(forKey: id) else {
            applyLetGo(record, d, id)
            return
        }
        let playbook = incidents.values[position].playbook
        let key = incidents.values[position].key
        let dryRun = incidents.values[position].dryRun
        switch record.kind {
        case RecordKind.findingAttached:
            markHandled(playbook, Self.dedupeKey(d))
        case RecordKind.incidentClosed:
            let digest = Self.keyDigest(playbook, key, dryRun: dryRun)
            if openByKey[digest] == StoredID(id) { openByKey.removeValue(forKey: digest) }
            closedByKey[digest] = StoredID(id)
        default:
            break
        }
        // Mutated in place (taking it out and writing it back would copy its steps).
        Self.apply(record, d, to: &incidents.values[position], ref: ref)
        if case .live = retention {
            let incident = incidents.values[position]
            if incident.state != .open && incident.pendingApproval == nil {
                incidents.remove(at: position)
                finished[StoredID(id)] = Finished(
                    playbook: ordinal(playbook), key: Self.keyDigest(playbook, key, dryRun: dryRun), closed: incident.closure != nil,
                    dryRun: dryRun, rounds: Int32(incident.rounds), completedRounds: Int32(incident.completedRounds),
                    lastActivity: Int64(Timestamp.parse(incident.lastActivity)?.timeIntervalSince1970 ?? 0))
            }
        }
    }


    /// `finding.received`: the finding is known; the playbooks it matched and that have
    /// not handled it yet are to run.
    private mutating func applyReceived(_ record: JournalRecord, _ d: JSONValue, ref: RecordRef?) {
        let key = Self.dedupeKey(d)
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
                unhandled[key] = Unhandled(ref: at, playbooks: playbooks, evidence: record.evidenceHashes.first, finding: d["finding"] ?? .null)
            }
        }
    }

    /// `incident.opened`.
    private mutating func applyOpened(_ record: JournalRecord, _ d: JSONValue, ref: RecordRef?) {
        guard let id = record.incident else { return }
        let playbook = interned(d["playbook"]?.stringValue ?? "")
        let dryRun = d["dry_run"] == .bool(true)
        if d["playbook"]?.stringValue != nil { markHandled(playbook, Self.dedupeKey(d)) }
        finished.removeValue(forKey: StoredID(id))
        openByKey[Self.keyDigest(playbook, d["key"]?.stringValue ?? "", dryRun: dryRun)] = StoredID(id)
        var findingRef = ref
        if let seq = d["finding_seq"]?.numberValue?.intValue { findingRef = RecordRef.seq(Int64(seq)) }
        var incident = Incident(
            id: id, playbook: playbook, playbookVersion: d["playbook_version"]?.numberValue?.intValue ?? 0,
            key: d["key"]?.stringValue ?? "", title: d["title"]?.stringValue, severity: d["severity"], openedAt: record.time,
            status: .running, findings: d["finding"]?["id"]?.stringValue.map { [$0] } ?? [], steps: [:], pendingApproval: nil,
            dryRun: dryRun, findingRef: findingRef, finding: d["finding"] ?? .null)
        incident.lastActivity = record.time
        incident.follows = d["follows"]?.stringValue
        if let findingRef { incident.roundFindings[1] = findingRef }
        incidents[id] = incident
    }

    /// A record of an incident let go of: only what attaches findings to it, finishes its
    /// evaluations and closes it matters (the engine reads it in full to run it again).
    private mutating func applyLetGo(_ record: JournalRecord, _ d: JSONValue, _ id: String) {
        let stored = StoredID(id)
        guard var incident = finished[stored] else { return }
        incident.changes &+= 1
        finished[stored] = incident
        switch record.kind {
        case RecordKind.findingAttached:
            markHandled(playbookNames[Int(incident.playbook)], Self.dedupeKey(d))
            if let round = d["round"]?.numberValue?.intValue { incident.rounds = max(incident.rounds, Int32(clamping: round)) }
            incident.lastActivity = Int64(Timestamp.parse(record.time)?.timeIntervalSince1970 ?? Double(incident.lastActivity))
        case RecordKind.incidentCompleted:
            incident.completedRounds = Int32(clamping: d["round"]?.numberValue?.intValue ?? Int(incident.rounds))
        case RecordKind.incidentClosed where !incident.closed:
            incident.closed = true
            if openByKey[incident.key] == stored { openByKey.removeValue(forKey: incident.key) }
            closedByKey[incident.key] = stored
        default:
            return
        }
        finished[stored] = incident
    }

    private static func apply(_ record: JournalRecord, _ d: JSONValue, to incident: inout Incident, ref: RecordRef?) {
        let applied = applyStepRecord(record, d, to: &incident) || applyIncidentRecord(record, d, to: &incident, ref: ref)
        if applied { incident.refreshStatus() }
    }

    /// A record of one step (`step.*`, `approval.*`, `rollback.*`); false for any other.
    /// One case for each kind of record, in one switch, so that what a step's status
    /// responds to reads in one place.
    private static func applyStepRecord(_ record: JournalRecord, _ d: JSONValue, to incident: inout Incident) -> Bool {
        let stepID = d["step"]?.stringValue ?? ""
        let round = d["round"]?.numberValue?.intValue ?? 1
        func updateStep(_ body: (inout Step) -> Void) {
            var step = incident.steps[stepID] ?? Step(id: stepID, action: d["action"]?.stringValue ?? "", status: .planned, attempts: 0, evidence: [])
            if round > step.round {
                // The first record of a later evaluation of the step: its fields describe that one.
                step = Step(id: stepID, action: step.action, status: .planned, attempts: 0, evidence: [], round: round, succeeded: step.succeeded)
            }
            body(&step)
            incident.steps[stepID] = step
        }
        switch record.kind {
        case RecordKind.stepPlanned:
            updateStep {
                $0.status = .planned
                $0.error = d["problems"]?.arrayValue?.compactMap(\.stringValue).joined(separator: "; ")
            }
        case RecordKind.stepIntent:
            updateStep {
                $0.status = .running
                $0.attempts = d["attempt"]?.numberValue?.intValue ?? $0.attempts + 1
                $0.target = d["target"]?.stringValue ?? $0.target
                if let pre = d["pre_state"], $0.preState == nil { $0.preState = pre }
            }
        case RecordKind.stepSucceeded:
            updateStep {
                $0.status = .succeeded
                $0.outputs = d["outputs"]
                $0.error = nil
                $0.target = d["target"]?.stringValue ?? $0.target
                $0.evidence = record.evidenceHashes
                if let key = d["idempotency_key"]?.stringValue { $0.succeeded[key] = d["outputs"] ?? .null }
            }
        case RecordKind.stepFailed:
            updateStep {
                // A failed attempt that is to be retried leaves the step unfinished: a
                // runner stopped during the backoff retries it when it resumes.
                $0.status = d["will_retry_in"] == nil ? .failed : .retrying
                $0.error = d["error"]?.stringValue
            }
        case RecordKind.stepSkipped:
            updateStep {
                $0.status = .skipped
                $0.error = d["reason"]?.stringValue
            }
        case RecordKind.approvalRequested:
            // A decision on this request already applied (journaled by another process and
            // taken in before the request's own append returned here) stands.
            if let step = incident.steps[stepID], step.round == round, step.decision != nil, record.seq != 0, step.decisionSeq > record.seq { return false }
            updateStep { $0.status = .awaitingApproval }
            incident.pendingApproval = stepID
            incident.approvalRequestSeq = record.seq != 0 ? record.seq : nil
            incident.approvalRequestedAt = record.time
            incident.approvalTimeout = d["timeout"]?.stringValue
            incident.approvalOnTimeout = d["on_timeout"]?.stringValue
        case RecordKind.approvalDecided:
            // Only the pending approval is decided (a decision names it by its request).
            if incident.pendingApproval == stepID {
                incident.pendingApproval = nil
                incident.approvalRequestSeq = nil
                incident.approvalRequestedAt = nil
            }
            updateStep {
                let decision = ApprovalDecision(rawValue: d["decision"]?.stringValue ?? ApprovalDecision.denied.rawValue)
                $0.decision = decision
                $0.decisionSeq = record.seq
                $0.status = decision == .approved ? .approved : .denied
            }
        case RecordKind.rollbackSucceeded:
            if incident.steps[stepID] != nil {
                incident.steps[stepID]?.status = .rolledBack
                // Undone: a later evaluation with the same inputs runs the step again.
                if let key = d["idempotency_key"]?.stringValue {
                    incident.steps[stepID]?.succeeded.removeValue(forKey: key)
                } else {
                    incident.steps[stepID]?.succeeded.removeAll()
                }
            }
        case RecordKind.rollbackFailed:
            if incident.steps[stepID] != nil { incident.steps[stepID]?.error = "rollback failed: " + (d["error"]?.stringValue ?? "") }
        default:
            return false
        }
        return true
    }

    /// A record of the incident as a whole (findings attached, completion, close,
    /// quarantine); false for any other.
    private static func applyIncidentRecord(_ record: JournalRecord, _ d: JSONValue, to incident: inout Incident, ref: RecordRef?) -> Bool {
        switch record.kind {
        case RecordKind.findingAttached:
            if let f = d["finding"]?["id"]?.stringValue { incident.findings.append(f) }
            // Attachments of earlier versions carry no round: they evaluated nothing again.
            if let attached = d["round"]?.numberValue?.intValue {
                incident.rounds = max(incident.rounds, attached)
                if let seq = d["finding_seq"]?.numberValue?.intValue {
                    incident.roundFindings[attached] = .seq(Int64(seq))
                } else if let ref {
                    incident.roundFindings[attached] = ref
                }
                incident.lastActivity = record.time
            }
        case RecordKind.incidentCompleted:
            let finishedRound = d["round"]?.numberValue?.intValue ?? incident.rounds
            incident.completedRounds = max(incident.completedRounds, finishedRound)
            for r in incident.roundFindings.keys where r <= finishedRound { incident.roundFindings.removeValue(forKey: r) }
            incident.outcome = d["status"]?.stringValue ?? IncidentStatus.completed.rawValue
        case RecordKind.incidentClosed:
            incident.closure = Closure(time: record.time, by: d["by"]?.stringValue ?? record.actor, reason: d["reason"]?.stringValue)
            // A close withdraws a pending approval: nobody decides it any more.
            incident.pendingApproval = nil
            incident.approvalRequestSeq = nil
            incident.approvalRequestedAt = nil
        case RecordKind.findingQuarantined:
            incident.quarantine = d["reason"]?.stringValue ?? "quarantined"
        default:
            return false
        }
        return true
    }
}
