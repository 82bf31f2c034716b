import CordonCore
import Foundation

/// An incident's lifecycle (open → contained → closed), taking up unfinished work after a
/// stop, and quarantining what crashed the runner.
extension Engine {
    // MARK: - Reading incidents

    /// An incident in full: from the index, or replayed from its records when the index
    /// let go of it (contained or closed, in a runner's index).
    public func incident(_ id: String) async throws -> IncidentIndex.Incident? {
        if let incident = index.incidents[id] { return incident }
        guard index.knows(incident: id) else { return nil }
        return try await IncidentIndex.load(incident: id, from: journal)
    }

    /// Makes sure the index holds an incident in full (a runner's index lets go of
    /// contained ones), reading it from the journal if need be.
    func load(_ id: String) async throws {
        while index.incidents[id] == nil, index.knows(incident: id) {
            let before = index.changes(ofLetGo: id)
            guard let full = try await IncidentIndex.load(incident: id, from: journal) else {
                throw CordonError(.corruptJournal, "incident \(id) is in the index but not in the journal")
            }
            // Read again if a record of it was applied meanwhile (it may be missing from
            // this reading), or if another task read it first.
            guard index.incidents[id] == nil, index.changes(ofLetGo: id) == before else { continue }
            index.adopt(full)
        }
    }

    /// Incidents by playbook and state, the approvals pending and what is quarantined.
    public func counts() -> IncidentIndex.Counts { index.counts }

    // MARK: - Closing

    /// Held while a finding is attached to an incident, and while its quiet period is
    /// checked: a finding never attaches to an incident its quiet period is closing.
    static func attachLock(_ id: String) -> String { "attach\u{0}" + id }

    /// The claim of an incident's close: an incident is closed once.
    static func closeClaim(_ id: String) -> String { "close:\(id)" }

    /// Closes an incident (`cordon close`): later findings with its key open a new one that
    /// follows it. A pending approval is withdrawn; steps still to run are not run. An
    /// incident closed already stays as it was: the error names who closed it and when.
    public func close(incident id: String, by person: String, reason: String?) async throws {
        guard let incident = try await incident(id) else { throw CordonError(.notFound, "no incident \(id) (see `cordon incidents`)") }
        if let closure = incident.closure { throw CordonError(.conflict, Self.alreadyClosed(id, closure)) }
        var data: JSONObject = ["by": .string("user:\(person)")]
        if let reason { data["reason"] = .string(reason) }
        if let pending = incident.pendingApproval { data["withdrew_approval"] = .string(pending) }
        var record = NewRecord(incident: id, kind: RecordKind.incidentClosed, actor: "user:\(person)", data: .object(data))
        record.claim = Self.closeClaim(id)
        do {
            try await append(record)
        } catch let conflict as JournalClaimConflict {
            let d = conflict.existing.data
            throw CordonError(.conflict, Self.alreadyClosed(id, .init(time: conflict.existing.time, by: d["by"]?.stringValue ?? conflict.existing.actor, reason: d["reason"]?.stringValue)))
        }
    }

    static func alreadyClosed(_ id: String, _ closure: IncidentIndex.Closure) -> String {
        "incident \(id) was already closed by \(closure.by) at \(closure.time)\(closure.reason.map { ": \($0)" } ?? "")"
    }

    /// Closes an incident whose playbook's quiet period (`incident.close_after`) has passed
    /// since its latest finding, if its steps have all finished; true when it is closed.
    /// Called with the incident's attach lock held (`attachLock`).
    func closeIfQuiet(_ id: String, playbook: Playbook, now: Date? = nil) async throws -> Bool {
        guard let quiet = playbook.incident.closeAfter, let last = index.lastActivity(of: id) else { return false }
        let now = now ?? clock.now
        guard now.timeIntervalSince(last) >= quiet.seconds, index.state(of: id) == .contained else { return false }
        var record = NewRecord(
            incident: id, kind: RecordKind.incidentClosed, actor: actor,
            data: [
                "by": "quiet period", "quiet_period": .string(DurationParser.format(quiet)),
                "reason": .string("no finding for \(DurationParser.format(quiet)) since \(Timestamp.string(last)) (incident.close_after)"),
            ])
        record.claim = Self.closeClaim(id)
        do {
            try await append(record)
        } catch is JournalClaimConflict {
            // Closed elsewhere meanwhile.
            try await takeIn()
        }
        return true
    }

    /// Closes every contained incident whose quiet period has passed (a runner's
    /// housekeeping; drills as their virtual clock moves on). Returns those closed.
    @discardableResult
    public func closeQuietIncidents(now: Date? = nil) async throws -> [String] {
        var candidates = index.incidents.values.filter { $0.state == .contained && !$0.dryRun }.map { ($0.id, $0.playbook) }
        candidates += index.containedLetGo.map { ($0.id, $0.playbook) }
        var closed: [String] = []
        for (id, name) in candidates {
            guard let playbook = playbooks.first(where: { $0.name == name }), playbook.incident.closeAfter != nil else { continue }
            await acquire(Self.attachLock(id))
            defer { release(Self.attachLock(id)) }
            if try await closeIfQuiet(id, playbook: playbook, now: now) { closed.append(id) }
        }
        return closed
    }

    /// When the next quiet period ends (drills move their clock to it), if any.
    public func nextQuietClose() -> Date? {
        var next: Date?
        for incident in index.incidents.values where incident.state == .contained && !incident.dryRun {
            guard let quiet = playbooks.first(where: { $0.name == incident.playbook })?.incident.closeAfter,
                let last = Timestamp.parse(incident.lastActivity)
            else { continue }
            let due = last.addingTimeInterval(quiet.seconds)
            if next.map({ due < $0 }) ?? true { next = due }
        }
        return next
    }

    // MARK: - Unfinished work

    /// What the last runner left unfinished (a crash, a kill, a shutdown cut short).
    public struct Unfinished: Sendable {
        /// Findings received whose incidents were not all opened, in the order received.
        public var receipts: [Receipt]
        /// Incidents whose evaluations were running.
        public var incidents: [String]
        public var isEmpty: Bool { receipts.isEmpty && incidents.isEmpty }
        /// How a crash record names each of them (`CrashGuard`).
        public var crashIDs: [String] { receipts.map { "f:" + $0.crashID } + incidents.map { "i:" + $0 } }
    }

    /// What `resume` would take up again (quarantined work left out).
    public func unfinished() throws -> Unfinished {
        var receipts: [Receipt] = []
        for (dedupe, entry) in index.unhandled.sorted(by: { $0.value.seq < $1.value.seq }) {
            // A dry run's findings are taken up by a dry run only (and a real run's by a real one).
            guard IncidentIndex.isDryRun(dedupe) == dryRun else { continue }
            let pending = playbooks.indices.filter { entry.playbooks.contains(playbooks[$0].name) }
            guard !pending.isEmpty, let hash = entry.evidence else { continue }
            let event = try JSONParser.parse(try evidence.load(hash, citedAt: entry.seq))
            let finding = Finding(event: event, format: .eventBridge, origin: FindingOrigin(source: "journal seq \(entry.seq)"))
            receipts.append(Receipt(finding: finding, dedupe: dedupe, received: entry.ref, pending: pending, duplicate: false))
        }
        let running = index.incidents.values.filter { $0.isRunnable && !$0.dryRun }.map(\.id)
        return Unfinished(receipts: receipts, incidents: running + index.unfinishedLetGo)
    }

    /// Resumes every incident that was running when the last runner stopped (a crash or
    /// kill): steps with a result are not run again; an intent without one is checked.
    /// Returns the incidents opened or resumed.
    @discardableResult
    public func resumeUnfinished(oneAtATime: Set<String> = []) async throws -> [String] {
        try await resume(try unfinished(), oneAtATime: oneAtATime)
    }

    /// Takes up `work` (`unfinished()`), `width` findings and incidents at a time: one
    /// slow step never holds up the others. Safe to run beside new intake: openings and
    /// runs are serialised by incident.
    ///
    /// The items named in `oneAtATime` (crash ids: what was in progress when the last run
    /// crashed) are taken up one after another, beside the rest: if one of them crashes
    /// the runner again, it is the only one of them in progress, and the next start
    /// quarantines it alone.
    public nonisolated func resume(_ work: Unfinished, width: Int = 16, oneAtATime: Set<String> = []) async throws -> [String] {
        enum Item: Sendable {
            case receipt(Receipt)
            case incident(String)
            var crashID: String {
                switch self {
                case .receipt(let receipt): "f:" + receipt.crashID
                case .incident(let id): "i:" + id
                }
            }
        }
        @Sendable func take(_ item: Item) async throws -> [String] {
            switch item {
            case .receipt(let receipt): return try await handle(receipt).incidents
            case .incident(let id): return try await resume(incident: id) ? [id] : []
            }
        }
        let all = work.receipts.map(Item.receipt) + work.incidents.map(Item.incident)
        let serial = all.filter { oneAtATime.contains($0.crashID) }
        let items = all.filter { !oneAtATime.contains($0.crashID) }
        return try await withThrowingTaskGroup(of: [String].self) { group in
            var resumed: [String] = []
            if !serial.isEmpty {
                group.addTask {
                    var done: [String] = []
                    for item in serial { done += try await take(item) }
                    return done
                }
            }
            for (i, item) in items.enumerated() {
                if i >= max(1, width), let done = try await group.next() { resumed += done }
                group.addTask { try await take(item) }
            }
            for try await done in group { resumed += done }
            return resumed
        }
    }

    /// Runs a running incident's remaining steps; false when it is not (or no longer)
    /// running.
    private func resume(incident id: String) async throws -> Bool {
        try await load(id)
        guard let incident = index.incidents[id], incident.isRunnable, !incident.dryRun else { return false }
        try await run(incident: id)
        return true
    }

    // MARK: - Quarantine

    /// Quarantines the unfinished work named by `crashIDs` (`Unfinished.crashIDs`): each
    /// finding or incident gets `finding.quarantined` with `reason`, and is never taken
    /// up again automatically. Returns what was quarantined, as the ids were given.
    @discardableResult
    public func quarantine(_ crashIDs: Set<String>, reason: String) async throws -> [String] {
        guard !crashIDs.isEmpty else { return [] }
        let work = try unfinished()
        var done: [String] = []
        for receipt in work.receipts where crashIDs.contains("f:" + receipt.crashID) {
            var data = findingData(receipt.summary)
            data["reason"] = .string(reason)
            var record = NewRecord(kind: RecordKind.findingQuarantined, actor: actor, data: .object(data))
            record = Self.referring(record, to: receipt.received)
            try await append(record)
            done.append("f:" + receipt.crashID)
        }
        for id in work.incidents where crashIDs.contains("i:" + id) {
            try await load(id)
            let finding = index.incidents[id]?.finding ?? .null
            try await append(NewRecord(incident: id, kind: RecordKind.findingQuarantined, actor: actor, data: ["reason": .string(reason), "finding": finding]))
            done.append("i:" + id)
        }
        return done
    }
}
