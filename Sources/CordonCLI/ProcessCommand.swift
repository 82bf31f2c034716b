import ArgumentParser
import CordonCore
import CordonEngine
import CordonIntegrations
import CordonJournal
import Foundation
import Logging

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
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var cloud: CloudOptions

    @Flag(help: "Journal the plan with rendered inputs; call nothing.")
    var dryRun = false

    @Option(help: "text or json")
    var output: OutputFormat = .text

    func run() async throws {
        logging.bootstrap()
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
        let (journal, engine) = try await openEngine(loaded, data, cloud: session, dryRun: dryRun, logger: Logger(label: "cordon.process"))
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
