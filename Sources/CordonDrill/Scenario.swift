import CordonAWS
import CordonCloud
import CordonSimulatedCloud
import CordonCore
import Foundation

/// A tabletop drill: a narrative, the simulated cloud's inventory, a timeline of
/// injections at virtual times (findings, approvals and denials, faults) and the
/// expectations the run is checked against. The format is documented in
/// `Fixtures/drills/README.md`.
public struct Scenario: Sendable {
    public var file: String
    public var name: String
    public var description: String
    public var narrative: String
    public var lessons: [String]
    /// Virtual time at `at: 0s`.
    public var start: Date
    public var seed: UInt64
    /// How long the drill runs (pending approvals wait until then); at least until the
    /// last injection.
    public var duration: Duration
    public var inventory: Inventory
    /// The inventory as YAML JSON (for seeding a real endpoint) and where it came from.
    public var inventorySource: String
    /// Environment values the playbooks read (`CORDON_SNS_TOPIC_ARN`, …).
    public var environment: [String: String]
    public var timeline: [Injection]
    public var expectations: [Expectation]

    public struct Injection: Sendable {
        public enum Kind: Sendable {
            /// A finding, created `detectedAfter` before it is delivered.
            case finding(finding: Finding, label: String, detectedAfter: Duration)
            case decision(playbook: String, key: String?, step: String, by: String, approve: Bool, reason: String?)
            /// Someone closes the playbook's incident (`cordon close`).
            case close(playbook: String, key: String?, by: String, reason: String?)
            case fault(Fault)
            /// A notification target (an integration, an integration action, `core.email`)
            /// that fails while down.
            case targetDown(target: String, times: Int?, for: Duration?)
        }

        public var at: Duration
        public var kind: Kind
        public var location: SourceLocation
    }

    public struct Expectation: Sendable {
        public enum Kind: Sendable {
            case incident(IncidentExpectation)
            case resource(ResourceExpectation)
            case notification(via: String, contains: String?)
            case noIncident(playbook: String)
        }

        public var kind: Kind
        public var location: SourceLocation
    }

    public struct IncidentExpectation: Sendable {
        public var playbook: String
        public var key: String?
        public var status: String?
        /// Step id → expected status (`succeeded`, `failed`, `skipped`, `not_run`,
        /// `awaiting_approval`).
        public var steps: [(id: String, status: String)]
        public var containedWithin: Duration?
    }

    public struct ResourceExpectation: Sendable {
        public var kind: String
        public var id: String
        public var account: String?
        public var region: String
        public var properties: [(name: String, value: JSONValue)]
    }

    /// `name` values the scenario format accepts.
    static let namePattern = "[a-z0-9][a-z0-9-]{0,63}"
    static let stepStatuses = ["succeeded", "failed", "skipped", "not_run", "awaiting_approval"]
    static let incidentStatuses = ["completed", "failed", "awaiting-approval", "running", "closed", "quarantined"]
    static let faultEffects = ["throttle", "access_denied", "outage", "timeout", "down"]
    static let notificationChannels = ["slack", "pagerduty", "teams", "opsgenie", "webhook", "email", "sns"]

    static let resourceProperties: [String: [(String, Shape, String)]] = [
        "instance": [
            ("security_groups", .list(.string()), "exactly these groups (names or ids) on every interface"),
            ("termination_protection", .boolean, "termination protection on or off"),
            ("state", .string(), "the instance state, e.g. running"),
        ],
        "access_key": [("status", .oneOf(["Active", "Inactive"]), "Active or Inactive"), ("user", .string(), "the key's IAM user (required)")],
        "trail": [("logging", .boolean, "whether the trail is logging")],
        "security_group": [("open_to_world", .boolean, "whether any ingress rule allows 0.0.0.0/0 or ::/0")],
        "bucket": [("public_access_blocked", .boolean, "all four S3 Block Public Access settings on")],
    ]

    /// The file format, for checking and for `cordon schema drill`.
    public static let shape: Shape = {
        let decision: Shape = .object([
            .init("playbook", .string(), required: true, "the playbook whose incident awaits the decision"),
            .init("key", .string(), "the incident key, when the playbook has several incidents"),
            .init("step", .string(), required: true, "the step awaiting approval"),
            .init("by", .string(), required: true, "who decides (journaled as user:NAME)"),
            .init("reason", .string(), "why"),
        ])
        let injection: Shape = .object([
            .init("at", .duration, required: true, "virtual time since the start, e.g. 0s, 12m, 2h30m"),
            .init("note", .string(), "what happens in the story at this point"),
            .init(
                "finding",
                .object([
                    .init("file", .string(), "a finding file (any intake format), relative to the scenario"),
                    .init("event", .any, "the finding inline (an EventBridge event)"),
                    .init("detected_after", .duration, "how long after the activity the finding was created (default 0s): time to detect"),
                ]), "deliver a finding"),
            .init("approve", decision, "approve a pending approval"),
            .init("deny", decision, "deny a pending approval"),
            .init(
                "close",
                .object([
                    .init("playbook", .string(), required: true, "the playbook whose incident is closed"),
                    .init("key", .string(), "the incident key, when the playbook has several incidents"),
                    .init("by", .string(), required: true, "who closes it (journaled as user:NAME)"),
                    .init("reason", .string(), "why"),
                ]), "close an incident, as `cordon close` does"),
            .init(
                "fault",
                .object([
                    .init("operation", .string(), "an AWS call, service:Operation or IAM action, * for a prefix (ec2:Modify*)"),
                    .init("target", .string(), "a notification target: an integration (slack), an action (slack.post_message) or core.email"),
                    .init("effect", .oneOf(faultEffects), required: true, "throttle, access_denied, outage, timeout (AWS calls) or down (targets)"),
                    .init("times", .integer(min: 1), "how many calls fail (default: all, for `for`)"),
                    .init("for", .duration, "how long the fault lasts in virtual time"),
                    .init("after", .duration, "timeout: how long the call hangs before it fails (default 30s)"),
                ]), "inject a fault"),
        ])
        var resource: [Shape.Field] = [
            .init("account", .string(pattern: "[0-9]{12}"), "the account (default: the inventory's default)"),
            .init("region", .string(), "the region (default us-east-1)"),
        ]
        for kind in resourceProperties.keys.sorted() {
            resource.append(.init(kind, .string(), "the \(kind.replacingOccurrences(of: "_", with: " ")) to check"))
        }
        var seenProperty: Set<String> = []
        for kind in resourceProperties.keys.sorted() {
            for (name, shape, summary) in resourceProperties[kind] ?? [] where seenProperty.insert(name).inserted {
                resource.append(.init(name, shape, summary))
            }
        }
        let expectation: Shape = .object([
            .init("note", .string(), "why this should hold"),
            .init(
                "incident",
                .object([
                    .init("playbook", .string(), required: true, "the playbook that should open it"),
                    .init("key", .string(), "its incident key (default: the first incident of the playbook)"),
                    .init("status", .oneOf(incidentStatuses), "its final status"),
                    .init("steps", .map(.oneOf(stepStatuses)), "step id → succeeded, failed, skipped, not_run or awaiting_approval"),
                    .init("contained_within", .duration, "the first containment step succeeded at most this long after the finding was created"),
                ]), "an incident and its steps"),
            .init("no_incident", .string(), "a playbook that must not open an incident"),
            .init("resource", .object(resource), "a resource's final state"),
            .init(
                "notification",
                .object([
                    .init("via", .oneOf(notificationChannels), required: true, "the channel"),
                    .init("contains", .string(), "text the message must contain"),
                ]), "a notification that must have been sent"),
        ])
        return .object([
            .init("name", .string(pattern: namePattern, help: "lowercase letters, digits and -"), required: true, "the scenario's name"),
            .init("description", .string(), required: true, "one line"),
            .init("narrative", .string(), required: true, "the story the drill tells"),
            .init("lessons", .list(.string()), "what the drill is meant to surface"),
            .init("start", .string(), "virtual start time, RFC 3339 (default 2026-01-01T00:00:00Z)"),
            .init("seed", .integer(min: 0), "default seed for retry jitter (--seed overrides)"),
            .init("duration", .duration, "how long the drill runs in virtual time (default: 1h after the last injection)"),
            .init("inventory", .any, "the simulated cloud: a file (relative to the scenario) or the inventory inline"),
            .init("env", .map(.string()), "environment values the playbooks read (e.g. CORDON_SNS_TOPIC_ARN)"),
            .init("timeline", .list(injection, minItems: 1), required: true, "injections at virtual times"),
            .init("expect", .list(expectation), "what must hold at the end"),
        ])
    }()
}

/// Every problem of a scenario file, each at its line and column.
public struct ScenarioError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics.sorted() }
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

extension Scenario {
    /// JSON Schema of scenario files (`cordon schema drill`), from the shape the loader checks.
    public static var jsonSchema: JSONValue {
        guard case .object(var schema) = shape.jsonSchema else { return .null }
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = "https://cordon.dev/schema/drill.json"
        schema["title"] = "Cordon drill scenario"
        return .object(schema)
    }
}

extension ScenarioError: CordonErrorConvertible {
    public var cordonError: CordonError { invalidInput }
}
