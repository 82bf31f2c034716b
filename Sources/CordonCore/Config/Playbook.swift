/// A loaded, validated playbook (format: docs/playbooks.md).
public struct Playbook: Sendable {
    public var name: String
    public var version: Int
    public var description: String
    public var trigger: EventPattern
    public var incident: IncidentSpec
    public var vars: [(name: String, value: TemplateTree)]
    public var steps: [Step]
    public var file: String
    public var location: SourceLocation

    public struct IncidentSpec: Sendable {
        /// Findings with the same rendered key share an incident (default: the finding id).
        public var key: Template?
        public var title: Template?
        public var severity: Template?
        /// Closed by itself once no finding has attached for this long; nil: only a
        /// person closes it (`cordon close`).
        public var closeAfter: Duration?
    }

    public struct Step: Sendable {
        public var id: String
        public var description: String?
        public var action: String
        public var with: [(name: String, value: TemplateTree)]
        public var when: EventPattern?
        public var approval: Approval?
        public var retry: Retry
        public var timeout: Duration?
        public var onError: OnError
        public var location: SourceLocation
    }

    public struct Approval: Sendable {
        /// When the approval applies; nil: always.
        public var when: EventPattern?
        public var timeout: Duration?
        public var onTimeout: OnTimeout
    }

    public enum OnTimeout: String, Sendable { case proceed, skip, abort }
    public enum OnError: String, Sendable { case abort, `continue` }

    public struct Retry: Sendable, Equatable {
        public var attempts: Int
        public var backoff: Duration
        public var maxBackoff: Duration

        public static let `default` = Retry(attempts: 3, backoff: .seconds(1), maxBackoff: .seconds(30))
    }

    public func step(_ id: String) -> Step? { steps.first { $0.id == id } }

    /// The shape of a playbook file, shared by the loader and `cordon schema playbook`.
    public static let shape: Shape = .object([
        .init("name", .string(pattern: "[a-z0-9][a-z0-9-]*", help: "lowercase letters, digits and '-'"), required: true, "unique name of the playbook"),
        .init("version", .integer(min: 1), required: true, "version number, raised on every change"),
        .init("description", .string(), required: true, "what the playbook does and what it deliberately does not do"),
        .init("trigger", .eventPattern, required: true, "the EventBridge event pattern findings must match"),
        .init(
            "incident",
            .object([
                .init("key", .template, "findings with the same key share an incident (default: the finding id)"),
                .init("title", .template, "the incident's title"),
                .init("severity", .template, "the incident's severity"),
                .init("close_after", .duration, "close the incident once no finding has attached for this long (default: only `cordon close` closes it)"),
            ]), "how findings become incidents"),
        .init("vars", .map(.templateValue, keyPattern: "[A-Za-z_][A-Za-z0-9_]*", keyHelp: "letters, digits and '_'"), "named values for the steps"),
        .init("steps", .list(stepShape, minItems: 1), required: true, "the steps, run in order"),
    ])

    public static let stepShape: Shape = .object([
        .init("id", .string(pattern: "[a-z0-9][a-z0-9_-]*", help: "lowercase letters, digits, '_' and '-'"), required: true, "unique id of the step in the playbook"),
        .init("description", .string(), "what the step is for"),
        .init("action", .string(), required: true, "a built-in action or INTEGRATION.ACTION"),
        .init("with", .map(.templateValue), "the action's inputs"),
        .init("when", .eventPattern, "run only if this pattern matches {event fields, vars, steps, incident}"),
        .init(
            "approval",
            .object([
                .init("when", .eventPattern, "ask for approval only if this pattern matches (default: always)"),
                .init("timeout", .duration, "how long to wait for a decision"),
                .init("on_timeout", .oneOf(["proceed", "skip", "abort"]), "what to do when nobody decides in time (default: abort)"),
            ]), "pause for a human decision before the step"),
        .init(
            "retry",
            .object([
                .init("attempts", .integer(min: 1, max: 20), "attempts in all, including the first"),
                .init("backoff", .duration, "first wait between attempts (exponential, full jitter)"),
                .init("max_backoff", .duration, "longest wait between attempts"),
            ]), "retries for retryable errors (throttling, 5xx, timeouts)"),
        .init("timeout", .duration, "cancel the step after this long"),
        .init("on_error", .oneOf(["abort", "continue"]), "abort the incident's remaining steps (default) or continue"),
    ])
}
