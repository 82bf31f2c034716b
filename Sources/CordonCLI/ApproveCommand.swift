import ArgumentParser
import CordonCore
import CordonEngine
import CordonIntegrations
import CordonJournal
import Foundation
import Logging

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
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var cloud: CloudOptions

    @Option(help: "text or json")
    var output: OutputFormat = .text

    func run() async throws {
        logging.bootstrap()
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
        let (journal, engine) = try await openEngine(loaded, data, cloud: session, create: false, logger: Logger(label: "cordon.approve"))
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
