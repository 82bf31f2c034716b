/// A failure of the engine or of the journal beneath it.
public struct EngineError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    public init(message: String) { self.message = message }
}
