import CordonAWS
import CordonCloud
import CordonSimulatedCloud
import CordonCore
import CordonEngine
import CordonIntegrations
import CordonJournal
import Foundation
import Logging

/// Runs a scenario: the real engine and playbooks on a virtual clock against the
/// simulated cloud (or a real endpoint seeded with the same inventory), injections at
/// their virtual times, approval deadlines as they fall, then the expectations.
public struct DrillRunner: Sendable {
    public var scenario: Scenario
    public var config: LoadedConfig
    public var seed: UInt64
    /// Where the drill's incident events are logged (`LoggingJournal`), if anywhere.
    public var logger: Logger?

    public init(scenario: Scenario, config: LoadedConfig, seed: UInt64? = nil) {
        self.scenario = scenario
        self.config = config
        self.seed = seed ?? scenario.seed
    }

    /// The runner's actor in a drill journal: no host or process id, so that runs compare.
    public var actor: String { "cordon-drill/\(Cordon.version):\(scenario.name)" }

    /// Where a drill keeps its journal by default.
    public static func defaultDataDir(_ scenario: Scenario) -> String { ".cordon-drill/\(scenario.name)" }

    /// The marker file of a drill data directory (only such a directory is cleared).
    static let marker = "DRILL"

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
        public init(message: String) { self.message = message }
    }

    /// Prepares the data directory: created if missing, cleared when it holds an earlier
    /// drill, refused when it holds anything else (a real journal is never touched).
    public static func prepare(dataDir: String) throws -> DataDirectory {
        let fm = FileManager.default
        let url = URL(fileURLWithPath: dataDir)
        if fm.fileExists(atPath: dataDir) {
            let contents = (try? fm.contentsOfDirectory(atPath: dataDir)) ?? []
            if !contents.isEmpty && !contents.contains(marker) {
                throw Failure(message: "\(dataDir) is not a drill data directory (no \(marker) file) and is not empty: a drill starts from an empty journal, so give another --data-dir")
            }
            for name in contents { try fm.removeItem(at: url.appendingPathComponent(name)) }
        }
        try fm.createDirectory(at: url, withIntermediateDirectories: true)
        try Data("This directory holds a Cordon drill journal; `cordon drill` clears it on each run.\n".utf8).write(to: url.appendingPathComponent(marker))
        return DataDirectory(dataDir)
    }

    /// Runs the scenario into a fresh drill journal under `dataDir`.
    /// - Parameters:
    ///   - cloud: nil: the simulated cloud seeded from the inventory; otherwise a cloud
    ///     already seeded with it. Faults on AWS calls apply to both when the external
    ///     cloud is a `FaultInjectableCloud` (`AWSCloud` is: they are injected before
    ///     each request is sent); on any other cloud they are reported as not injected.
    ///   - cloudLabel: how the journal and the report name the cloud (default
    ///     `simulated`, or the external cloud's kind).
    ///   - ids: inventory id → the id the external cloud gave the resource (moto makes
    ///     its own): findings and resource expectations are rewritten with it.
    ///   - notes: what the caller wants the report to say about the cloud (e.g. inventory
    ///     accounts that could not be seeded there), as notes at the start.
    public func run(
        dataDir: String, cloud external: (any Cloud)? = nil, cloudLabel: String? = nil, ids: [String: String] = [:], notes cloudNotes: [String] = []
    ) async throws -> DrillReport {
        var scenario = self.scenario
        if !ids.isEmpty { scenario = Self.mapped(scenario, ids) }
        let directory = try Self.prepare(dataDir: dataDir)
        let clock = VirtualClock(start: scenario.start)
        let secrets = SecretStore(environment: scenario.environment)
        let journal = try SQLiteJournal(directory: directory, secrets: secrets)
        let clouds = DrillClouds(external: external, inventory: scenario.inventory, clock: clock)
        let label = cloudLabel ?? (external.map(\.kind) ?? "simulated")
        let notifications = DrillNotifications(clock: clock)
        let engine = makeEngine(cloud: clouds.cloud, journal: journal, secrets: secrets, clock: clock, notifications: notifications)
        var session = DrillSession(
            scenario: scenario, actor: actor, engine: engine, journal: journal, clock: clock, clouds: clouds, notifications: notifications, label: label,
            notes: cloudNotes.map { .init(at: DrillReport.offset(0), kind: "info", text: $0) })
        try await session.log(
            "drill.started",
            [
                "scenario": .string(scenario.name), "description": .string(scenario.description), "seed": .number(JSONNumber(seed)),
                "inventory": .string(scenario.inventorySource), "cloud": .string(label),
                "start": .string(Timestamp.string(scenario.start)), "duration": .string(DurationParser.format(scenario.duration)),
            ])
        for injection in scenario.timeline {
            try await Self.advance(engine, clock, to: scenario.start.addingTimeInterval(injection.at.seconds))
            try await session.inject(injection)
        }
        try await Self.advance(engine, clock, to: scenario.start.addingTimeInterval(scenario.duration.seconds))
        try await session.log("drill.finished", ["virtual_seconds": .number(JSONNumber(Int(clock.now.timeIntervalSince(scenario.start))))])
        _ = try await journal.checkpoint()
        let records = try await journal.records(from: 1, limit: 1_000_000)
        let index = await engine.index
        clouds.simulated?.clearFaults()
        clouds.injector?.clear()
        let report = await DrillReport.build(
            scenario: scenario, seed: seed, records: records, index: index, notifications: notifications.all, cloud: clouds.cloud,
            simulated: clouds.simulated, notes: session.notes, dataDir: dataDir, cloudLabel: label)
        try await journal.close()
        return report
    }

    /// The engine of a run: the configured playbooks and actions on the virtual clock,
    /// with `core.wait` waiting on that clock and notifiers that record what would have
    /// been sent instead of sending it.
    private func makeEngine(
        cloud: any Cloud, journal: SQLiteJournal, secrets: SecretStore, clock: VirtualClock, notifications: DrillNotifications
    ) -> Engine {
        let actions = ActionSet.build(
            integrations: config.integrations, cloud: AWSActions.all(cloud: cloud, defaultRegion: "us-east-1", now: { clock.now })
        ) { actions in
            actions["core.wait"] = DrillWaitAction(clock: clock)
            for integration in config.integrations {
                for spec in integration.actionSpecs { actions[spec.name] = DrillNotifierAction(name: spec.name, sink: notifications) }
            }
            actions[EmailAction.name] = DrillNotifierAction(name: EmailAction.name, sink: notifications)
        }
        return Engine(
            config: config, actions: actions, journal: logger.map { LoggingJournal(journal, logger: $0) } ?? journal, evidence: journal.evidence,
            secrets: secrets, actor: actor,
            clock: clock, jitter: JitterSource(seed: seed))
    }

    /// Applies approval deadlines and quiet periods (`incident.close_after`) that fall
    /// before `date`, in order, then moves there.
    static func advance(_ engine: Engine, _ clock: VirtualClock, to date: Date) async throws {
        while true {
            let index = await engine.index
            var next: Date? = await engine.nextQuietClose()
            for incident in index.incidents.values where incident.status == .awaitingApproval {
                guard let requested = incident.approvalRequestedAt.flatMap(Timestamp.parse),
                    let timeout = incident.approvalTimeout.flatMap(DurationParser.parse)
                else { continue }
                let deadline = requested.addingTimeInterval(timeout.seconds)
                if next.map({ deadline < $0 }) ?? true { next = deadline }
            }
            guard let next, next <= date else { break }
            clock.advance(to: next)
            let now = max(next, clock.now)
            let moved = try await engine.expireApprovals(now: now)
            let closed = try await engine.closeQuietIncidents(now: now)
            if moved.isEmpty && closed.isEmpty { break }
        }
        clock.advance(to: date)
    }

    /// The scenario with inventory ids replaced by an external cloud's.
    static func mapped(_ scenario: Scenario, _ ids: [String: String]) -> Scenario {
        func map(_ text: String) -> String {
            var t = text
            for (from, to) in ids.sorted(by: { $0.key.count > $1.key.count }) where from != to { t = t.replacingOccurrences(of: from, with: to) }
            return t
        }
        var s = scenario
        for i in s.timeline.indices {
            if case .finding(var finding, let label, let after) = s.timeline[i].kind,
                let event = try? JSONParser.parse(Array(map(JSONWriter.string(finding.event)).utf8)) {
                finding.event = event
                s.timeline[i].kind = .finding(finding: finding, label: label, detectedAfter: after)
            }
        }
        for i in s.expectations.indices {
            if case .resource(var r) = s.expectations[i].kind {
                r.id = map(r.id)
                s.expectations[i].kind = .resource(r)
            } else if case .notification(let via, let contains) = s.expectations[i].kind {
                s.expectations[i].kind = .notification(via: via, contains: contains.map(map))
            } else if case .incident(var x) = s.expectations[i].kind, let key = x.key {
                x.key = map(key)
                s.expectations[i].kind = .incident(x)
            }
        }
        return s
    }

    /// The finding as delivered in the drill: its times (`time`, `createdAt`,
    /// `updatedAt`, `eventTime`) moved to the virtual clock.
    static func retimed(_ event: JSONValue, created: Date, delivered: Date) -> JSONValue {
        guard case .object(var o) = event else { return event }
        o["time"] = .string(Timestamp.rfc3339(delivered))
        if case .object(var detail)? = o["detail"] {
            if detail["createdAt"] != nil { detail["createdAt"] = .string(Timestamp.rfc3339(created)) }
            if detail["updatedAt"] != nil { detail["updatedAt"] = .string(Timestamp.rfc3339(delivered)) }
            if detail["eventTime"] != nil { detail["eventTime"] = .string(Timestamp.rfc3339(created)) }
            if case .array(var findings)? = detail["findings"] {
                for i in findings.indices {
                    if case .object(var f) = findings[i] {
                        if f["CreatedAt"] != nil { f["CreatedAt"] = .string(Timestamp.rfc3339(created)) }
                        if f["UpdatedAt"] != nil { f["UpdatedAt"] = .string(Timestamp.rfc3339(delivered)) }
                        findings[i] = .object(f)
                    }
                }
                detail["findings"] = .array(findings)
            }
            o["detail"] = .object(detail)
        }
        return .object(o)
    }
}

/// The cloud a drill runs against, and where its injected faults go.
private struct DrillClouds {
    /// What the actions call.
    let cloud: any Cloud
    /// The simulated cloud, when the drill runs on it: it takes faults itself.
    let simulated: SimulatedCloud?
    /// The injector of an external cloud that takes injected faults (`AWSCloud`
    /// injects them before each request is sent).
    let injector: FaultInjector?

    /// `external` nil: the simulated cloud seeded from `inventory`.
    init(external: (any Cloud)?, inventory: Inventory, clock: VirtualClock) {
        guard let external else {
            let simulated = SimulatedCloud(inventory: inventory, seed: 0, now: { clock.now }, sleep: { try? await clock.sleep(for: $0) })
            self.cloud = simulated
            self.simulated = simulated
            self.injector = nil
            return
        }
        self.simulated = nil
        if let injectable = external as? any FaultInjectableCloud {
            let faults = FaultInjector(now: { clock.now }, sleep: { try? await clock.sleep(for: $0) })
            self.injector = faults
            self.cloud = injectable.injecting(faults)
        } else {
            self.injector = nil
            self.cloud = external
        }
    }
}

/// One run of a scenario while its injections are applied: journals what the drill does
/// and gathers the report's notes on what went unanswered.
private struct DrillSession {
    let scenario: Scenario
    let actor: String
    let engine: Engine
    let journal: SQLiteJournal
    let clock: VirtualClock
    let clouds: DrillClouds
    let notifications: DrillNotifications
    /// How the report names the cloud.
    let label: String
    var notes: [DrillReport.Note]

    func offset(_ d: Date) -> String { DrillReport.offset(d.timeIntervalSince(scenario.start)) }

    mutating func note(_ kind: String, _ text: String) { notes.append(.init(at: offset(clock.now), kind: kind, text: text)) }

    /// Journals a record of the drill itself (tagged with the scenario).
    func log(_ kind: RecordKind, _ data: JSONObject) async throws {
        var d = data
        d["drill"] = .string(scenario.name)
        _ = try await journal.append(NewRecord(kind: kind, actor: actor, data: .object(d), time: clock.now))
    }

    /// Applies one injection at the current virtual time.
    mutating func inject(_ injection: Scenario.Injection) async throws {
        switch injection.kind {
        case .finding(let finding, let label, let detectedAfter):
            try await deliver(finding, label: label, detectedAfter: detectedAfter)
        case .decision(let playbook, let key, let step, let by, let approve, let reason):
            try await decide(playbook: playbook, key: key, step: step, by: by, approve: approve, reason: reason)
        case .close(let playbook, let key, let by, let reason):
            try await close(playbook: playbook, key: key, by: by, reason: reason)
        case .fault(let fault):
            try await log("drill.injected", ["injection": "fault", "fault": .string(fault.description)])
            if let simulated = clouds.simulated {
                simulated.inject(fault)
            } else if let injector = clouds.injector {
                injector.inject(fault)
            } else {
                note("info", "fault not injected (\(fault)): the \(label) cloud takes no injected faults")
            }
        case .targetDown(let target, let times, let lasting):
            let until = lasting.map { clock.now.addingTimeInterval($0.seconds) }
            try await log("drill.injected", ["injection": "fault", "fault": .string("\(target) down" + (lasting.map { " for \(DurationParser.format($0))" } ?? "") + (times.map { " (\($0) calls)" } ?? ""))])
            notifications.setDown(target, times: times, until: until)
        }
    }

    /// Hands a finding to the engine, its times moved to the virtual clock; a finding no
    /// playbook acted on is a gap.
    mutating func deliver(_ injected: Finding, label: String, detectedAfter: Duration) async throws {
        var finding = injected
        let created = clock.now.addingTimeInterval(-detectedAfter.seconds)
        finding.event = DrillRunner.retimed(finding.event, created: created, delivered: clock.now)
        try await log("drill.injected", ["injection": "finding", "finding": .string(label), "id": finding.id.map(JSONValue.string) ?? .null])
        let outcomes = try await engine.process([finding])
        for outcome in outcomes where outcome.incidents.isEmpty && !outcome.duplicate {
            let type = finding.event["detail"]?["type"]?.stringValue ?? finding.event["detail"]?["eventName"]?.stringValue ?? finding.event["detail-type"]?.stringValue ?? "?"
            note("gap", "no playbook matched finding \(label) (\(type)): it was journaled and nobody acted on it")
        }
    }

    /// Someone approves or denies a step; a decision with nothing to decide is a gap.
    mutating func decide(playbook: String, key: String?, step: String, by: String, approve: Bool, reason: String?) async throws {
        try await log(
            "drill.injected",
            ["injection": .string(approve ? "approve" : "deny"), "playbook": .string(playbook), "step": .string(step), "by": .string(by)])
        let index = await engine.index
        let candidates = index.incidents.values.filter { $0.playbook == playbook && (key == nil || $0.key == key) }
        guard let incident = candidates.first(where: { $0.pendingApproval == step }) ?? candidates.first else {
            note("gap", "\(by) wanted to \(approve ? "approve" : "deny") \(step) of \(playbook), but no such incident was open")
            return
        }
        guard incident.pendingApproval == step else {
            let what = incident.approvals[step].map { "already \($0)" } ?? "not awaiting approval (incident \(incident.status))"
            note("gap", "\(by) wanted to \(approve ? "approve" : "deny") \(step) of \(incident.id), but it was \(what)")
            return
        }
        if let requested = incident.approvalRequestedAt.flatMap(Timestamp.parse) {
            note("info", "approval of \(step) (\(incident.id)) waited \(DrillReport.duration(clock.now.timeIntervalSince(requested))) for \(by): \(approve ? "approved" : "denied")")
        }
        // Journaled as user:NAME (drill), so that no record of a drill passes for a real decision.
        try await engine.decide(incident: incident.id, step: step, by: "\(by) (drill)", approve: approve, reason: reason)
    }

    /// Someone closes the open incident of a playbook; with none open, a gap.
    mutating func close(playbook: String, key: String?, by: String, reason: String?) async throws {
        try await log("drill.injected", ["injection": "close", "playbook": .string(playbook), "by": .string(by)])
        let index = await engine.index
        guard let incident = index.incidents.values.first(where: { $0.playbook == playbook && (key == nil || $0.key == key) && $0.isOpen }) else {
            note("gap", "\(by) wanted to close the incident of \(playbook), but none was open")
            return
        }
        // Journaled as user:NAME (drill), as decisions are.
        try await engine.close(incident: incident.id, by: "\(by) (drill)", reason: reason)
    }
}

extension Timestamp {
    /// RFC 3339 with milliseconds, as AWS writes finding times.
    static func rfc3339(_ date: Date) -> String {
        let s = Timestamp.string(date)  // microseconds
        guard s.count > 24, let dot = s.firstIndex(of: ".") else { return s }
        return String(s[..<s.index(dot, offsetBy: 4)]) + "Z"
    }
}
