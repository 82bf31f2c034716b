import ArgumentParser
import CordonCore
import CordonEngine
import CordonIntegrations
import CordonJournal
import Foundation
import Logging

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
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var cloud: CloudOptions

    @Option(help: "text or json")
    var output: OutputFormat = .text

    func run() async throws {
        logging.bootstrap()
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
        let (journal, engine) = try await openEngine(loaded, data, cloud: session, create: false, logger: Logger(label: "cordon.rollback"))
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
