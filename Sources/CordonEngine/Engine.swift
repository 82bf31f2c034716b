import CordonCore
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
    public internal(set) var index: IncidentIndex
    /// The journal's seq up to which records other processes appended have been taken in
    /// (`follow`): from the end of the replay the index was built from.
    var followCursor: Int64
    /// Incidents a decision taken in from elsewhere let run on, not yet handed to the
    /// caller of `follow`.
    var runnableFromElsewhere: [String] = []
    /// Whether runs take in what other processes journaled before each step (a command
    /// that runs incidents without following the journal otherwise, such as `cordon
    /// process`: a `cordon close` meanwhile stops the incident at the next step).
    let followsBetweenSteps: Bool

    /// What happened to one finding.
    public struct Outcome: Sendable {
        public var finding: String
        public var incidents: [String]
        public var duplicate: Bool

        public init(finding: String, incidents: [String], duplicate: Bool) {
            self.finding = finding
            self.incidents = incidents
            self.duplicate = duplicate
        }
    }

    public init(
        config: LoadedConfig, actions: [String: any Action], journal: any Journal, evidence: any EvidenceSink,
        secrets: SecretStore, actor: String, dryRun: Bool = false, index: IncidentIndex = IncidentIndex(),
        clock: any CordonClock = SystemClock(), jitter: JitterSource = .system, actionsInFlight: Int? = nil, followsBetweenSteps: Bool = false
    ) {
        self.followsBetweenSteps = followsBetweenSteps
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
        self.followCursor = index.loadedThrough
        self.clock = clock
        self.jitter = jitter
        self.actionSlots = actionsInFlight.map { ActionSlots($0) }
    }

    /// The record with the clock's time when the clock stamps records (drills).
    func stamped(_ record: NewRecord) -> NewRecord {
        guard clock.stampsRecords, record.time == nil else { return record }
        var r = record
        r.time = clock.now
        return r
    }

    @discardableResult
    func append(_ record: NewRecord) async throws -> JournalRecord {
        try await append([record])[0]
    }

    /// Appends a record whose loss in a crash recovery repairs (an incident opened before
    /// its first intent, a checkable step's result, a completion) without waiting: it is
    /// queued behind every record before it and becomes durable with the commit that
    /// writes it, so the incident waits neither for an fsync nor for the writer. Intake,
    /// intents, failures, approvals and rollbacks wait for durability (`append`).
    func record(_ record: NewRecord, ref: RecordRef? = nil) {
        let (records, opening) = withDeferredOpening([record])
        // Stamped with the commit's time by the journal (or the drill's clock here); the
        // index keeps what it needs of it now.
        let stampedRecords = records.map(stamped)
        journal.post(stampedRecords)
        let now = clock.now
        _ = applied(stampedRecords.map { JournalRecord(unwritten: $0, now: now) }, opening: opening, ref: ref)
    }

    /// Appends records in one commit, in order. An append whose record makes a claim
    /// (`NewRecord.claim`) may be refused (`JournalClaimConflict`): an opening deferred
    /// into it goes ahead on its own first.
    @discardableResult
    func append(_ records: [NewRecord]) async throws -> [JournalRecord] {
        if records.contains(where: { $0.claim != nil }), let id = records.first?.incident, let opening = deferredOpenings.removeValue(forKey: id) {
            journal.post([opening])
        }
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
    private func applied(_ written: [JournalRecord], opening: Bool, ref: RecordRef? = nil) -> [JournalRecord] {
        let rest = opening ? Array(written.dropFirst()) : written
        for record in rest { index.apply(record, ref: ref) }
        return rest
    }

    /// Opens an incident in the index now and in the journal with its next record. The
    /// record is stamped with the time of opening, so that what the first step sees of the
    /// incident (`incident.opened_at`) is what the journal says when it is resumed.
    func open(_ record: NewRecord, finding: RecordRef) {
        var opening = stamped(record)
        guard let id = opening.incident else { return }
        let time = opening.time ?? clock.now
        opening.time = time
        index.apply(JournalRecord(unwritten: opening, now: time), ref: finding)
        deferredOpenings[id] = opening
    }

    // MARK: - Findings

    /// Findings (dedupe keys) of batches whose records are being committed, and the
    /// receives waiting for one of them to be settled (`Engine+Intake`).
    var receiving: Set<String> = []
    var receivingWaiters: [CheckedContinuation<Void, Never>] = []

    // The engine is an actor, and calls interleave where it awaits the journal, so that
    // findings processed concurrently share group commits. Decisions that must not
    // interleave are serialised by key: intake, and one opening, attaching or run per
    // playbook and incident key.
    private var busy: Set<String> = []
    private var waiting: [String: [CheckedContinuation<Void, Never>]] = [:]

    func acquire(_ key: String) async {
        while busy.contains(key) {
            await withCheckedContinuation { waiting[key, default: []].append($0) }
        }
        busy.insert(key)
    }

    func release(_ key: String) {
        busy.remove(key)
        for continuation in waiting.removeValue(forKey: key) ?? [] { continuation.resume() }
    }

    /// Opens or attaches an incident for each playbook a received finding matched (in
    /// name order) and runs what that starts: the new incident's steps, or a new
    /// evaluation of the open incident's playbook for this finding. Safe to call
    /// concurrently.
    public func handle(_ receipt: Receipt) async throws -> Outcome {
        let event = receipt.finding.event
        var incidents: [String] = []
        var handledElsewhere = 0
        for i in receipt.pending {
            let playbook = playbooks[i]
            let key = (try? playbook.incident.key?.render(TemplateContext(root: event.objectValue ?? [:])).value).map(Template.text) ?? receipt.id
            // Deciding where the finding goes is serialised by playbook and key; running
            // what that starts is serialised by incident (`run`).
            let lock = "incident\u{0}\(playbook.name)\u{0}\(key)"
            await acquire(lock)
            let placed: Placement
            do {
                placed = try await CrashGuard.tracking("f:" + receipt.crashID) { try await place(receipt, playbook: playbook, key: key) }
            } catch {
                release(lock)
                throw error
            }
            release(lock)
            guard case .placed(let incident, let round) = placed else {
                handledElsewhere += 1
                continue
            }
            incidents.append(incident)
            try await run(incident: incident, hint: (round, event))
        }
        if !receipt.pending.isEmpty && handledElsewhere == receipt.pending.count {
            // A second delivery that raced the first: it changed nothing.
            record(NewRecord(kind: RecordKind.findingDuplicate, actor: actor, data: .object(findingData(receipt.summary))))
            return Outcome(finding: receipt.id, incidents: [], duplicate: true)
        }
        return Outcome(finding: receipt.id, incidents: incidents, duplicate: receipt.duplicate)
    }

    /// Where a finding went for one playbook: into an incident (opened, or attached to
    /// the open one) as its evaluation `round`, or nowhere (another delivery of it got
    /// there first).
    enum Placement {
        case placed(incident: String, round: Int)
        case elsewhere
    }

    /// Opens an incident for a finding or attaches it to the open incident of the
    /// playbook and key; called under the key's lock. An open incident whose quiet period
    /// has passed is closed first, and the finding opens one that follows it.
    private func place(_ receipt: Receipt, playbook: Playbook, key: String) async throws -> Placement {
        // Another delivery of the same finding may have got here first.
        if index.playbook(playbook.name, handled: receipt.dedupe) { return .elsewhere }
        // Named by what opened it (the playbook, the key, the finding's version), which
        // a resumed opening repeats, and which its seq (not known before the finding's
        // commit) need not be part of.
        let incidentID = "inc-" + String(SHA256.hash(data: Array("\(playbook.name)\u{0}\(key)\u{0}\(receipt.dedupe)".utf8)).hex.prefix(12))
        // This finding opened it: delivered again after the dedupe window let go of it
        // (a runner's index keeps every incident's id, not every finding's key).
        if index.knows(incident: incidentID) { return .elsewhere }
        var quarantined: String?
        if let open = index.open(playbook: playbook.name, key: key, dryRun: dryRun) {
            await acquire(Self.attachLock(open))
            defer { release(Self.attachLock(open)) }
            // A quarantined incident runs nothing more: the finding opens one that follows it.
            if index.incidents[open]?.quarantine != nil {
                quarantined = open
            } else if try await !closeIfQuiet(open, playbook: playbook) {
                try await load(open)
                // Still open after the reading (a close journaled elsewhere may have come in).
                if let incident = index.incidents[open], incident.isOpen {
                    let round = incident.rounds + 1
                    var data = findingData(receipt.summary)
                    data["round"] = .number(JSONNumber(round))
                    record(
                        Self.referring(NewRecord(incident: open, kind: RecordKind.findingAttached, actor: actor, data: .object(data)), to: receipt.received),
                        ref: receipt.received)
                    return .placed(incident: open, round: round)
                }
            }
        }
        let eventRoot = receipt.finding.event.objectValue ?? [:]
        let title = (try? playbook.incident.title?.render(TemplateContext(root: eventRoot)).value).map(Template.text)
        let severity = try? playbook.incident.severity?.render(TemplateContext(root: eventRoot)).value
        var data: JSONObject = [
            "playbook": .string(playbook.name), "playbook_version": .number(JSONNumber(playbook.version)), "key": .string(key),
            "title": title.map(JSONValue.string) ?? .null, "severity": severity ?? .null, "finding": receipt.summary, "dry_run": .bool(dryRun),
        ]
        if let follows = quarantined ?? index.lastClosed(playbook: playbook.name, key: key, dryRun: dryRun) { data["follows"] = .string(follows) }
        open(Self.referring(NewRecord(incident: incidentID, kind: RecordKind.incidentOpened, actor: actor, data: .object(data)), to: receipt.received), finding: receipt.received)
        return .placed(incident: incidentID, round: 1)
    }

    /// `when` and `approval.when` patterns, compiled once.
    private var conditionSets: [String: PatternSet] = [:]

    func holds(_ pattern: EventPattern, key: String, on root: JSONObject) -> Bool {
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
}
