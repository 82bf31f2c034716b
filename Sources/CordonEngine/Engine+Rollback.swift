import CordonCore
import OrderedCollections

/// `cordon rollback`: undoing containment from the journaled pre-state.
extension Engine {
    /// What `cordon rollback` did for one run of a step.
    public struct RollbackResult: Sendable {
        public var step: String
        /// rolled back, already rolled back, not reversible, or failed.
        public var status: String
        public var detail: String?
        /// What the step acted on.
        public var target: String?
    }

    /// One run of a reversible step that recorded the state before it (its first intent's
    /// capture, or the pre-state its success reported), whatever its result.
    struct RollbackUnit {
        var step: String
        var action: String
        var key: String
        var inputs: JSONObject
        var target: JSONValue?
        var preState: JSONValue
        var firstSeq: Int64
    }

    /// Undoes containment from the recorded pre-state: every run of a step that recorded
    /// one, whether it succeeded, failed or was cut short (a crash after its first
    /// change), newest first, or only the runs of `step`. Runs already rolled back are
    /// skipped, so running it again is harmless.
    public func rollback(incident id: String, step only: String? = nil, by person: String? = nil) async throws -> [RollbackResult] {
        guard let incident = try await incident(id) else { throw CordonError(.notFound, "no incident \(id) (see `cordon incidents`)") }
        await acquire("run\u{0}" + id)
        defer { release("run\u{0}" + id) }
        let records = try await journal.records(incident: id)
        var units = Self.rollbackUnits(records)
        // Rolled back since the run began: by its idempotency key (a run with the same key
        // begun after that rollback, in a later evaluation, is a run of its own), or by
        // step in journals of earlier versions.
        let undone = records.filter { $0.kind == RecordKind.rollbackSucceeded }
        func rolledBack(_ unit: RollbackUnit) -> Bool {
            undone.contains { r in
                r.seq > unit.firstSeq && (r.data["idempotency_key"]?.stringValue.map { $0 == unit.key } ?? (r.data["step"]?.stringValue == unit.step))
            }
        }
        if let only {
            guard incident.steps[only] != nil else { throw CordonError(.notFound, "incident \(id) has no step \(only)") }
            units = units.filter { $0.step == only }
            if units.isEmpty { throw CordonError(.usage, "step \(only) of \(id) changed nothing that can be rolled back (no recorded pre-state)") }
        }
        let who = person.map { "user:\($0)" } ?? actor
        var results: [RollbackResult] = []
        for unit in units.sorted(by: { $0.firstSeq > $1.firstSeq }) {
            let target = unit.target?.stringValue
            if rolledBack(unit) {
                results.append(RollbackResult(step: unit.step, status: "already rolled back", target: target))
                continue
            }
            guard let action = actions[unit.action], action.reversible else {
                results.append(RollbackResult(step: unit.step, status: "not reversible", detail: "\(unit.action) cannot be rolled back by Cordon", target: target))
                continue
            }
            var base: JSONObject = ["step": .string(unit.step), "action": .string(unit.action), "idempotency_key": .string(unit.key)]
            if let target = unit.target { base["target"] = target }
            try await append(NewRecord(incident: id, kind: RecordKind.rollbackIntent, actor: who, data: .object(base)))
            let request = ActionRequest(
                action: unit.action, inputs: unit.inputs, idempotencyKey: unit.key + ":rollback", incident: incident.json, evidence: evidence, secrets: secrets)
            let result: Result<ActionOutcome, ActionError>
            do throws(ActionError) {
                result = .success(try await action.rollback(request, preState: unit.preState))
            } catch {
                result = .failure(error)
            }
            switch result {
            case .success(let outcome):
                var done = base
                done["outputs"] = .object(outcome.outputs)
                if !outcome.evidence.isEmpty { done["evidence"] = .array(outcome.evidence) }
                if outcome.alreadyDone { done["already_done"] = true }
                try await append(NewRecord(incident: id, kind: RecordKind.rollbackSucceeded, actor: who, data: .object(done)))
                results.append(RollbackResult(step: unit.step, status: "rolled back", target: target))
            case .failure(let error):
                var failed = base
                failed["error"] = .string(error.description)
                try await append(NewRecord(incident: id, kind: RecordKind.rollbackFailed, actor: who, data: .object(failed)))
                results.append(RollbackResult(step: unit.step, status: "failed", detail: error.description, target: target))
            }
        }
        return results
    }

    /// The runs of steps with a recorded pre-state, by idempotency key, in order of their
    /// first record: the capture journaled with the first intent, replaced by the
    /// pre-state the action reported when it succeeded (what it found before its own
    /// change, which a retry after a partial change reads from the resource's tags).
    static func rollbackUnits(_ records: [JournalRecord]) -> [RollbackUnit] {
        var units: OrderedDictionary<String, RollbackUnit> = [:]
        for record in records {
            let d = record.data
            // A rollback ends a run: the key's next intent begins another.
            if record.kind == RecordKind.rollbackSucceeded, let key = d["idempotency_key"]?.stringValue, let unit = units.removeValue(forKey: key) {
                units["\(key)@\(unit.firstSeq)"] = unit
                continue
            }
            guard record.kind == RecordKind.stepIntent || record.kind == RecordKind.stepSucceeded else { continue }
            guard let pre = d["pre_state"], pre != .null, let step = d["step"]?.stringValue else { continue }
            // Journals of earlier versions have no key on some records: the step and seq name the run.
            let key = d["idempotency_key"]?.stringValue ?? "\(step)@\(record.seq)"
            if var unit = units[key] {
                if record.kind == RecordKind.stepSucceeded { unit.preState = pre }
                unit.target = d["target"] ?? unit.target
                units[key] = unit
            } else {
                units[key] = RollbackUnit(
                    step: step, action: d["action"]?.stringValue ?? "", key: d["idempotency_key"]?.stringValue ?? key, inputs: d["inputs"]?.objectValue ?? [:], target: d["target"], preState: pre,
                    firstSeq: record.seq)
            }
        }
        return Array(units.values)
    }
}
