/// A problem found in a playbook or integration file, at a line and column.
public struct Diagnostic: Sendable, Equatable, CustomStringConvertible, Comparable {
    public enum Severity: String, Sendable, Equatable { case error, warning }

    public var location: SourceLocation
    public var message: String
    public var severity: Severity

    public init(_ location: SourceLocation, _ message: String, severity: Severity = .error) {
        self.location = location
        self.message = message
        self.severity = severity
    }

    /// `FILE:LINE:COLUMN: message` (warnings say so).
    public var description: String {
        severity == .error ? "\(location): \(message)" : "\(location): warning: \(message)"
    }

    public var json: JSONValue {
        [
            "file": .string(location.file), "line": .number(JSONNumber(location.line)),
            "column": .number(JSONNumber(location.column)), "severity": .string(severity.rawValue),
            "message": .string(message),
        ]
    }

    public static func < (a: Diagnostic, b: Diagnostic) -> Bool { a.location < b.location }
}
