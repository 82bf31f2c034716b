/// The names the journal, `cordon show`, timelines and templates use for where a step,
/// an incident or an approval stands. Each is its wire text (`rawValue`, unchanged in
/// journals) behind a type, so that the code names them instead of spelling them.

/// A name written as its wire text: comparable with a string literal, printed as itself.
public protocol WireName: RawRepresentable<String>, Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    init(rawValue: String)
}

extension WireName {
    public init(stringLiteral value: String) { self.init(rawValue: value) }
    public var description: String { rawValue }
}

/// A step's status in the incident's latest evaluation (`steps.ID.status` in templates).
public struct StepStatus: WireName {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// A dry run's step: what a real run would do.
    public static let planned: StepStatus = "planned"
    public static let running: StepStatus = "running"
    /// Failed, and tried again after a delay.
    public static let retrying: StepStatus = "retrying"
    public static let succeeded: StepStatus = "succeeded"
    public static let failed: StepStatus = "failed"
    /// Its `when` did not hold, or an earlier step failed.
    public static let skipped: StepStatus = "skipped"
    public static let awaitingApproval: StepStatus = "awaiting-approval"
    public static let approved: StepStatus = "approved"
    public static let denied: StepStatus = "denied"
    public static let rolledBack: StepStatus = "rolled-back"
}

/// An incident's status, derived from its steps, approvals and closing.
public struct IncidentStatus: WireName {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let running: IncidentStatus = "running"
    public static let awaitingApproval: IncidentStatus = "awaiting-approval"
    public static let completed: IncidentStatus = "completed"
    public static let failed: IncidentStatus = "failed"
    public static let closed: IncidentStatus = "closed"
    public static let quarantined: IncidentStatus = "quarantined"
}

/// What was decided on an approval request.
public struct ApprovalDecision: WireName {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let approved: ApprovalDecision = "approved"
    public static let denied: ApprovalDecision = "denied"
    /// The timeout decided, with `on_timeout: abort`.
    public static let aborted: ApprovalDecision = "aborted"
}
