import ArgumentParser
import CordonCore
import CordonHTTP
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

    /// Runs the command line. Every error a command throws ends here, and `ExitStatus`
    /// turns it into the exit status: 0 success, 1 a run or check failed, 2 a usage or
    /// input error (not ArgumentParser's 64).
    /// What every command does when it ends, however it ends: the witnesses get the last
    /// checkpoints, then the clients it made are shut down.
    static func finishCommand() async {
        await Witnesses.flush()
        await CustodyCloud.shutdown()
        await CordonHTTPClient.shutdownShared()
    }

    public static func runMain() async {
        do {
            let (arguments, _) = try ConfigFile.apply(Array(CommandLine.arguments.dropFirst()))
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            await finishCommand()
        } catch {
            await finishCommand()
            guard let (status, message) = ExitStatus.of(error) else { exit(withError: error) }
            if !message.isEmpty { printError(message) }
            Foundation.exit(status)
        }
    }
}

/// The exit status and message for an error that stopped a command: the one place where
/// errors become exit statuses.
enum ExitStatus {
    /// nil for ArgumentParser's own exits (help, version, its usage errors other than
    /// validation), which it prints and maps itself.
    static func of(_ error: any Error) -> (status: Int32, message: String)? {
        switch error {
        case let error as CordonError:
            return (error.code.exitStatus, error.message.isEmpty ? "" : "cordon: " + error.message)
        case let error as any CordonErrorConvertible:
            return of(error.cordonError)
        case is CancellationError:
            return (CordonError.Code.runFailed.exitStatus, "cordon: cancelled")
        default:
            break
        }
        let code = Cordon.exitCode(for: error)
        if code == .validationFailure {
            return (CordonError.Code.usage.exitStatus, Cordon.fullMessage(for: error))
        }
        if error is ExitCode || error is CleanExit || error is ValidationError || code != .failure {
            return nil
        }
        // Anything else is a failure of the run: a journal, file or network error.
        return (CordonError.Code.runFailed.exitStatus, "cordon: \(error)")
    }
}

/// Output format shared by commands.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
