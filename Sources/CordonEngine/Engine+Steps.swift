import CordonCore
import Crypto
import Foundation
import Synchronization

/// Running an incident's playbook: one evaluation (round) per finding, step by step.
extension Engine {
    /// Runs (or resumes) an incident's evaluations not yet finished, in order: the one of
    /// the finding that opened it, then one for each finding attached since. Stops at a
    /// pending approval, a close or a quarantine. `hint` is the event of one evaluation
    /// when the caller has it (else it is read from the evidence store).
    public func run(incident id: String, hint: (round: Int, event: JSONValue)? = nil) async throws {
        await acquire("run\u{0}" + id)
        defer { release("run\u{0}" + id) }
        try await load(id)
        while let state = index.incidents[id], state.isRunnable, let playbook = playbooks.first(where: { $0.name == state.playbook }) {
            let round = state.completedRounds + 1
            let event: JSONValue
            if let hint, hint.round == round { event = hint.event } else { event = try await self.event(of: state, round: round) }
            let finished = try await CrashGuard.tracking("i:" + id) {
                try await runRound(round, of: id, playbook: playbook, event: event)
            }
            guard finished else { return }
        }
    }

    /// One evaluation of the playbook for one finding; true when it finished
    /// (`incident.completed`), false when it stopped at an approval, a close or a
    /// quarantine.
    func runRound(_ round: Int, of id: String, playbook: Playbook, event: JSONValue) async throws -> Bool {
        var root = event.objectValue ?? [:]
        root["vars"] = .object(vars(playbook, root))
        let roundField = JSONValue.number(JSONNumber(round))
        var failed = false
        for step in playbook.steps {
            if followsBetweenSteps { try await takeIn() }
            guard let current = index.incidents[id], current.closure == nil, current.quarantine == nil else { return false }
            let base: JSONObject = ["step": .string(step.id), "action": .string(step.action), "round": roundField]
            func skip(_ reason: String) {
                var data = base
                data["reason"] = .string(reason)
                record(NewRecord(incident: id, kind: RecordKind.stepSkipped, actor: actor, data: .object(data)))
            }
            let existing = current.steps[step.id].flatMap { $0.round == round ? $0 : nil }
            if let existing, [StepStatus.succeeded, .failed, .skipped].contains(existing.status) {
                // As when it ran: only a failure with on_error: abort stops what follows.
                if existing.status == .failed && step.onError == .abort { failed = true }
                continue
            }
            root["steps"] = current.stepsContext(round: round, dryRun: dryRun)
            root["incident"] = current.json
            if failed {
                skip("an earlier step failed (on_error: abort)")
                continue
            }
            if let when = step.when, !holds(when, key: "\(playbook.name)\u{0}\(step.id)\u{0}when", on: root) {
                skip("`when` did not match")
                continue
            }
            if let decision = existing?.decision, decision != .approved {
                if decision == .aborted {
                    var data = base
                    data["error"] = "approval timed out (on_timeout: abort)"
                    data["retryable"] = false
                    try await append(NewRecord(incident: id, kind: RecordKind.stepFailed, actor: actor, data: .object(data)))
                    failed = true
                } else {
                    skip("approval \(decision)")
                }
                continue
            }
            guard let prepared = try await prepare(step, playbook: playbook, incident: id, root: root, base: base) else {
                if step.onError == .abort { failed = true }
                continue
            }
            // The same inputs succeeded in an earlier evaluation: done, and not called again.
            if !dryRun, let outputs = current.steps[step.id]?.succeeded[prepared.key] {
                var data = prepared.fields
                data["outputs"] = outputs
                data["already_done"] = true
                data["reason"] = "the same inputs succeeded in an earlier evaluation of this incident"
                record(NewRecord(incident: id, kind: RecordKind.stepSucceeded, actor: actor, data: .object(data)))
                continue
            }
            if let approval = step.approval, !dryRun, existing?.decision == nil,
                approval.when.map({ holds($0, key: "\(playbook.name)\u{0}\(step.id)\u{0}approval", on: root) }) ?? true
            {
                var data = base
                data["timeout"] = approval.timeout.map { .string(DurationParser.format($0)) } ?? .null
                data["on_timeout"] = .string(approval.onTimeout.rawValue)
                data["inputs"] = prepared.fields["inputs"] ?? [:]
                try await append(NewRecord(incident: id, kind: RecordKind.approvalRequested, actor: actor, data: .object(data)))
                return false
            }
            let ok = try await execute(step, prepared, incident: id, round: round)
            if !ok && step.onError == .abort { failed = true }
        }
        record(NewRecord(incident: id, kind: RecordKind.incidentCompleted, actor: actor, data: ["status": .string((failed ? IncidentStatus.failed : .completed).rawValue), "round": roundField]))
        return true
    }

    /// The playbook's `vars` for an event, each seeing those before it.
    func vars(_ playbook: Playbook, _ event: JSONObject) -> JSONObject {
        var root = event
        var vars = JSONObject()
        for (name, tree) in playbook.vars {
            root["vars"] = .object(vars)
            if let value = try? tree.render(TemplateContext(root: root, secrets: secrets)).value { vars[name] = value }
        }
        return vars
    }

    /// A step's rendered inputs and the fields its records carry.
    struct PreparedStep {
        /// step, action, action_kind, round, inputs, idempotency_key, target.
        var fields: JSONObject
        var inputs: JSONObject
        /// SHA-256 of the incident, playbook name and version, step id and canonical
        /// inputs: the same for every retry and restart of this run of the step, and for
        /// any later evaluation with the same inputs.
        var key: String
    }

    /// Renders a step's inputs (defaults applied, types checked). A template error is the
    /// step's permanent failure, journaled here (nil). In a dry run an output of a planned
    /// step, not known before it runs, stands as a placeholder that says so.
    func prepare(_ step: Playbook.Step, playbook: Playbook, incident id: String, root: JSONObject, base: JSONObject) async throws -> PreparedStep? {
        let spec = config.registry[step.action]
        var fields = base
        fields["action_kind"] = .string(spec?.kind.rawValue ?? "utility")
        var inputs = JSONObject()
        var context = TemplateContext(root: root, secrets: secrets)
        let problems: DryRunProblems? = dryRun ? DryRunProblems() : nil
        if let problems {
            // What a real run would know and a dry run does not: planned steps' outputs
            // (placeholders), and secrets not set here (placeholders, and the plan says so).
            let planned = Set(index.incidents[id].map { $0.steps.values.filter { $0.status == .planned }.map(\.id) } ?? [])
            context.notYetKnown = { @Sendable (path: TemplatePath) -> JSONValue? in
                if path.root == "secret", let name = path.key(at: 1) {
                    problems.add("secret \(name) is not set here: a real run fails at this step unless it is")
                    return .string("<secret \(name)>")
                }
                guard path.root == "steps", let step = path.key(at: 1), planned.contains(step), path.key(at: 2) == "output" else { return nil }
                return .string("<\(path), known once \(step) runs>")
            }
        }
        do {
            for (name, tree) in step.with { inputs[name] = try tree.render(context).value }
            for input in spec?.inputs ?? [] where inputs[input.name] == nil {
                if let d = input.defaultValue { inputs[input.name] = d }
            }
            for input in spec?.inputs ?? [] {
                if let value = inputs[input.name], !input.type.accepts(value) {
                    throw TemplateError(template: input.name, offset: 0, message: "input \(input.name) must be \(input.type.rawValue), got \(JSONWriter.string(value))")
                }
            }
        } catch {
            fields["error"] = .string("\(error)")
            try await append(NewRecord(incident: id, kind: RecordKind.stepFailed, actor: actor, data: .object(fields)))
            return nil
        }
        if let found = problems?.all, !found.isEmpty { fields["problems"] = .array(found.map(JSONValue.string)) }
        let key = SHA256.hash(data: Array("\(id)\u{0}\(playbook.name)\u{0}\(playbook.version)\u{0}\(step.id)\u{0}".utf8) + CanonicalJSON.bytes(.object(inputs))).hex
        fields["inputs"] = .object(inputs)
        fields["idempotency_key"] = .string(key)
        if let target = Self.target(inputs) { fields["target"] = .string(target) }
        return PreparedStep(fields: fields, inputs: inputs, key: key)
    }

    /// Runs a prepared step with its retries; true when it succeeded. A reversible action
    /// first captures the state it may change, journaled with its first intent, so that
    /// `cordon rollback` can restore it whatever happens next (a failure, a crash).
    func execute(_ step: Playbook.Step, _ prepared: PreparedStep, incident id: String, round: Int) async throws -> Bool {
        let base = prepared.fields
        guard !dryRun, let action = actions[step.action] else { return try await executeWithoutAction(step, base, incident: id) }
        guard let current = index.incidents[id] else { return false }
        let request = ActionRequest(
            action: step.action, inputs: prepared.inputs, idempotencyKey: prepared.key, incident: current.json, evidence: evidence, secrets: secrets)
        // What this evaluation journaled of the step already (an earlier one's pre-state and
        // attempts are not this run's).
        let existing = current.steps[step.id].flatMap { $0.round == round ? $0 : nil }
        // An intent without a result (a crash or kill during the action): ask the action
        // whether its effect is in place before acting again.
        if existing?.status == .running, action.checkable, let outcome = try await Self.check(action, request, slots: actionSlots) {
            var done = Self.succeeded(base, outcome, preState: existing?.preState)
            done["already_done"] = true
            done["recovered"] = true
            record(NewRecord(incident: id, kind: RecordKind.stepSucceeded, actor: actor, data: .object(done)))
            return true
        }
        var started = clock.now
        // A step stopped between its attempts (the runner stopped during the backoff), or
        // during one (a crash), goes on with the next attempt: a crash counts as one.
        var attempt = existing.map { [StepStatus.retrying, .running].contains($0.status) ? $0.attempts : 0 } ?? 0
        var preState = existing?.preState
        while true {
            attempt += 1
            if attempt > step.retry.attempts {
                var failed = base
                failed["attempt"] = .number(JSONNumber(attempt - 1))
                failed["error"] = .string("the runner stopped during each of the \(step.retry.attempts) attempts (a crash or kill while the action ran)")
                failed["retryable"] = false
                try await append(NewRecord(incident: id, kind: RecordKind.stepFailed, actor: actor, data: .object(failed)))
                return false
            }
            var intent = base
            intent["attempt"] = .number(JSONNumber(attempt))
            if action.reversible && preState == nil {
                do throws(ActionError) {
                    preState = try await Self.capture(action, request, slots: actionSlots)
                } catch {
                    // Nothing was changed: the attempt fails before its intent.
                    if try await retryAfterFailure(error, step: step, attempt: attempt, started: started, base: base, incident: id) { continue }
                    return false
                }
            }
            if let preState { intent["pre_state"] = preState }
            try await append(NewRecord(incident: id, kind: RecordKind.stepIntent, actor: actor, data: .object(intent)))
            // The intent is durable; the call waits for a place among the actions in
            // flight (time that does not count against the step's timeout). Cancelled
            // while waiting (the runner stopping), the intent stays without a result and
            // the next start resolves it as after a crash.
            let (result, waited) = try await Self.attempt(
                action, request, timeout: step.timeout.map { $0 - .seconds(clock.now.timeIntervalSince(started)) }, clock: clock, slots: actionSlots)
            started = started.addingTimeInterval(waited.seconds)
            // The runner stopping (its task cancelled: the shutdown timeout) is not the
            // action's failure: the intent stays without a result, and the next start
            // resolves it as after a crash (a check, or the action again with the same
            // idempotency key).
            if case .failure = result, Task.isCancelled { throw CancellationError() }
            switch result {
            case .success(let outcome):
                var done = Self.succeeded(base, outcome, preState: preState)
                done["attempt"] = .number(JSONNumber(attempt))
                if outcome.alreadyDone { done["already_done"] = true }
                let succeeded = NewRecord(incident: id, kind: RecordKind.stepSucceeded, actor: actor, data: .object(done))
                if action.checkable { record(succeeded) } else { try await append(succeeded) }
                return true
            case .failure(let error):
                if try await retryAfterFailure(error, step: step, attempt: attempt, started: started, base: base, incident: id) { continue }
                return false
            }
        }
    }

    /// A step that calls nothing: planned in a dry run (true), failed for good when its
    /// action is not implemented (false).
    private func executeWithoutAction(_ step: Playbook.Step, _ base: JSONObject, incident id: String) async throws -> Bool {
        if dryRun {
            var planned = base
            if step.approval != nil { planned["approval"] = "would be requested if its condition holds" }
            record(NewRecord(incident: id, kind: RecordKind.stepPlanned, actor: actor, data: .object(planned)))
            return true
        }
        var failed = base
        failed["error"] = .string("\(step.action) is not implemented in Cordon \(Cordon.version); run with --dry-run to see the plan")
        failed["retryable"] = false
        try await append(NewRecord(incident: id, kind: RecordKind.stepFailed, actor: actor, data: .object(failed)))
        return false
    }

    /// The fields of `step.succeeded`: the step's, with what the action gave.
    private static func succeeded(_ base: JSONObject, _ outcome: ActionOutcome, preState: JSONValue?) -> JSONObject {
        var done = base
        done["outputs"] = .object(outcome.outputs)
        if let target = outcome.target { done["target"] = .string(target) }
        if !outcome.evidence.isEmpty { done["evidence"] = .array(outcome.evidence) }
        if let pre = outcome.preState ?? preState { done["pre_state"] = pre }
        return done
    }

    /// Journals a failed attempt; true when the step is to be tried again (after the
    /// backoff, slept here), false when it failed for good.
    private func retryAfterFailure(
        _ error: ActionError, step: Playbook.Step, attempt: Int, started: Date, base: JSONObject, incident id: String
    ) async throws -> Bool {
        var failed = base
        failed["attempt"] = .number(JSONNumber(attempt))
        failed["error"] = .string(error.description)
        failed["retryable"] = .bool(error.retryable)
        let elapsed = Duration.seconds(clock.now.timeIntervalSince(started))
        var delay = Self.backoff(attempt: attempt, retry: step.retry, jitter: jitter)
        // The service's Retry-After is a floor, within the step's timeout (or, without
        // one, within max_backoff).
        if let after = error.retryAfter {
            failed["retry_after"] = .string(DurationParser.format(after))
            delay = max(delay, after)
        }
        let timeLeft = step.timeout.map { elapsed + delay < $0 } ?? (error.retryAfter == nil || delay <= step.retry.maxBackoff)
        guard error.retryable && attempt < step.retry.attempts && timeLeft else {
            try await append(NewRecord(incident: id, kind: RecordKind.stepFailed, actor: actor, data: .object(failed)))
            return false
        }
        failed["will_retry_in"] = .string(DurationParser.format(delay))
        try await append(NewRecord(incident: id, kind: RecordKind.stepFailed, actor: actor, data: .object(failed)))
        try await clock.sleep(for: delay)
        return true
    }

    /// The event of the finding an evaluation is for (from the evidence store).
    func event(of incident: IncidentIndex.Incident, round: Int) async throws -> JSONValue {
        let ref = incident.roundFindings[round] ?? (round == 1 ? incident.findingRef : nil)
        // A finding whose record is queued but not yet written (intake hands findings over
        // before their commit): once what was queued is durable, its slot has its seq.
        if let ref, ref.seq == nil { try await journal.durable() }
        guard let seq = ref?.seq,
            let record = try await journal.records(from: seq, limit: 1).first, record.seq == seq, let hash = record.evidenceHashes.first
        else { throw CordonError(.corruptJournal, "cannot find the finding of evaluation \(round) of \(incident.id)") }
        return try JSONParser.parse(try evidence.load(hash, citedAt: seq))
    }

    /// Runs one attempt once it has a place among `slots` (its timeout counted from then),
    /// off the engine's actor: the place is given back as soon as the action returns.
    /// Returns the result and how long it waited for its place.
    static func attempt(
        _ action: any Action, _ request: ActionRequest, timeout: Duration?, clock: any CordonClock, slots: ActionSlots?
    ) async throws -> (Result<ActionOutcome, ActionError>, Duration) {
        let waited = try await slots?.acquire() ?? .zero
        defer { slots?.release() }
        do throws(ActionError) {
            return (.success(try await attempt(action, request, timeout: timeout, clock: clock)), waited)
        } catch {
            return (.failure(error), waited)
        }
    }

    /// An action's check of its effect (after a crash), with a place among `slots`; nil
    /// when the check fails.
    static func check(_ action: any Action, _ request: ActionRequest, slots: ActionSlots?) async throws -> ActionOutcome? {
        _ = try await slots?.acquire()
        defer { slots?.release() }
        return try? await action.check(request)
    }

    /// A reversible action's capture of what it may change, with a place among `slots`.
    static func capture(_ action: any Action, _ request: ActionRequest, slots: ActionSlots?) async throws(ActionError) -> JSONValue? {
        do {
            _ = try await slots?.acquire()
        } catch {
            throw .retryable("Cancelled", "the runner is stopping")
        }
        defer { slots?.release() }
        return try await action.capture(request)
    }

    /// Runs one attempt, cancelled at the timeout (on the engine's clock).
    static func attempt(_ action: any Action, _ request: ActionRequest, timeout: Duration?, clock: any CordonClock = SystemClock()) async throws(ActionError) -> ActionOutcome {
        guard let timeout else { return try await action.run(request) }
        guard timeout > .zero else { throw .retryable("Timeout", "the step's timeout was reached") }
        let result: Result<ActionOutcome, ActionError>? = await clock.withTimeout(timeout) {
            do throws(ActionError) { return .success(try await action.run(request)) } catch { return .failure(error) }
        }
        return try (result ?? .failure(.retryable("Timeout", "no answer within \(DurationParser.format(timeout))"))).get()
    }

    /// Exponential backoff with full jitter: random in [0, min(max, base × 2^(attempt-1))].
    static func backoff(attempt: Int, retry: Playbook.Retry, jitter: JitterSource = .system) -> Duration {
        let cap = retry.backoff * Double(1 << min(attempt - 1, 30))
        let ceiling = min(cap, retry.maxBackoff)
        let ms = Double(ceiling.components.seconds) * 1000 + Double(ceiling.components.attoseconds) / 1e15
        return .milliseconds(Int64(jitter.random(in: 0...max(ms, 0))))
    }

    /// The resource a step acts on, from its inputs.
    static func target(_ inputs: JSONObject) -> String? {
        for key in ["instance_id", "role_name", "user_name", "access_key_id", "bucket", "group_id", "trail", "topic_arn"] {
            if let v = inputs[key]?.stringValue { return v }
        }
        return nil
    }
}

/// What a dry run found a real run would fail on while rendering a step (a secret not set).
final class DryRunProblems: Sendable {
    private let problems = Mutex<[String]>([])
    func add(_ problem: String) { problems.withLock { if !$0.contains(problem) { $0.append(problem) } } }
    var all: [String] { problems.withLock { $0 } }
}
