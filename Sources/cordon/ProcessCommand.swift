import ArgumentParser
import CordonCore
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
        printError("cordon: the playbooks or integrations are invalid (see `cordon validate`)")
        throw ExitCode(2)
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
    wrapJournal: (SQLiteJournal) -> any Journal = { $0 }
) async throws -> (SQLiteJournal, Engine) {
    let secrets = SecretStore()
    let journal = try data.openJournal(create: create, secrets: secrets)
    var actions = CoreActions.all
    actions[EmailAction.name] = EmailAction()
    // Every action of every integration file, as INTEGRATION.ACTION.
    actions.merge(IntegrationActions.all(loaded.integrations)) { _, integration in integration }
    actions.merge(cloud.actions) { _, aws in aws }  // aws.* on --cloud (none in a dry run)
    // Test double for the crash tests (see FileRecorderAction); never set in production.
    if let recorder = ProcessInfo.processInfo.environment["CORDON_TEST_RECORDER_FILE"] {
        actions["test.record"] = FileRecorderAction(path: recorder)
    }
    let engine = Engine(
        config: loaded, actions: actions, journal: wrapJournal(journal), evidence: journal.evidence, secrets: secrets, actor: runnerName(),
        dryRun: dryRun, index: try await IncidentIndex.load(from: journal, retention: retention), actionsInFlight: actionsInFlight)
    return (journal, engine)
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
        var inputErrors = 0
        for file in FindingFiles.expand(files) {
            let result = file == "-"
                ? decoder.decode(Array(FileHandle.standardInput.readDataToEndOfFile()), source: "stdin")
                : decoder.decode(fileAtPath: file)
            for issue in result.issues { printError("cordon: \(issue)") }
            inputErrors += result.issues.count
            findings += result.findings
        }
        let (journal, engine) = try await openEngine(loaded, data, cloud: session, dryRun: dryRun)
        if !dryRun {
            let resumed = try await engine.resumeUnfinished()
            if !resumed.isEmpty { printError("cordon: resumed \(resumed.count) unfinished incident(s): \(resumed.joined(separator: ", "))") }
        }
        let outcomes = try await engine.process(findings)
        // The incidents this run touched, in full (read from the journal once finished).
        var shown: [String: IncidentIndex.Incident] = [:]
        for id in Set(outcomes.flatMap(\.incidents)) { shown[id] = try await engine.incident(id) }
        try await journal.close()
        let touched = shown.keys.sorted { (shown[$0]?.openedAt ?? "", $0) < (shown[$1]?.openedAt ?? "", $1) }
        var anyFailed = false
        switch output {
        case .text:
            print("\(findings.count) finding(s): \(outcomes.filter(\.duplicate).count) duplicate(s), \(outcomes.filter { !$0.duplicate && $0.incidents.isEmpty }.count) matched no playbook, \(touched.count) incident(s)\(dryRun ? " (dry run: nothing was called)" : session.kind == .simulated ? " (simulated cloud: \(session.statePath ?? ""))" : "")")
            for id in touched {
                guard let incident = shown[id] else { continue }
                print("\(id)  \(incident.status)  \(incident.playbook)  \(incident.title ?? incident.key)")
                for step in incident.steps.values {
                    print("    \(step.status.padding(toLength: 17, withPad: " ", startingAt: 0)) \(step.id) (\(step.action))\(step.error.map { ": \($0)" } ?? "")")
                    if step.status == "failed" { anyFailed = true }
                }
            }
        case .json:
            let incidents = touched.compactMap { shown[$0]?.json }
            print(JSONWriter.pretty(["findings": .number(JSONNumber(findings.count)), "dry_run": .bool(dryRun), "incidents": .array(incidents)]))
            anyFailed = touched.contains { id in shown[id]?.steps.values.contains { $0.status == "failed" } ?? false }
        }
        if inputErrors > 0 { throw ExitCode(2) }
        if anyFailed { throw ExitCode(1) }
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
                print("\(incident.id)  \(incident.openedAt)  \(incident.status.padding(toLength: 17, withPad: " ", startingAt: 0)) \(incident.playbook)  \(incident.title ?? incident.key)")
            }
        case .json:
            print(JSONWriter.pretty(.array(index.incidents.values.map(\.json))))
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
            printError("cordon: no incident \(incident) (see `cordon incidents`)")
            throw ExitCode(2)
        }
        switch output {
        case .json:
            var o = i.json.objectValue ?? [:]
            o["steps"] = .array(i.steps.values.map { s in
                ["id": .string(s.id), "action": .string(s.action), "status": .string(s.status), "attempts": .number(JSONNumber(s.attempts)),
                 "target": s.target.map(JSONValue.string) ?? .null, "error": s.error.map(JSONValue.string) ?? .null,
                 "outputs": s.outputs ?? .null, "evidence": .array(s.evidence.map(JSONValue.string))]
            })
            o["pending_approval"] = i.pendingApproval.map(JSONValue.string) ?? .null
            print(JSONWriter.pretty(.object(o)))
        case .text:
            print("incident  \(i.id)\(i.dryRun ? "  (dry run)" : "")")
            print("title     \(i.title ?? "-")")
            print("playbook  \(i.playbook) v\(i.playbookVersion)")
            print("key       \(i.key)")
            print("status    \(i.status)")
            print("opened    \(i.openedAt)")
            print("findings  \(i.findings.joined(separator: ", "))")
            if let pending = i.pendingApproval {
                print("approval  step \(pending) awaits a decision: cordon approve \(i.id) \(pending) --by NAME [--deny --reason TEXT]")
            }
            print("steps")
            for s in i.steps.values {
                print("  \(s.status.padding(toLength: 17, withPad: " ", startingAt: 0)) \(s.id) (\(s.action))\(s.target.map { " → \($0)" } ?? "")\(s.attempts > 1 ? ", \(s.attempts) attempts" : "")")
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
            journaled.
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

    func run() async throws {
        let loaded = try loadConfiguration(config)
        try await CloudSession.with(cloud, data, continuing: true) { session in try await run(loaded, session) }
    }

    func run(_ loaded: LoadedConfig, _ session: CloudSession) async throws {
        let (journal, engine) = try await openEngine(loaded, data, cloud: session, create: false)
        do {
            try await engine.decide(incident: incident, step: step, by: by, approve: !deny, reason: reason)
        } catch let error as EngineError {
            printError("cordon: \(error)")
            throw ExitCode(2)
        }
        let state = try await engine.incident(incident)
        try await journal.close()
        print("\(deny ? "denied" : "approved") \(step) of \(incident) by \(by); incident is now \(state?.status ?? "?")")
        for s in state?.steps.values.map({ $0 }) ?? [] {
            print("    \(s.status.padding(toLength: 17, withPad: " ", startingAt: 0)) \(s.id) (\(s.action))\(s.error.map { ": \($0)" } ?? "")")
        }
        if state?.steps.values.contains(where: { $0.status == "failed" }) == true { throw ExitCode(1) }
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

    func run() async throws {
        let loaded = try loadConfiguration(config)
        try await CloudSession.with(cloud, data, continuing: true) { session in try await run(loaded, session) }
    }

    func run(_ loaded: LoadedConfig, _ session: CloudSession) async throws {
        let (journal, engine) = try await openEngine(loaded, data, cloud: session, create: false)
        let results: [Engine.RollbackResult]
        do {
            results = try await engine.rollback(incident: incident, step: step, by: by)
        } catch let error as EngineError {
            printError("cordon: \(error)")
            throw ExitCode(2)
        }
        try await journal.close()
        if results.isEmpty { print("nothing to roll back: no step of \(incident) recorded a pre-state") }
        for r in results { print("\(r.status.padding(toLength: 20, withPad: " ", startingAt: 0)) \(r.step)\(r.detail.map { ": \($0)" } ?? "")") }
        if results.contains(where: { $0.status == "failed" }) { throw ExitCode(1) }
    }
}
