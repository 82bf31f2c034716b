import Crypto
import Foundation
import OrderedCollections

/// Runs playbooks: from a finding to a contained incident, every fact journaled.
///
/// For each finding: `finding.received` (with the finding as evidence) is durable before
/// anything else; the finding is matched against every trigger at once; each matching
/// playbook (in name order) opens an incident keyed by its `incident.key`, or attaches the
/// finding to the open incident with that key. Steps then run in order: `when` is
/// evaluated, approvals pause the incident, inputs are rendered, and each attempt is
/// journaled as `step.intent` → action → `step.succeeded` / `step.failed`, with retries
/// for retryable errors (exponential backoff, full jitter) and the step's timeout.
public actor Engine {
    public let config: LoadedConfig
    let playbooks: [Playbook]
    let triggers: PatternSet
    let actions: [String: any Action]
    let journal: any Journal
    let evidence: any EvidenceSink
    let secrets: SecretStore
    let actor: String
    let dryRun: Bool
    /// Real time, or a drill's virtual clock (which also stamps the records' times).
    let clock: any CordonClock
    /// Retry jitter: the system generator, or a seeded one in drills.
    let jitter: JitterSource
    /// At most this many actions run (or check their effect) at once; nil: no bound.
    /// Only the call is bounded: an incident waiting for its intent's commit holds no
    /// place, so the bound limits what the actions' targets see (cloud API calls in
    /// flight) without slowing how fast incidents reach their actions.
    public nonisolated var actionsInFlight: Int? { actionSlots?.count }
    let actionSlots: ActionSlots?
    public private(set) var index: IncidentIndex

    /// What happened to one finding.
    public struct Outcome: Sendable {
        public var finding: String
        public var incidents: [String]
        public var duplicate: Bool
    }

    public init(
        config: LoadedConfig, actions: [String: any Action], journal: any Journal, evidence: any EvidenceSink,
        secrets: SecretStore, actor: String, dryRun: Bool = false, index: IncidentIndex = IncidentIndex(),
        clock: any CordonClock = SystemClock(), jitter: JitterSource = .system, actionsInFlight: Int? = nil
    ) {
        self.config = config
        self.playbooks = config.playbooks.sorted { $0.name < $1.name }
        self.triggers = PatternSet(playbooks.map(\.trigger))
        self.actions = actions
        self.journal = journal
        self.evidence = evidence
        self.secrets = secrets
        self.actor = actor
        self.dryRun = dryRun
        self.index = index
        self.clock = clock
        self.jitter = jitter
        self.actionSlots = actionsInFlight.map { ActionSlots($0) }
    }

    /// The record with the clock's time when the clock stamps records (drills).
    private func stamped(_ record: NewRecord) -> NewRecord {
        guard clock.stampsRecords, record.time == nil else { return record }
        var r = record
        r.time = clock.now
        return r
    }

    @discardableResult
    private func append(_ record: NewRecord) async throws -> JournalRecord {
        try await append([record])[0]
    }

    /// Appends a record whose loss in a crash recovery repairs (an incident opened before
    /// its first intent, a checkable step's result, a completion) without waiting: it is
    /// queued behind every record before it and becomes durable with the commit that
    /// writes it, so the incident waits neither for an fsync nor for the writer. Intake,
    /// intents, failures, approvals and rollbacks wait for durability (`append`).
    private func record(_ record: NewRecord) {
        let (records, opening) = withDeferredOpening([record])
        // Stamped with the commit's time by the journal (or the drill's clock here); the
        // index keeps what it needs of it now.
        let stampedRecords = records.map(stamped)
        journal.post(stampedRecords)
        let now = clock.now
        _ = applied(stampedRecords.map { JournalRecord(unwritten: $0, now: now) }, opening: opening)
    }

    /// Appends records in one commit, in order.
    @discardableResult
    private func append(_ records: [NewRecord]) async throws -> [JournalRecord] {
        let (all, opening) = withDeferredOpening(records.map(stamped))
        let written = try await journal.append(all)
        return applied(written, opening: opening)
    }

    /// `incident.opened` records not yet appended, by incident: an incident's opening goes
    /// into the journal with its first step's record (one commit on the way from a finding
    /// to its first action instead of two). The index has it already.
    private var deferredOpenings: [String: NewRecord] = [:]

    private func withDeferredOpening(_ records: [NewRecord]) -> ([NewRecord], Bool) {
        guard let id = records.first?.incident, let opening = deferredOpenings.removeValue(forKey: id) else { return (records, false) }
        return ([opening] + records, true)
    }

    /// Applies written records to the index (an opening deferred into them was applied
    /// when it was made: only its time is taken from the journal) and returns the rest.
    private func applied(_ written: [JournalRecord], opening: Bool) -> [JournalRecord] {
        guard opening else {
            for record in written { index.apply(record) }
            return written
        }
        let rest = Array(written.dropFirst())
        for record in rest { index.apply(record) }
        return rest
    }

    /// Opens an incident in the index now and in the journal with its next record. The
    /// record is stamped with the time of opening, so that what the first step sees of the
    /// incident (`incident.opened_at`) is what the journal says when it is resumed.
    private func open(_ record: NewRecord, finding: RecordRef) {
        var opening = stamped(record)
        guard let id = opening.incident else { return }
        let time = opening.time ?? clock.now
        opening.time = time
        index.apply(JournalRecord(unwritten: opening, now: time), ref: finding)
        deferredOpenings[id] = opening
    }

    // MARK: - Findings

    // The engine is an actor, and calls interleave where it awaits the journal, so that
    // findings processed concurrently share group commits. Decisions that must not
    // interleave are serialised by key: intake, and one opening, attaching or run per
    // playbook and incident key.
    private var busy: Set<String> = []
    private var waiting: [String: [CheckedContinuation<Void, Never>]] = [:]

    private func acquire(_ key: String) async {
        while busy.contains(key) {
            await withCheckedContinuation { waiting[key, default: []].append($0) }
        }
        busy.insert(key)
    }

    private func release(_ key: String) {
        busy.remove(key)
        for continuation in waiting.removeValue(forKey: key) ?? [] { continuation.resume() }
    }

    /// Receives findings and handles them one after another (`cordon process`).
    public func process(_ findings: [Finding]) async throws -> [Outcome] {
        var outcomes: [Outcome] = []
        for receipt in try await receive(findings) { outcomes.append(try await handle(receipt)) }
        return outcomes
    }

    /// Processes one finding; safe to call concurrently.
    public func process(_ finding: Finding) async throws -> Outcome {
        try await handle(try await receive([finding])[0])
    }

    /// A finding journaled by `receive`, and what remains to do for it.
    public struct Receipt: Sendable {
        public var finding: Finding
        /// `id|updatedAt`: the same for every delivery of the same finding version.
        public var dedupe: String
        /// Its `finding.received` record (a slot until the journal writes it).
        public var received: RecordRef
        /// The seq of its `finding.received` record (0 while that record is being written).
        public var receivedSeq: Int64 { received.seq ?? 0 }
        /// The matching playbooks (indexes into the name-ordered list) that have not yet
        /// opened or attached an incident for it; empty for an unmatched or duplicate one.
        public var pending: [Int]
        public var duplicate: Bool
        /// What records say about the finding (`Engine.summary`), computed once at intake.
        public let summary: JSONValue
        public var id: String { finding.id ?? "unknown" }

        init(finding: Finding, dedupe: String, received: RecordRef, pending: [Int], duplicate: Bool, summary: JSONValue? = nil) {
            self.finding = finding
            self.dedupe = dedupe
            self.received = received
            self.pending = pending
            self.duplicate = duplicate
            self.summary = summary ?? Engine.summary(finding)
        }
    }

    /// Journals findings (each `finding.received` with the finding as evidence and the
    /// playbooks it matched, none for an unmatched one, or `finding.duplicate` for a
    /// delivery already received and handled) in one commit, and returns once they are durable:
    /// from then on the journal owns them, and a crash before they are handled is resumed
    /// from it (`resumeUnfinished`). Intake is serialised; handling runs concurrently.
    public nonisolated func receive(_ findings: [Finding]) async throws -> [Receipt] {
        guard !findings.isEmpty else { return [] }
        return try await receive(arrivals(findings))
    }

    /// Journals findings as `receive` does, but returns their receipts as soon as their
    /// records are queued, before the commit: a handler can open their incidents and queue
    /// the first step's intent behind them (often into the same commit), so that a finding
    /// reaches its first action after one commit instead of two. Nothing acts before it is
    /// durable: an action waits for its intent's commit, which follows the findings'.
    /// Acknowledge the findings to their source only after `Intake.durable()` returns. If
    /// their commit fails, the journal stops (every later append throws), as for a
    /// posted record: the runner stops, and what was not durable comes back from the
    /// source on the next start (files left claimed in the queue directory).
    public nonisolated func receiveQueued(_ findings: [Finding]) async throws -> Intake {
        guard !findings.isEmpty else { return Intake(receipts: [], journal: journal) }
        return Intake(receipts: try await queue(arrivals(findings)), journal: journal)
    }

    /// Receipts whose records may not yet be durable (`receiveQueued`).
    public struct Intake: Sendable {
        public var receipts: [Receipt]
        let journal: any Journal
        /// Returns once the findings' records are durable; throws if their commit failed.
        public func durable() async throws { try await journal.durable() }
    }

    private nonisolated func arrivals(_ findings: [Finding]) -> [Arrival] {
        // What does not depend on the journal's state (matching, summaries) is done by the
        // caller's task, in parallel with the engine's other work.
        var matcher = triggers.makeMatcher()
        return findings.map { finding in
            let event = finding.event
            return Arrival(
                finding: finding, summary: Self.summary(finding),
                dedupe: IncidentIndex.dedupeKey(id: finding.id ?? "unknown", updatedAt: Self.updatedAt(event)),
                // The bytes received when they are the event unchanged (a document of its
                // own, which the parser checked, duplicate keys included): matching them
                // saves writing the event out again.
                matched: finding.raw.map { (try? matcher.matches($0)) ?? [] } ?? matcher.matches(event: event))
        }
    }

    /// A finding about to be journaled, with what its receipt needs.
    struct Arrival: Sendable {
        var finding: Finding
        var summary: JSONValue
        var dedupe: String
        var matched: [Int]
    }

    /// Findings (dedupe keys) of batches whose records are being committed, and the
    /// receives waiting for one of them to be settled.
    private var receiving: Set<String> = []
    private var receivingWaiters: [CheckedContinuation<Void, Never>] = []

    /// Takes the intake lock once no finding of `arrivals` is in a batch being appended.
    private func acquireIntake(for arrivals: [Arrival]) async {
        await acquire("intake")
        while arrivals.contains(where: { receiving.contains($0.dedupe) }) {
            release("intake")
            await withCheckedContinuation { receivingWaiters.append($0) }
            await acquire("intake")
        }
    }

    private func receive(_ arrivals: [Arrival]) async throws -> [Receipt] {
        // Deciding what to journal is serialised ("intake"); waiting for the commit is not:
        // the next batch is decided while this one is written, and both can share a commit.
        // A batch with a finding still being committed by another waits for that commit,
        // so that it sees whether the finding was received (a duplicate) or not (its
        // commit failed: it is new).
        await acquireIntake(for: arrivals)
        let keys = Set(arrivals.map(\.dedupe))
        receiving.formUnion(keys)
        defer {
            receiving.subtract(keys)
            let waiters = receivingWaiters
            receivingWaiters = []
            for waiter in waiters { waiter.resume() }
        }
        let decided = Result { try decide(arrivals) }
        release("intake")
        let (records, plans) = try decided.get()
        let written = try await append(records)
        return Self.receipts(plans) { .seq(written[$0].seq) }
    }

    /// Decides and posts a batch's records (`receiveQueued`): the index has them at once.
    private func queue(_ arrivals: [Arrival]) async throws -> [Receipt] {
        // Serialised with `receive`: a finding that a batch being appended holds waits for
        // that commit, as there.
        await acquireIntake(for: arrivals)
        defer { release("intake") }
        let (decided, plans) = try decide(arrivals)
        let records = decided.map(stamped)
        journal.post(records)
        let now = clock.now
        for record in records { index.apply(JournalRecord(unwritten: record, now: now), ref: record.slot.map(RecordRef.slot)) }
        return Self.receipts(plans) { records[$0].slot.map(RecordRef.slot) ?? .seq(0) }
    }

    private static func receipts(_ plans: [ReceiptPlan], received: (Int) -> RecordRef) -> [Receipt] {
        plans.map { finding, dedupe, source, pending, summary in
            switch source {
            case .new(let i): Receipt(finding: finding, dedupe: dedupe, received: received(i), pending: pending, duplicate: false, summary: summary)
            case .earlier(let ref): Receipt(finding: finding, dedupe: dedupe, received: ref, pending: pending, duplicate: false, summary: summary)
            case .duplicate: Receipt(finding: finding, dedupe: dedupe, received: .seq(0), pending: [], duplicate: true, summary: summary)
            }
        }
    }

    /// Per finding of a batch: the index of its received record in the batch's records, or
    /// the seq it was received with earlier, or a duplicate delivery.
    enum ReceiptSource { case new(Int), earlier(RecordRef), duplicate }

    /// What a finding's receipt will say: the finding, its dedupe key, where its received
    /// record is, the playbooks still to handle it, its summary.
    typealias ReceiptPlan = (Finding, String, ReceiptSource, [Int], JSONValue)

    /// The records that receive a batch, and what each finding's receipt will say.
    private func decide(_ arrivals: [Arrival]) throws -> ([NewRecord], [ReceiptPlan]) {
        var records: [NewRecord] = []
        var plans: [ReceiptPlan] = []
        var seen: [String: Int] = [:]
        for arrival in arrivals {
            let finding = arrival.finding
            let event = finding.event
            let summary = arrival.summary
            let dedupe = arrival.dedupe
            if seen[dedupe] != nil {
                // The same finding twice in one batch: the second is a duplicate delivery.
                records.append(NewRecord(kind: RecordKind.findingDuplicate, actor: actor, data: ["finding": summary]))
                plans.append((finding, dedupe, .duplicate, [], summary))
                continue
            }
            seen[dedupe] = plans.count
            let matched = arrival.matched
            if let ref = index.received(dedupe) {
                // Received before: only what was cut short (a crash between receiving it
                // and opening its incidents) remains to do; otherwise a duplicate.
                let pending = matched.filter { !index.playbook(playbooks[$0].name, handled: dedupe) }
                let cutShort = matched.isEmpty ? !index.unmatched(dedupe) : !pending.isEmpty
                if cutShort {
                    if matched.isEmpty {
                        records.append(Self.referring(NewRecord(kind: RecordKind.findingUnmatched, actor: actor, data: ["finding": summary]), to: ref))
                    }
                    plans.append((finding, dedupe, .earlier(ref), pending, summary))
                } else {
                    records.append(NewRecord(kind: RecordKind.findingDuplicate, actor: actor, data: ["finding": summary]))
                    plans.append((finding, dedupe, .duplicate, [], summary))
                }
                continue
            }
            // The finding as received when it arrived as a document of its own.
            let ref = try evidence.store(finding.raw ?? JSONWriter.bytes(event), name: "finding", mediaType: "application/json")
            // `matched: []` says the finding matched no playbook: nothing remains to do
            // for it (journals of earlier versions follow it with `finding.unmatched`).
            plans.append((finding, dedupe, .new(records.count), matched, summary))
            var received = NewRecord(
                kind: RecordKind.findingReceived, actor: actor,
                data: ["finding": summary, "matched": .array(matched.map { .string(playbooks[$0].name) }), "evidence": [ref]])
            received.slot = RecordSlot()
            records.append(received)
        }
        return (records, plans)
    }

    /// The record with `finding_seq`, the seq of the finding's `finding.received` record:
    /// written now when known, else set by the journal (at once if that record was
    /// written meanwhile, otherwise when it writes this one).
    static func referring(_ record: NewRecord, to finding: RecordRef) -> NewRecord {
        var r = record
        switch finding {
        case .seq(let seq): r.data = SeqField.set("finding_seq", to: seq, in: r.data)
        case .slot(let slot): r.seqField = SeqField(key: "finding_seq", slot: slot)
        }
        return r
    }

    static func updatedAt(_ event: JSONValue) -> String? {
        event["detail"]?["updatedAt"]?.stringValue ?? event["time"]?.stringValue
    }

    /// Opens or attaches an incident for each playbook a received finding matched (in
    /// name order) and runs the new incidents' steps. Safe to call concurrently.
    public func handle(_ receipt: Receipt) async throws -> Outcome {
        let event = receipt.finding.event
        let id = receipt.id
        let summary = receipt.summary
        var incidents: [String] = []
        var handledElsewhere = 0
        for i in receipt.pending {
            let playbook = playbooks[i]
            let eventRoot = event.objectValue ?? [:]
            let key = (try? playbook.incident.key?.render(TemplateContext(root: eventRoot)).value).map(Template.text) ?? id
            let lock = "incident\u{0}\(playbook.name)\u{0}\(key)"
            await acquire(lock)
            defer { release(lock) }
            // Another delivery of the same finding may have got here first.
            if index.playbook(playbook.name, handled: receipt.dedupe) {
                handledElsewhere += 1
                continue
            }
            // Named by what opened it (the playbook, the key, the finding's version), which
            // a resumed opening repeats, and which its seq (not known before the finding's
            // commit) need not be part of.
            let incidentID = "inc-" + String(SHA256.hash(data: Array("\(playbook.name)\u{0}\(key)\u{0}\(receipt.dedupe)".utf8)).hex.prefix(12))
            // This finding opened it: delivered again after the dedupe window let go of it
            // (a runner's index keeps every incident's id, not every finding's key).
            if index.knows(incident: incidentID) {
                handledElsewhere += 1
                continue
            }
            if let open = index.open(playbook: playbook.name, key: key) {
                record(
                    Self.referring(
                        NewRecord(incident: open, kind: RecordKind.findingAttached, actor: actor, data: ["finding": summary]), to: receipt.received))
                incidents.append(open)
                continue
            }
            let title = (try? playbook.incident.title?.render(TemplateContext(root: eventRoot)).value).map(Template.text)
            let severity = try? playbook.incident.severity?.render(TemplateContext(root: eventRoot)).value
            open(
                Self.referring(
                    NewRecord(
                        incident: incidentID, kind: RecordKind.incidentOpened, actor: actor,
                        data: [
                            "playbook": .string(playbook.name), "playbook_version": .number(JSONNumber(playbook.version)), "key": .string(key),
                            "title": title.map(JSONValue.string) ?? .null, "severity": severity ?? .null, "finding": summary,
                            "dry_run": .bool(dryRun),
                        ]), to: receipt.received),
                finding: receipt.received)
            incidents.append(incidentID)
            try await run(incident: incidentID, event: event)
        }
        if !receipt.pending.isEmpty && handledElsewhere == receipt.pending.count {
            // A second delivery that raced the first: it changed nothing.
            record(NewRecord(kind: RecordKind.findingDuplicate, actor: actor, data: ["finding": summary]))
            return Outcome(finding: id, incidents: [], duplicate: true)
        }
        return Outcome(finding: id, incidents: incidents, duplicate: receipt.duplicate)
    }

    /// `when` and `approval.when` patterns, compiled once.
    private var conditionSets: [String: PatternSet] = [:]

    private func holds(_ pattern: EventPattern, key: String, on root: JSONObject) -> Bool {
        let set: PatternSet
        if let cached = conditionSets[key] {
            set = cached
        } else {
            set = PatternSet([pattern])
            conditionSets[key] = set
        }
        var m = set.makeMatcher()
        return !m.matches(event: .object(root)).isEmpty
    }

    /// What records say about a finding (id, source, type, times, where it came from).
    public static func summary(_ finding: Finding) -> JSONValue {
        let e = finding.event
        let created = e["detail"]?["createdAt"] ?? e["detail"]?["eventTime"] ?? e["detail"]?["findings"]?[0]?["CreatedAt"] ?? e["time"]
        return [
            "id": finding.id.map(JSONValue.string) ?? .null, "source": e["source"] ?? .null, "detail_type": e["detail-type"] ?? .null,
            "type": e["detail"]?["type"] ?? e["detail"]?["eventName"] ?? .null, "account": e["account"] ?? .null,
            "region": e["region"] ?? .null, "created_at": created ?? .null, "updated_at": e["detail"]?["updatedAt"] ?? e["time"] ?? .null,
            "format": .string(finding.format.rawValue), "origin": .string(finding.origin.description),
        ]
    }

    // MARK: - Steps

    /// Runs (or resumes) an incident's steps from the first one without a result.
    public func run(incident id: String, event: JSONValue) async throws {
        await acquire("run\u{0}" + id)
        defer { release("run\u{0}" + id) }
        guard let state = index.incidents[id], let playbook = playbooks.first(where: { $0.name == state.playbook }) else { return }
        var root = event.objectValue ?? [:]
        var vars = JSONObject()
        for (name, tree) in playbook.vars {
            root["vars"] = .object(vars)
            if let value = try? tree.render(TemplateContext(root: root, secret: secrets.lookup)).value { vars[name] = value }
        }
        root["vars"] = .object(vars)
        var failed = false
        for step in playbook.steps {
            guard let current = index.incidents[id] else { return }
            if let existing = current.steps[step.id], ["succeeded", "failed", "skipped"].contains(existing.status) {
                // As when it ran: only a failure with on_error: abort stops what follows.
                if existing.status == "failed" && step.onError == .abort { failed = true }
                continue
            }
            root["steps"] = current.stepsContext
            root["incident"] = current.json
            if failed {
                record(NewRecord(incident: id, kind: RecordKind.stepSkipped, actor: actor, data: ["step": .string(step.id), "action": .string(step.action), "reason": "an earlier step failed (on_error: abort)"]))
                continue
            }
            if let when = step.when {
                if !holds(when, key: "\(playbook.name)\u{0}\(step.id)\u{0}when", on: root) {
                    record(NewRecord(incident: id, kind: RecordKind.stepSkipped, actor: actor, data: ["step": .string(step.id), "action": .string(step.action), "reason": "`when` did not match"]))
                    continue
                }
            }
            if let decision = current.approvals[step.id], decision != "approved" {
                if decision == "aborted" {
                    try await append(NewRecord(incident: id, kind: RecordKind.stepFailed, actor: actor, data: ["step": .string(step.id), "action": .string(step.action), "error": "approval timed out (on_timeout: abort)", "retryable": false]))
                    failed = true
                } else {
                    record(NewRecord(incident: id, kind: RecordKind.stepSkipped, actor: actor, data: ["step": .string(step.id), "action": .string(step.action), "reason": .string("approval \(decision)")]))
                }
                continue
            }
            if let approval = step.approval, !dryRun, current.approvals[step.id] == nil {
                var applies = true
                if let when = approval.when {
                    applies = holds(when, key: "\(playbook.name)\u{0}\(step.id)\u{0}approval", on: root)
                }
                if applies {
                    try await append(
                        NewRecord(incident: id, kind: RecordKind.approvalRequested, actor: actor,
                                  data: ["step": .string(step.id), "action": .string(step.action),
                                         "timeout": approval.timeout.map { .string(DurationParser.format($0)) } ?? .null,
                                         "on_timeout": .string(approval.onTimeout.rawValue)]))
                    return
                }
            }
            let ok = try await runStep(step, playbook: playbook, incident: id, root: root)
            if !ok && step.onError == .abort { failed = true }
        }
        let status = failed ? "failed" : "completed"
        record(NewRecord(incident: id, kind: RecordKind.incidentCompleted, actor: actor, data: ["status": .string(status)]))
    }

    /// The event of the finding that opened an incident (from the evidence store).
    func event(of incident: IncidentIndex.Incident) async throws -> JSONValue {
        guard let seq = incident.findingSeq, let record = try await journal.records(from: seq, limit: 1).first, record.seq == seq,
            let hash = record.evidenceHashes.first
        else { throw EngineError(message: "cannot find the finding that opened \(incident.id)") }
        return try JSONParser.parse(try evidence.load(hash, citedAt: seq))
    }

    /// What the last runner left unfinished (a crash, a kill, a shutdown cut short).
    public struct Unfinished: Sendable {
        /// Findings received whose incidents were not all opened, in the order received.
        public var receipts: [Receipt]
        /// Incidents that were running.
        public var incidents: [String]
        public var isEmpty: Bool { receipts.isEmpty && incidents.isEmpty }
    }

    /// What `resume` would take up again.
    public func unfinished() throws -> Unfinished {
        var receipts: [Receipt] = []
        for (dedupe, entry) in index.unhandled.sorted(by: { $0.value.seq < $1.value.seq }) {
            let pending = playbooks.indices.filter { entry.playbooks.contains(playbooks[$0].name) }
            guard !pending.isEmpty, let hash = entry.evidence else { continue }
            let event = try JSONParser.parse(try evidence.load(hash, citedAt: entry.seq))
            let finding = Finding(event: event, format: .eventBridge, origin: FindingOrigin(source: "journal seq \(entry.seq)"))
            receipts.append(Receipt(finding: finding, dedupe: dedupe, received: entry.ref, pending: pending, duplicate: false))
        }
        let incidents = index.incidents.values.filter { $0.status == "running" && !$0.dryRun }.map(\.id)
        return Unfinished(receipts: receipts, incidents: incidents)
    }

    /// Resumes every incident that was running when the last runner stopped (a crash or
    /// kill): steps with a result are not run again; an intent without one is checked.
    /// Returns the incidents opened or resumed.
    @discardableResult
    public func resumeUnfinished() async throws -> [String] {
        try await resume(try unfinished())
    }

    /// Takes up `work` (`unfinished()`), `width` findings and incidents at a time: one
    /// slow step never holds up the others. Safe to run beside new intake: openings and
    /// runs are serialised by incident.
    public nonisolated func resume(_ work: Unfinished, width: Int = 16) async throws -> [String] {
        enum Item: Sendable {
            case receipt(Receipt)
            case incident(String)
        }
        let items = work.receipts.map(Item.receipt) + work.incidents.map(Item.incident)
        return try await withThrowingTaskGroup(of: [String].self) { group in
            var resumed: [String] = []
            for (i, item) in items.enumerated() {
                if i >= max(1, width), let done = try await group.next() { resumed += done }
                group.addTask {
                    switch item {
                    case .receipt(let receipt): return try await self.handle(receipt).incidents
                    case .incident(let id): return try await self.resume(incident: id) ? [id] : []
                    }
                }
            }
            for try await done in group { resumed += done }
            return resumed
        }
    }

    /// Runs a running incident's remaining steps; false when it is not (or no longer)
    /// running.
    private func resume(incident id: String) async throws -> Bool {
        guard let incident = index.incidents[id], incident.status == "running", !incident.dryRun else { return false }
        try await run(incident: id, event: try await event(of: incident))
        return true
    }

    /// An incident in full: from the index, or replayed from its records when the index
    /// let go of it (finished, in a runner's index).
    public func incident(_ id: String) async throws -> IncidentIndex.Incident? {
        if let incident = index.incidents[id] { return incident }
        guard index.knows(incident: id) else { return nil }
        return try await IncidentIndex.load(incident: id, from: journal)
    }

    /// Incidents not closed, by playbook, and the approvals pending (metrics).
    public func openCounts() -> (byPlaybook: [String: Int], approvalsPending: Int) { index.openCounts }

    /// Decides a pending approval (`cordon approve`) and continues the incident.
    public func decide(incident id: String, step: String, by person: String, approve: Bool, reason: String?) async throws {
        guard let incident = try await incident(id) else { throw EngineError(message: "no incident \(id) (see `cordon incidents`)") }
        guard incident.pendingApproval == step else {
            throw EngineError(
                message: incident.pendingApproval.map { "incident \(id) awaits approval of step \($0), not \(step)" }
                    ?? "incident \(id) has no pending approval (status: \(incident.status))")
        }
        var data: JSONObject = ["step": .string(step), "decision": .string(approve ? "approved" : "denied"), "by": .string(person)]
        if let reason { data["reason"] = .string(reason) }
        try await append(NewRecord(incident: id, kind: RecordKind.approvalDecided, actor: "user:\(person)", data: .object(data)))
        try await run(incident: id, event: try await event(of: incident))
    }

    /// Applies `on_timeout` to approvals that waited longer than their `timeout`:
    /// `proceed` runs the step, `skip` skips it, `abort` fails it and stops the incident.
    /// Returns the incidents that moved on.
    @discardableResult
    public func expireApprovals(now: Date? = nil) async throws -> [String] {
        let now = now ?? clock.now
        var moved: [String] = []
        for incident in index.incidents.values where incident.status == "awaiting-approval" {
            guard let step = incident.pendingApproval, let requested = incident.approvalRequestedAt.flatMap(Timestamp.parse),
                let timeout = incident.approvalTimeout.flatMap(DurationParser.parse)
            else { continue }
            guard now.timeIntervalSince(requested) >= timeout.seconds else { continue }
            let onTimeout = incident.approvalOnTimeout ?? "abort"
            let decision = onTimeout == "proceed" ? "approved" : onTimeout == "skip" ? "denied" : "aborted"
            try await append(
                NewRecord(incident: incident.id, kind: RecordKind.approvalDecided, actor: actor,
                          data: ["step": .string(step), "decision": .string(decision), "by": "timeout", "timed_out": true,
                                 "reason": .string("nobody decided within \(incident.approvalTimeout ?? "") (on_timeout: \(onTimeout))")]))
            try await run(incident: incident.id, event: try await event(of: incident))
            moved.append(incident.id)
        }
        return moved
    }

    /// What `cordon rollback` did for one step.
    public struct RollbackResult: Sendable {
        public var step: String
        public var status: String
        public var detail: String?
    }

    /// Undoes containment from the recorded pre-state: every step that succeeded with a
    /// pre-state (or only `step`), newest first. Steps already rolled back are skipped,
    /// so running it again is harmless.
    public func rollback(incident id: String, step only: String? = nil, by person: String? = nil) async throws -> [RollbackResult] {
        guard let incident = try await incident(id) else { throw EngineError(message: "no incident \(id) (see `cordon incidents`)") }
        await acquire("run\u{0}" + id)
        defer { release("run\u{0}" + id) }
        let records = try await journal.records(incident: id)
        let rolledBack = Set(records.filter { $0.kind == RecordKind.rollbackSucceeded }.compactMap { $0.data["step"]?.stringValue })
        var candidates = records.filter { $0.kind == RecordKind.stepSucceeded && $0.data["pre_state"] != nil }
        if let only {
            guard incident.steps[only] != nil else { throw EngineError(message: "incident \(id) has no step \(only)") }
            candidates = candidates.filter { $0.data["step"]?.stringValue == only }
            if candidates.isEmpty { throw EngineError(message: "step \(only) of \(id) changed nothing that can be rolled back (no recorded pre-state)") }
        }
        let who = person.map { "user:\($0)" } ?? actor
        var results: [RollbackResult] = []
        for record in candidates.reversed() {
            let step = record.data["step"]?.stringValue ?? ""
            let actionName = record.data["action"]?.stringValue ?? ""
            if rolledBack.contains(step) {
                results.append(RollbackResult(step: step, status: "already rolled back"))
                continue
            }
            guard let action = actions[actionName], action.reversible else {
                results.append(RollbackResult(step: step, status: "not reversible", detail: "\(actionName) cannot be rolled back by Cordon"))
                continue
            }
            var base: JSONObject = ["step": .string(step), "action": .string(actionName)]
            if let target = record.data["target"] { base["target"] = target }
            try await append(NewRecord(incident: id, kind: RecordKind.rollbackIntent, actor: who, data: .object(base)))
            let request = ActionRequest(
                action: actionName, inputs: record.data["inputs"]?.objectValue ?? [:],
                idempotencyKey: (record.data["idempotency_key"]?.stringValue ?? "") + ":rollback", incident: incident.json,
                evidence: evidence, secrets: secrets)
            let result: Result<ActionOutcome, ActionError>
            do throws(ActionError) {
                result = .success(try await action.rollback(request, preState: record.data["pre_state"] ?? .null))
            } catch {
                result = .failure(error)
            }
            switch result {
            case .success(let outcome):
                var done = base
                done["outputs"] = .object(outcome.outputs)
                if !outcome.evidence.isEmpty { done["evidence"] = .array(outcome.evidence) }
                try await append(NewRecord(incident: id, kind: RecordKind.rollbackSucceeded, actor: who, data: .object(done)))
                results.append(RollbackResult(step: step, status: "rolled back"))
            case .failure(let error):
                var failed = base
                failed["error"] = .string(error.description)
                try await append(NewRecord(incident: id, kind: RecordKind.rollbackFailed, actor: who, data: .object(failed)))
                results.append(RollbackResult(step: step, status: "failed", detail: error.description))
            }
        }
        return results
    }

    /// One step, with its retries; true when it succeeded.
    private func runStep(_ step: Playbook.Step, playbook: Playbook, incident id: String, root: JSONObject) async throws -> Bool {
        let spec = config.registry[step.action]
        let kind = spec?.kind.rawValue ?? "utility"
        var base: JSONObject = ["step": .string(step.id), "action": .string(step.action), "action_kind": .string(kind)]
        // Render the inputs; a template error is permanent.
        var inputs = JSONObject()
        do {
            for (name, tree) in step.with {
                inputs[name] = try tree.render(TemplateContext(root: root, secret: secrets.lookup)).value
            }
            for input in spec?.inputs ?? [] where inputs[input.name] == nil {
                if let d = input.defaultValue { inputs[input.name] = d }
            }
            for input in spec?.inputs ?? [] {
                if let value = inputs[input.name], !input.type.accepts(value) {
                    throw TemplateError(template: input.name, offset: 0, message: "input \(input.name) must be \(input.type.rawValue), got \(JSONWriter.string(value))")
                }
            }
        } catch {
            base["error"] = .string("\(error)")
            try await append(NewRecord(incident: id, kind: RecordKind.stepFailed, actor: actor, data: .object(base)))
            return false
        }
        let key = SHA256.hash(data: Array("\(id)\u{0}\(playbook.name)\u{0}\(playbook.version)\u{0}\(step.id)\u{0}".utf8) + CanonicalJSON.bytes(.object(inputs))).hex
        base["inputs"] = .object(inputs)
        base["idempotency_key"] = .string(key)
        if let target = Self.target(inputs) { base["target"] = .string(target) }
        if dryRun {
            if step.approval != nil { base["approval"] = "would be requested if its condition holds" }
            record(NewRecord(incident: id, kind: RecordKind.stepPlanned, actor: actor, data: .object(base)))
            return true
        }
        guard let action = actions[step.action] else {
            base["error"] = .string("\(step.action) is not implemented in Cordon \(Cordon.version); run with --dry-run to see the plan")
            base["retryable"] = false
            try await append(NewRecord(incident: id, kind: RecordKind.stepFailed, actor: actor, data: .object(base)))
            return false
        }
        // `root` holds the incident as `run` just read it from the index, unchanged since.
        let request = ActionRequest(
            action: step.action, inputs: inputs, idempotencyKey: key, incident: root["incident"] ?? index.incidents[id]?.json ?? .null,
            evidence: evidence, secrets: secrets)
        // An intent without a result (a crash or kill during the action): ask the action
        // whether its effect is in place before acting again.
        if index.incidents[id]?.steps[step.id]?.status == "running", action.checkable {
            if let outcome = try await Self.check(action, request, slots: actionSlots) {
                var done = base
                done["outputs"] = .object(outcome.outputs)
                done["already_done"] = true
                done["recovered"] = true
                if let target = outcome.target { done["target"] = .string(target) }
                if !outcome.evidence.isEmpty { done["evidence"] = .array(outcome.evidence) }
                if let pre = outcome.preState { done["pre_state"] = pre }
                record(NewRecord(incident: id, kind: RecordKind.stepSucceeded, actor: actor, data: .object(done)))
                return true
            }
        }
        var started = clock.now
        // A step stopped between its attempts (the runner stopped during the backoff)
        // goes on with the next attempt.
        var attempt = index.incidents[id]?.steps[step.id].flatMap { $0.status == "retrying" ? $0.attempts : nil } ?? 0
        while true {
            attempt += 1
            var intent = base
            intent["attempt"] = .number(JSONNumber(attempt))
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
                var done = base
                done["attempt"] = .number(JSONNumber(attempt))
                done["outputs"] = .object(outcome.outputs)
                if let target = outcome.target { done["target"] = .string(target) }
                if !outcome.evidence.isEmpty { done["evidence"] = .array(outcome.evidence) }
                if let pre = outcome.preState { done["pre_state"] = pre }
                if outcome.alreadyDone { done["already_done"] = true }
                let succeeded = NewRecord(incident: id, kind: RecordKind.stepSucceeded, actor: actor, data: .object(done))
                if action.checkable { record(succeeded) } else { try await append(succeeded) }
                return true
            case .failure(let error):
                var failed = base
                failed["attempt"] = .number(JSONNumber(attempt))
                failed["error"] = .string(error.description)
                failed["retryable"] = .bool(error.retryable)
                let elapsed = Duration.seconds(clock.now.timeIntervalSince(started))
                var delay = Self.backoff(attempt: attempt, retry: step.retry, jitter: jitter)
                // The service's Retry-After is a floor, within the step's timeout (or,
                // without one, within max_backoff).
                if let after = error.retryAfter {
                    failed["retry_after"] = .string(DurationParser.format(after))
                    delay = max(delay, after)
                }
                let timeLeft = step.timeout.map { elapsed + delay < $0 } ?? (error.retryAfter == nil || delay <= step.retry.maxBackoff)
                if error.retryable && attempt < step.retry.attempts && timeLeft {
                    failed["will_retry_in"] = .string(DurationParser.format(delay))
                    try await append(NewRecord(incident: id, kind: RecordKind.stepFailed, actor: actor, data: .object(failed)))
                    try await clock.sleep(for: delay)
                    continue
                }
                try await append(NewRecord(incident: id, kind: RecordKind.stepFailed, actor: actor, data: .object(failed)))
                return false
            }
        }
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

public struct EngineError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
