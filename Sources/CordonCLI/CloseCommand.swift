import ArgumentParser
import CordonCore
import CordonEngine
import CordonIntegrations
import CordonJournal
import Foundation
import Logging

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
    @OptionGroup var logging: LoggingOptions

    @Option(help: "text or json")
    var output: OutputFormat = .text

    func run() async throws {
        logging.bootstrap()
        let journal = try await data.openJournal(log: Logger(label: "cordon.close"))
        // The incident alone: closing needs nothing else of the journal.
        var index = IncidentIndex()
        guard let open = try await IncidentIndex.load(incident: incident, from: journal) else {
            throw CordonError(.notFound, "no incident \(incident) (see `cordon incidents`)")
        }
        index.adopt(open)
        let engine = Engine(
            config: LoadedConfig(), actions: [:], journal: LoggingJournal(journal, logger: Logger(label: "cordon.close")), evidence: journal.evidence, secrets: SecretStore(), actor: runnerName(), index: index)
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
