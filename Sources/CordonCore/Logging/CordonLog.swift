import Foundation
import Logging
import Synchronization

/// How Cordon writes its log: on standard error, one line per event, as text for people
/// (`cordon: message (incident=… step=…)`) or as JSON for a collector. The journal, not
/// the log, is the record of what was done; the log says what the process is doing.
public enum CordonLog {
    public enum Format: String, Sendable, CaseIterable {
        case text, json
    }

    /// Sends every Logger of the process to standard error in `format`, at `level` and
    /// above. Call once, before the first Logger is made (swift-log allows one bootstrap).
    public static func bootstrap(level: Logger.Level, format: Format) {
        LoggingSystem.bootstrap { label in
            var handler = Handler(label: label, format: format)
            handler.logLevel = level
            return handler
        }
    }

    /// A Logger that hands each event, as a line of text, to `sink` instead of standard
    /// error (what a test reads, or a host process that keeps its own log).
    public static func logger(_ label: String, level: Logger.Level = .info, sink: @escaping @Sendable (String) -> Void) -> Logger {
        Logger(label: label) { label in
            var handler = Handler(label: label, format: .text, sink: sink)
            handler.logLevel = level
            return handler
        }
    }

    /// A Logger that writes nothing: the default of parts that log only when given one.
    public static let silent = Logger(label: "cordon.silent") { _ in SwiftLogNoOpLogHandler() }

    /// Keeps lines whole when several threads log at once.
    private static let output = Mutex<Void>(())

    static func write(_ line: String) {
        output.withLock { _ in FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }

    struct Handler: LogHandler {
        let label: String
        let format: Format
        /// Where lines go; standard error when nil.
        var sink: (@Sendable (String) -> Void)? = nil
        var logLevel: Logger.Level = .info
        var metadata: Logger.Metadata = [:]
        var metadataProvider: Logger.MetadataProvider?

        init(label: String, format: Format, sink: (@Sendable (String) -> Void)? = nil) {
            self.label = label
            self.format = format
            self.sink = sink
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var all = metadata
            if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
            if let more = event.metadata { all.merge(more) { _, new in new } }
            if let error = event.error { all["error"] = .string("\(error)") }
            let line = CordonLog.line(label: label, level: event.level, message: event.message.description, metadata: all, format: format)
            if let sink { sink(line) } else { CordonLog.write(line) }
        }
    }

    /// One event as a line of `format`.
    public static func line(label: String, level: Logger.Level, message: String, metadata: Logger.Metadata, format: Format) -> String {
        let keys = metadata.keys.sorted()
        switch format {
        case .text:
            let prefix = level >= .warning && !message.hasPrefix("warning") ? "\(level): " : ""
            let context = keys.map { "\($0)=\(metadata[$0].map(text) ?? "")" }.joined(separator: " ")
            return "cordon: " + prefix + message + (context.isEmpty ? "" : " (\(context))")
        case .json:
            var object: JSONObject = [
                "time": .string(Timestamp.string(Date())), "level": .string(level.rawValue), "logger": .string(label), "message": .string(message),
            ]
            for key in keys where object[key] == nil { object[key] = metadata[key].map(json) ?? .null }
            return JSONWriter.string(.object(object))
        }
    }

    private static func text(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let s): return s
        case .stringConvertible(let c): return c.description
        case .array(let a): return "[" + a.map(text).joined(separator: ",") + "]"
        case .dictionary(let d): return "{" + d.keys.sorted().map { "\($0)=\(d[$0].map(text) ?? "")" }.joined(separator: ",") + "}"
        }
    }

    private static func json(_ value: Logger.MetadataValue) -> JSONValue {
        switch value {
        case .string(let s): return .string(s)
        case .stringConvertible(let c): return .string(c.description)
        case .array(let a): return .array(a.map(json))
        case .dictionary(let d):
            var o = JSONObject()
            for key in d.keys.sorted() { o[key] = d[key].map(json) ?? .null }
            return .object(o)
        }
    }
}
