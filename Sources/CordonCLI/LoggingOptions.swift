import ArgumentParser
import CordonCore
import Logging

/// `--log-level` and `--log-format`: what a long-running command logs on standard error,
/// and how.
struct LoggingOptions: ParsableArguments {
    @Option(help: "Least severe events logged (default: info for run, warning for the other commands).")
    var logLevel: Logger.Level?

    @Option(help: "text (one line per event, for people) or json (one object per line, for a log collector).")
    var logFormat: CordonLog.Format = .text

    /// Sends the process's log to standard error as the options say; `defaultLevel`
    /// when no level is given (a runner tells its incidents; a one-shot command prints
    /// its result and logs only what went wrong).
    func bootstrap(defaultLevel: Logger.Level = .warning) {
        CordonLog.bootstrap(level: logLevel ?? defaultLevel, format: logFormat)
    }

    /// A library's logger (ServiceLifecycle's, Hummingbird's) kept at warning and above
    /// unless the log level asks for debugging: their start-up chatter is not the runner's.
    static func quiet(_ logger: Logger) -> Logger {
        var logger = logger
        if logger.logLevel > .debug { logger.logLevel = max(logger.logLevel, .warning) }
        return logger
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension CordonLog.Format: ExpressibleByArgument {}
