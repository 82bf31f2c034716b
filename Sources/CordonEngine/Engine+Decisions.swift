import CordonCore
import Foundation

/// Approvals: decisions from any process, timeouts, and what other processes journal.
///
/// A decision is a claimed record (`NewRecord.claim`, one per approval request): whoever
/// journals it first, a person with `cordon approve` in another process or the runner
/// applying `on_timeout`, decides; any later decision is refused and names the first. A
/// runner learns of decisions journaled elsewhere by following the journal (`follow`).
extension Engine {
    /// The claim of the decision on the approval requested by record `requestSeq`.
    static func decisionClaim(incident: String, requestSeq: Int64) -> String { "approval:\(incident):\(requestSeq)" }

    /// Journals a decision on a pending approval (`cordon approve`), then, unless
    /// `continuing` is false (a runner elsewhere continues the incident), runs what it
    /// allows. A decision already made, by anyone or by the approval's timeout, stands: a
    /// second one is refused with an error that names it.
    public func decide(incident id: String, step: String, by person: String, approve: Bool, reason: String?, continuing: Bool = true) async throws {
        guard let incident = try await incident(id) else { throw CordonError(.notFound, "no incident \(id) (see `cordon incidents`)") }
        guard incident.pendingApproval == step, let requestSeq = incident.approvalRequestSeq else {
            if let earlier = try await latestDecision(incident: id, step: step) { throw CordonError(.conflict, Self.alreadyDecided(earlier, step: step, incident: id)) }
            throw CordonError(
                .conflict,
                incident.pendingApproval.map { "incident \(id) awaits approval of step \($0), not \(step)" }
                    ?? "incident \(id) has no pending approval (\(incident.state.rawValue), status \(incident.status))")
        }
        var data: JSONObject = [
            "step": .string(step), "decision": .string((approve ? ApprovalDecision.approved : .denied).rawValue), "by": .string(person),
            "round": .number(JSONNumber(incident.steps[step]?.round ?? incident.rounds)),
        ]
        if let reason { data["reason"] = .string(reason) }
        var decision = NewRecord(incident: id, kind: RecordKind.approvalDecided, actor: "user:\(person)", data: .object(data))
        decision.claim = Self.decisionClaim(incident: id, requestSeq: requestSeq)
        do {
            try await load(id)
            try await append(decision)
        } catch let conflict as JournalClaimConflict {
            throw CordonError(.conflict, Self.alreadyDecided(conflict.existing, step: step, incident: id))
        }
        if continuing { try await run(incident: id) }
    }

    /// The latest decision journaled on a step's approval.
    func latestDecision(incident id: String, step: String) async throws -> JournalRecord? {
        try await journal.records(incident: id).last { $0.kind == RecordKind.approvalDecided && $0.data["step"]?.stringValue == step }
    }

    /// Says who decided an approval, when and what.
    static func alreadyDecided(_ record: JournalRecord, step: String, incident: String) -> String {
        let d = record.data
        let what = d["decision"]?.stringValue ?? "decided"
        let who = d["timed_out"] == .bool(true) ? "its timeout (on_timeout: \(d["on_timeout"]?.stringValue ?? "?"))" : d["by"]?.stringValue.map { "user:\($0)" } ?? record.actor
        let why = d["reason"]?.stringValue.map { ": \($0)" } ?? ""
        return "step \(step) of \(incident) was already \(what) by \(who) at \(record.time)\(why); a decision is final"
    }

    /// Applies `on_timeout` to approvals that waited longer than their `timeout`:
    /// `proceed` runs the step, `skip` skips it, `abort` fails it and stops the incident.
    /// A decision journaled elsewhere first wins: it is taken in (`follow`) instead.
    /// Returns the incidents that moved on.
    @discardableResult
    public func expireApprovals(now: Date? = nil) async throws -> [String] {
        let now = now ?? clock.now
        var moved: [String] = []
        for incident in index.incidents.values where incident.status == .awaitingApproval {
            guard let step = incident.pendingApproval, let requestSeq = incident.approvalRequestSeq,
                let requested = incident.approvalRequestedAt.flatMap(Timestamp.parse), let timeout = incident.approvalTimeout.flatMap(DurationParser.parse)
            else { continue }
            guard now.timeIntervalSince(requested) >= timeout.seconds else { continue }
            let onTimeout = incident.approvalOnTimeout ?? "abort"
            let decision = (onTimeout == "proceed" ? ApprovalDecision.approved : onTimeout == "skip" ? .denied : .aborted).rawValue
            var record = NewRecord(
                incident: incident.id, kind: RecordKind.approvalDecided, actor: actor,
                data: [
                    "step": .string(step), "decision": .string(decision), "by": "timeout", "timed_out": true, "on_timeout": .string(onTimeout),
                    "round": .number(JSONNumber(incident.steps[step]?.round ?? incident.rounds)),
                    "reason": .string("nobody decided within \(incident.approvalTimeout ?? "") (on_timeout: \(onTimeout))"),
                ])
            record.claim = Self.decisionClaim(incident: incident.id, requestSeq: requestSeq)
            do {
                try await append(record)
            } catch is JournalClaimConflict {
                // Decided elsewhere a moment ago: that decision stands.
                try await takeIn()
            }
            try await run(incident: incident.id)
            moved.append(incident.id)
        }
        return moved
    }

    /// Takes in what other processes journaled since the last call (decisions, closes,
    /// rollbacks) and returns the incidents a decision among them lets run on, for the
    /// caller to run. A runner calls it about four times a second, so that a decision made
    /// with `cordon approve` reaches it within a second.
    public func follow() async throws -> [String] {
        try await takeIn()
        defer { runnableFromElsewhere = [] }
        return runnableFromElsewhere
    }

    /// Applies what other processes journaled since the cursor (one caller at a time, so
    /// that nothing is applied twice); incidents a decision among it lets run on wait in
    /// `runnableFromElsewhere` for the next `follow`.
    func takeIn() async throws {
        await acquire("follow")
        defer { release("follow") }
        while true {
            let (records, through) = try await journal.foreignRecords(after: followCursor, limit: 1_000)
            for record in records {
                index.apply(record)
                if record.kind == RecordKind.approvalDecided, let id = record.incident, index.incidents[id]?.isRunnable == true, !runnableFromElsewhere.contains(id) {
                    runnableFromElsewhere.append(id)
                }
            }
            followCursor = max(followCursor, through)
            if records.count < 1_000 { return }
        }
    }
}
