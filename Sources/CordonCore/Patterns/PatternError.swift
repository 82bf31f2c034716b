/// An invalid event pattern: names the offending field and says what is wrong.
public struct PatternError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Dotted path of the field in the pattern (empty for the pattern itself).
    public var path: String
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String {
        path.isEmpty ? "invalid pattern: \(message)" : "invalid pattern at \"\(path)\": \(message)"
    }
}
