import ArgumentParser
import CordonCore
import CordonEngine
import CordonIntegrations
import CordonJournal
import Foundation

/// Loads playbooks and integrations, or exits 2 with their diagnostics.
func loadConfiguration(_ options: ConfigOptions) throws -> LoadedConfig {
    // A missing default Integrations/ only means there are no integrations.
    var paths = [options.playbooks]
    if options.integrations != "./Integrations" || FileManager.default.fileExists(atPath: options.integrations) {
        paths.append(options.integrations)
    }
    let loaded = ConfigLoader().load(paths)
    if !loaded.isValid {
        for d in loaded.errors { printError(d.description) }
        throw CordonError(.invalidInput, "the playbooks or integrations are invalid (see `cordon validate`)")
    }
    return loaded
}

/// The journal (created if needed) and an engine whose state is rebuilt from it: what
/// every command that runs playbooks starts with. Its index keeps finished incidents by
/// id and key only (`IncidentIndex.Retention.live`), so memory does not grow with the
/// journal; `Engine.incident(_:)` reads one in full.
func openEngine(
    _ loaded: LoadedConfig, _ data: DataOptions, cloud: CloudSession = .none, create: Bool = true, dryRun: Bool = false,
    actionsInFlight: Int? = nil, retention: IncidentIndex.Retention = .live(findings: IncidentIndex.Retention.defaultWindow),
    followsBetweenSteps: Bool = true, wrapJournal: (SQLiteJournal) -> any Journal = { $0 }
) async throws -> (SQLiteJournal, Engine) {
    let secrets = SecretStore()
    let journal = try data.openJournal(create: create, secrets: secrets)
    // aws.* on --cloud (none in a dry run).
    let actions = ActionSet.build(integrations: loaded.integrations, cloud: cloud.actions, overrides: ActionOverrides.apply)
    let engine = Engine(
        config: loaded, actions: actions, journal: wrapJournal(journal), evidence: journal.evidence, secrets: secrets, actor: runnerName(),
        dryRun: dryRun, index: try await IncidentIndex.load(from: journal, retention: retention), actionsInFlight: actionsInFlight,
        followsBetweenSteps: followsBetweenSteps)
    return (journal, engine)
}

/// Quarantines what was in progress when the last two runs on the data directory
/// crashed, then records this run's start and installs the crash handler (`CrashLog`).
/// Returns the log and what was in progress at the last crash (to take up one at a time).
func beginRun(_ engine: Engine, _ data: DataOptions) async throws -> (CrashLog, Set<String>) {
    let crashes = CrashLog(data.directory)
    let lastCrash = crashes.inProgressAtLastCrash()
    if let (items, reason) = crashes.inProgressAtTwoCrashes() {
        let quarantined = try await engine.quarantine(items, reason: reason)
        if !quarantined.isEmpty {
            printError(
                "cordon: quarantined \(quarantined.count) finding(s) or incident(s) that were in progress when the last two runs crashed; they are not taken up again automatically (see `cordon incidents`)"
            )
        }
    }
    try crashes.begin()
    return (crashes, lastCrash)
}

/// One line per step of an incident's latest evaluation, as summaries print them.
func stepLines(_ incident: IncidentIndex.Incident) -> [String] {
    incident.steps.values.filter { $0.round == incident.rounds }.map { s in
        "    \(s.status.rawValue.padding(toLength: 17, withPad: " ", startingAt: 0)) \(s.id) (\(s.action))\(s.error.map { ": \($0)" } ?? "")"
    }
}

/// `STATE (STATUS)` as the listings print an incident, with its dry-run mark.
func stateText(_ incident: IncidentIndex.Incident) -> String {
    let status = incident.status.rawValue == incident.state.rawValue ? incident.status.rawValue : "\(incident.state.rawValue) (\(incident.status))"
    return status + (incident.dryRun ? " [dry run]" : "")
}

func runnerName() -> String {
    "cordon/\(CordonCore.Cordon.version)@\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
}

struct ProcessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "process",
        abstract: "Ingest findings from files and run the matching playbooks.",
        discussion: """
            Decodes each FILE (any format `cordon decode` reads; directories are searched), \
            journals every finding, matches it against every playbook's trigger, opens or \
            attaches to incidents, and runs their steps to completion or to a pending \
            approval, then prints a summary per incident.

            --dry-run journals the plan (each step with its rendered inputs) and calls nothing.

            --cloud aws (the default) acts on AWS with the SDKs' credentials, region and \
            endpoints; --cloud simulated acts on an in-process model seeded from --inventory \
            and kept in DATA-DIR/simulated-cloud.json.

            Exit status: 0 when every step succeeded, 1 when a step failed, 2 for an input \
            error (a finding that could not be decoded is reported and the others still run).
            """)

    @Argument(help: ArgumentHelp("Files or directories of findings; - for standard input.", valueName: "FILE"))
    var files: [String]

    @OptionGroup var config: ConfigOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var cloud: CloudOptions

    @Flag(help: "Journal the plan with rendered inputs; call nothing.")
    var dryRun = false

    @Option(help: "text or json")
    var output: OutputFormat = .text

    func run() async throws {
        let loaded = try loadConfiguration(config)
        try await CloudSession.with(cloud, data, dryRun: dryRun) { session in try await run(loaded, session) }
    }

    func run(_ loaded: LoadedConfig, _ session: CloudSession) async throws {
        let decoder = FindingDecoder()
        var findings: [Finding] = []
        var decodeIssues: [DecodeIssue] = []
        for file in FindingFiles.expand(files) {
            let result = file == "-"
                ? decoder.decode(Array(FileHandle.standardInput.readDataToEndOfFile()), source: "stdin")
                : decoder.decode(fileAtPath: file)
            for issue in result.issues { printError("cordon: \(issue)") }
            decodeIssues += result.issues
            findings += result.findings
        }
        let inputErrors = decodeIssues.count
        // One process runs incidents on a data directory at a time.
        let lock = try data.lock(
            role: "process",
            advice: "hand it findings through its queue directory, webhook or SQS queue, or give `cordon process` a --data-dir of its own (a dry run too)")
        let (journal, engine) = try await openEngine(loaded, data, cloud: session, dryRun: dryRun)
        let (crashes, lastCrash) = try await beginRun(engine, data)
        if !dryRun {
            let resumed = try await engine.resumeUnfinished(oneAtATime: lastCrash)
            if !resumed.isEmpty { printError("cordon: resumed \(resumed.count) unfinished incident(s): \(resumed.joined(separator: ", "))") }
        }
        let outcomes = try await ProcessingProgress.processing(findings, engine: engine)
        // The incidents this run touched, in full (read from the journal once finished).
        var shown: [String: IncidentIndex.Incident] = [:]
        for id in Set(outcomes.flatMap(\.incidents)) { shown[id] = try await engine.incident(id) }
        try await journal.close()
        crashes.end()
        withExtendedLifetime(lock) {}
        let touched = shown.keys.sorted { (shown[$0]?.openedAt ?? "", $0) < (shown[$1]?.openedAt ?? "", $1) }
        // What this run evaluated: each incident's latest evaluation, not an earlier one's failure.
        let anyFailed = touched.contains { id in
            shown[id].map { incident in incident.steps.values.contains { $0.round == incident.rounds && $0.status == .failed } } ?? false
        }
        switch output {
        case .text:
            print("\(findings.count) finding(s): \(outcomes.filter(\.duplicate).count) duplicate(s), \(outcomes.filter { !$0.duplicate && $0.incidents.isEmpty }.count) matched no playbook, \(touched.count) incident(s)\(dryRun ? " (dry run: nothing was called)" : session.kind == .simulated ? " (simulated cloud: \(session.statePath ?? ""))" : "")")
            for id in touched {
                guard let incident = shown[id] else { continue }
                let round = incident.rounds > 1 ? " (evaluation \(incident.rounds): finding \(incident.findings.last ?? "?") attached)" : ""
                print("\(id)  \(stateText(incident))  \(incident.playbook)  \(incident.title ?? incident.key)\(round)")
                for line in stepLines(incident) { print(line) }
            }
        case .json:
            let incidents = touched.compactMap { shown[$0]?.json }
            print(
                JSONWriter.pretty([
                    "findings": .number(JSONNumber(findings.count)), "dry_run": .bool(dryRun),
                    "duplicates": .number(JSONNumber(outcomes.filter(\.duplicate).count)),
                    "unmatched": .number(JSONNumber(outcomes.filter { !$0.duplicate && $0.incidents.isEmpty }.count)),
                    "decode_errors": .array(decodeIssues.map { .string($0.description) }), "incidents": .array(incidents),
                ]))
        }
        if inputErrors > 0 { throw CordonError(.invalidInput) }
        if anyFailed { throw CordonError(.checkFailed) }
    }
}

struct IncidentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "incidents", abstract: "List incidents.")

    @OptionGroup var data: DataOptions

    @Option(help: "text or json")
    var output: OutputFormat = .text

    func run() async throws {
        let journal = try data.openJournal()
        let index = try await IncidentIndex.load(from: journal)
        switch output {
        case .text:
            if index.incidents.isEmpty { print("no incidents") }
            for incident in index.incidents.values {
                let state = stateText(incident)
                print("\(incident.id)  \(incident.openedAt)  \(state)\(String(repeating: " ", count: max(1, 31 - state.count)))\(incident.playbook)  \(incident.title ?? incident.key)")
            }
            if !index.quarantinedFindings.isEmpty {
                print("quarantined findings (never taken up again automatically):")
                for (_, q) in index.quarantinedFindings {
                    print("  \(q.finding["id"]?.stringValue ?? "?")  \(q.finding["type"]?.stringValue ?? "")  \(q.reason)")
                }
            }
        case .json:
            var incidents = index.incidents.values.map(\.json)
            incidents += index.quarantinedFindings.values.map { ["quarantined_finding": $0.finding, "reason": .string($0.reason)] }
            print(JSONWriter.pretty(.array(incidents)))
        }
    }
}

struct ShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show an incident: its findings, steps, statuses, pending approval and evidence.")

    @Argument(help: "The incident id.")
    var incident: String

    @OptionGroup var data: DataOptions

    @Option(help: "text or json")
    var output: OutputFormat = .text

    func run() async throws {
        let journal = try data.openJournal()
        guard let i = try await IncidentIndex.load(incident: incident, from: journal) else {
            throw CordonError(.notFound, "no incident \(incident) (see `cordon incidents`)")
        }
        switch output {
        case .json:
            var o = i.json.objectValue ?? [:]
            o["steps"] = .array(i.steps.values.map { s in
                ["id": .string(s.id), "action": .string(s.action), "status": .string(s.status.rawValue), "attempts": .number(JSONNumber(s.attempts)),
                 "target": s.target.map(JSONValue.string) ?? .null, "error": s.error.map(JSONValue.string) ?? .null,
                 "outputs": s.outputs ?? .null, "evidence": .array(s.evidence.map(JSONValue.string))]
            })
            o["pending_approval"] = i.pendingApproval.map(JSONValue.string) ?? .null
            print(JSONWriter.pretty(.object(o)))
        case .text:
            print("incident  \(i.id)\(i.dryRun ? "  (dry run: nothing was called)" : "")")
            print("title     \(i.title ?? "-")")
            print("playbook  \(i.playbook) v\(i.playbookVersion)")
            print("key       \(i.key)")
            print("state     \(stateText(i))")
            print("opened    \(i.openedAt)")
            if let follows = i.follows { print("follows   \(follows) (closed; this key's findings since open this one)") }
            if let closure = i.closure { print("closed    \(closure.time) by \(closure.by)\(closure.reason.map { ": \($0)" } ?? "")") }
            if let quarantine = i.quarantine { print("quarantined  \(quarantine)") }
            print("findings  \(i.findings.joined(separator: ", "))\(i.rounds > 1 ? " (\(i.rounds) evaluations)" : "")")
            if let pending = i.pendingApproval {
                // The cloud the incident's steps act in: the simulated one keeps its state in the data directory.
                let simulated = FileManager.default.fileExists(atPath: data.directory.url.appendingPathComponent("simulated-cloud.json").path)
                print(
                    "approval  step \(pending) awaits a decision: cordon approve \(i.id) \(pending) --by NAME [--deny --reason TEXT] --data-dir \(data.dataDir) --cloud \(simulated ? "simulated" : "aws")"
                )
            }
            print("steps")
            for s in i.steps.values {
                let earlier = s.round < i.rounds ? " [evaluation \(s.round)]" : ""
                print("  \(s.status.rawValue.padding(toLength: 17, withPad: " ", startingAt: 0)) \(s.id) (\(s.action))\(s.target.map { " → \($0)" } ?? "")\(s.attempts > 1 ? ", \(s.attempts) attempts" : "")\(earlier)")
                if let e = s.error { print("      \(e)") }
                for h in s.evidence { print("      evidence \(h)") }
            }
        }
    }
}

struct ApproveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "Decide a pending approval, then continue the incident.",
        discussion: """
            Approving runs the step and the rest of the playbook; --deny skips the step \
            (later steps see its status) and continues. The decision and the person are \
            journaled. The first decision on an approval is final: a second one (or one \
            after the approval's timeout applied) is refused, naming the first. When `cordon \
            run` is running on the data directory, it takes the decision in within a second \
            and continues the incident; otherwise this command does.
            """)

    @Argument(help: "The incident id.")
    var incident: String

    @Argument(help: "The step awaiting approval.")
    var step: String

    @Option(help: "Who decides (journaled as the actor).")
    var by: String

    @Flag(help: "Deny instead of approve.")
    var deny = false

    @Option(help: "Why (journaled).")
    var reason: String?

    @OptionGroup var config: ConfigOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var cloud: CloudOptions

    @Option(help: "text or json")
    var output: OutputFormat = .text

    func run() async throws {
        let loaded = try loadConfiguration(config)
        try await CloudSession.with(cloud, data, continuing: true) { session in try await run(loaded, session) }
    }

    /// What the command did, as `--output json` prints it.
    func json(continuedBy: String, incident state: IncidentIndex.Incident?) -> JSONValue {
        [
            "incident": .string(incident), "step": .string(step), "decision": .string((deny ? ApprovalDecision.denied : .approved).rawValue), "by": .string(by),
            "reason": reason.map(JSONValue.string) ?? .null, "continued_by": .string(continuedBy), "state": state?.json ?? .null,
        ]
    }

    func run(_ loaded: LoadedConfig, _ session: CloudSession) async throws {
        let (journal, engine) = try await openEngine(loaded, data, cloud: session, create: false)
        try await engine.decide(incident: incident, step: step, by: by, approve: !deny, reason: reason, continuing: false)
        let decided = "\(deny ? "denied" : "approved") \(step) of \(incident) by \(by)"
        // A runner on the data directory takes the decision in and continues the incident.
        if let runner = data.runner {
            try await journal.close()
            switch output {
            case .text: print("\(decided); \(runner) continues the incident: see `cordon show \(incident) --data-dir \(data.dataDir)`")
            case .json: print(JSONWriter.pretty(json(continuedBy: runner.description, incident: nil)))
            }
            return
        }
        let lock: DataDirectoryLock
        do {
            lock = try DataDirectoryLock.acquire(data.directory, role: "approve", wait: true) { holder in
                printError("cordon: waiting for \(holder.map(\.description) ?? "another cordon process") to finish with \(data.dataDir)")
            }
        } catch let busy as DataDirectoryLock.Busy {
            try await journal.close()
            let runner = busy.holder.map(\.description) ?? "a runner"
            switch output {
            case .text: print("\(decided); \(runner) continues the incident: see `cordon show \(incident) --data-dir \(data.dataDir)`")
            case .json: print(JSONWriter.pretty(json(continuedBy: runner, incident: nil)))
            }
            return
        }
        // What other processes journaled meanwhile, then the incident.
        _ = try await engine.follow()
        try await engine.run(incident: incident)
        let state = try await engine.incident(incident)
        try await journal.close()
        withExtendedLifetime(lock) {}
        switch output {
        case .text:
            print("\(decided); incident is now \(state.map(stateText) ?? "?")")
            for line in state.map(stepLines) ?? [] { print(line) }
        case .json:
            print(JSONWriter.pretty(json(continuedBy: "this command", incident: state)))
        }
        if state.map({ incident in incident.steps.values.contains { $0.round == incident.rounds && $0.status == .failed } }) == true { throw CordonError(.checkFailed) }
    }
}

struct RollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Undo an incident's containment from the recorded pre-state.",
        discussion: """
            Restores what each containment step recorded before it acted (e.g. an instance's \
            previous security groups), newest step first, or only --step. Every rollback is \
            journaled; steps already rolled back are skipped, so running it again is harmless. \
            Exit 1 when a rollback failed.
            """)

    @Argument(help: "The incident id.")
    var incident: String

    @Option(help: "Only this step.")
    var step: String?

    @Option(help: "Who asks for it (journaled as the actor).")
    var by: String?

    @OptionGroup var config: ConfigOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var cloud: CloudOptions

    @Option(help: "text or json")
    var output: OutputFormat = .text

    func run() async throws {
        let loaded = try loadConfiguration(config)
        try await CloudSession.with(cloud, data, continuing: true) { session in try await run(loaded, session) }
    }

    func run(_ loaded: LoadedConfig, _ session: CloudSession) async throws {
        // A rollback is a person's decision: it goes ahead beside a runner (which takes its
        // records in), and otherwise keeps other commands from running incidents meanwhile.
        let lock = data.runner == nil
            ? try? DataDirectoryLock.acquire(data.directory, role: "rollback", wait: true) { holder in
                printError("cordon: waiting for \(holder.map(\.description) ?? "another cordon process") to finish with \(data.dataDir)")
            } : nil
        let (journal, engine) = try await openEngine(loaded, data, cloud: session, create: false)
        let results = try await engine.rollback(incident: incident, step: step, by: by)
        try await journal.close()
        withExtendedLifetime(lock) {}
        switch output {
        case .text:
            if results.isEmpty { print("nothing to roll back: no step of \(incident) recorded a pre-state") }
            for r in results {
                print("\(r.status.padding(toLength: 20, withPad: " ", startingAt: 0)) \(r.step)\(r.target.map { " → \($0)" } ?? "")\(r.detail.map { ": \($0)" } ?? "")")
            }
        case .json:
            print(
                JSONWriter.pretty([
                    "incident": .string(incident),
                    "results": .array(results.map { r in
                        ["step": .string(r.step), "status": .string(r.status), "target": r.target.map(JSONValue.string) ?? .null, "detail": r.detail.map(JSONValue.string) ?? .null]
                    }),
                ]))
        }
        if results.contains(where: { $0.status == "failed" }) { throw CordonError(.checkFailed) }
    }
}

struct CloseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "close",
        abstract: "Close an incident: later findings with its key open a new incident.",
        discussion: """
            An incident is open while its playbook's steps run or wait, contained once they \
            have finished, and closed by this command or by its playbook's quiet period \
            (`incident.close_after`). A finding that attaches to an incident that is not \
            closed makes its playbook evaluate again for that finding; after the close, such \
            a finding opens a new incident that follows this one. Closing withdraws a \
            pending approval and runs nothing more. An incident is closed once: closing it \
            again is refused, naming who closed it.
            """)

    @Argument(help: "The incident id.")
    var incident: String

    @Option(help: "Who closes it (journaled as the actor).")
    var by: String

    @Option(help: "Why (journaled).")
    var reason: String?

    @OptionGroup var data: DataOptions

    @Option(help: "text or json")
    var output: OutputFormat = .text

    func run() async throws {
        let journal = try data.openJournal()
        // The incident alone: closing needs nothing else of the journal.
        var index = IncidentIndex()
        guard let open = try await IncidentIndex.load(incident: incident, from: journal) else {
            throw CordonError(.notFound, "no incident \(incident) (see `cordon incidents`)")
        }
        index.adopt(open)
        let engine = Engine(
            config: LoadedConfig(), actions: [:], journal: journal, evidence: journal.evidence, secrets: SecretStore(), actor: runnerName(), index: index)
        do {
            try await engine.close(incident: incident, by: by, reason: reason)
        } catch {
            // Signed up to what it holds, whatever the close's failure.
            try await journal.close()
            throw error
        }
        let closed = try await IncidentIndex.load(incident: incident, from: journal)
        try await journal.close()
        switch output {
        case .text:
            print("closed \(incident) by \(by)\(reason.map { ": \($0)" } ?? "")")
            if let follows = closed?.follows { print("it followed \(follows)") }
        case .json:
            print(JSONWriter.pretty(closed?.json ?? .null))
        }
    }
}
