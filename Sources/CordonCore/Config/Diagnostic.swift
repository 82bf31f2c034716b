/// A problem found in a playbook or integration file, at a line and column.
public struct Diagnostic: Sendable, Equatable, CustomStringConvertible, Comparable {
    public enum Severity: String, Sendable, Equatable { case error, warning }

    public var location: SourceLocation
    public var message: String
    public var severity: Severity

    public init(_ location: SourceLocation, _ message: String, severity: Severity = .error) {
        self.location = location
        self.message = Self.oneLine(message)
        self.severity = severity
    }

    /// A message on one line: line breaks and other control characters inside it (a
    /// quoted multi-line value) are written as escapes, `\n`, `\t`, `\u{7}`.
    static func oneLine(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == "\u{2028}" || $0 == "\u{2029}" }) else {
            return text
        }
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.properties.generalCategory == .control || scalar == "\u{2028}" || scalar == "\u{2029}":
                out += "\\u{\(String(scalar.value, radix: 16))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
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
