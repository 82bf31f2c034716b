/// An error Cordon reports to its user: what kind of failure it is (`code`) and what
/// happened, where. The command line turns the code into the exit status
/// (`Code.exitStatus`), so that every command means the same by 1 and 2.
public struct CordonError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure, in the manner of ServiceLifecycle's `ServiceGroupError.Code`:
    /// a closed set of values that can grow without breaking a `switch`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Hashable, Sendable {
            case usage = "usage"
            case invalidInput = "invalid input"
            case notFound = "not found"
            case conflict = "conflict"
            case checkFailed = "check failed"
            case runFailed = "run failed"
            case corruptJournal = "corrupt journal"
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// Options that do not fit together, or that name what cannot be used.
        public static let usage = Code(.usage)
        /// A finding, pattern, playbook, scenario, inventory or other file that is malformed.
        public static let invalidInput = Code(.invalidInput)
        /// An incident, step, journal or file that is not there.
        public static let notFound = Code(.notFound)
        /// Asked for what is already done or held by another: a step decided, an incident
        /// closed, a data directory a runner holds.
        public static let conflict = Code(.conflict)
        /// A check the command ran found problems: invalid playbooks, a journal that does not
        /// verify, a drill's expectations not met, a step that failed.
        public static let checkFailed = Code(.checkFailed)
        /// The run stopped on a failure of its own: the journal could not commit or sign, a
        /// source or the cloud failed.
        public static let runFailed = Code(.runFailed)
        /// The journal disagrees with itself (its index names what its records do not hold).
        public static let corruptJournal = Code(.corruptJournal)

        /// 2 for the caller's mistake (usage, input, not found, conflict), which running
        /// again unchanged will not fix; 1 for a run or check that failed.
        public var exitStatus: Int32 {
            switch value {
            case .usage, .invalidInput, .notFound, .conflict: 2
            case .checkFailed, .runFailed, .corruptJournal: 1
            }
        }

        public var description: String { value.rawValue }
    }

    public var code: Code
    /// What happened and where; empty when the command has reported it already (such as
    /// diagnostics printed one per line).
    public var message: String

    public init(_ code: Code, _ message: String = "") {
        self.code = code
        self.message = message
    }

    public var description: String { message.isEmpty ? code.description : message }
}

/// An error of one part of Cordon (a parser's, the journal's, an action's) that says
/// which kind of `CordonError` it is, so that the command line maps it like any other.
public protocol CordonErrorConvertible: Error {
    var cordonError: CordonError { get }
}

extension CordonErrorConvertible where Self: CustomStringConvertible {
    /// Malformed input, described by the error itself.
    public var invalidInput: CordonError { CordonError(.invalidInput, description) }
}

extension YAMLError: CordonErrorConvertible {
    public var cordonError: CordonError { invalidInput }
}

extension JSONParseError: CordonErrorConvertible {
    public var cordonError: CordonError { invalidInput }
}

extension PatternError: CordonErrorConvertible {
    public var cordonError: CordonError { invalidInput }
}

extension EventMatchError: CordonErrorConvertible {
    public var cordonError: CordonError { invalidInput }
}

extension TemplateError: CordonErrorConvertible {
    public var cordonError: CordonError { invalidInput }
}

extension ActionError: CordonErrorConvertible {
    /// An action that failed outside a step (a drill's seeding, a cloud call of a command).
    public var cordonError: CordonError { CordonError(.runFailed, description) }
}
