import ArgumentParser
import CordonCore
import Foundation

public struct Cordon: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "cordon",
        abstract: "Incident-response runner for AWS findings: match, contain, prove.",
        discussion: """
            Cordon reads GuardDuty, CloudTrail and Security Hub findings, matches them against \
            playbooks whose triggers are Amazon EventBridge event patterns, and runs the \
            playbooks' containment steps, journaling every fact.

            Settings come from the command line, then the configuration file (--config FILE, \
            else CORDON_CONFIG, else ./cordon.yaml, else /etc/cordon/cordon.yaml: see \
            `cordon config show` and `cordon schema config`), then the defaults.

            Exit status: 0 success, 1 a run or check failed, 2 a usage or input error.
            """,
        version: CordonCore.Cordon.version,
        subcommands: [ProcessCommand.self, RunCommand.self, IncidentsCommand.self, ShowCommand.self, ApproveCommand.self, CloseCommand.self, RollbackCommand.self, ValidateCommand.self, MatchCommand.self, DecodeCommand.self, SchemaCommand.self, TimelineCommand.self, ExportCommand.self, JournalCommand.self, IAMPolicyCommand.self, DrillCommand.self, ConfigCommand.self])

    public init() {}

    /// Runs the command line: usage errors exit 2 (not ArgumentParser's 64), as the
    /// docs' exit statuses say.
    public static func runMain() async {
        do {
            let (arguments, _) = try ConfigFile.apply(Array(CommandLine.arguments.dropFirst()))
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as InputError {
            printError(error.message)
            Foundation.exit(2)
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                let message = fullMessage(for: error)
                if !message.isEmpty { printError(message) }
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// Output format shared by commands.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

/// An input error: the message goes to stderr and the exit status is 2.
struct InputError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
