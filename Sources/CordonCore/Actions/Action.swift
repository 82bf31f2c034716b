import OrderedCollections

/// An action a step runs: the extension point between playbooks and the outside world.
///
/// Idempotency is every action's duty: a retry or a restart must never repeat a side
/// effect. An action that can read the state it changes says so (`checkable`) and
/// implements `check`, which the engine calls before acting after a crash or on a
/// retry; `run` itself should skip what is already in place and verify after acting.
/// An action whose effect cannot be read back leaves `checkable` false, and the engine
/// then relies on the idempotency key (passed to services that deduplicate).
public protocol Action: Sendable {
    var checkable: Bool { get }
    /// The outcome when the effect is already in place, or nil when it is not.
    func check(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome?
    func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome
    /// Whether `rollback` can undo the effect (conform to `ReversibleAction`).
    var reversible: Bool { get }
    /// The state the action may change, read before it changes anything: the engine
    /// journals it with the step's first intent, so that a rollback can restore it even
    /// when the step fails or is cut short after its first change. Nil for an action that
    /// is not reversible.
    func capture(_ request: ActionRequest) async throws(ActionError) -> JSONValue?
    /// Restores the recorded pre-state (captured before the step, or the one its success
    /// reported): what is already as recorded is left alone.
    func rollback(_ request: ActionRequest, preState: JSONValue) async throws(ActionError) -> ActionOutcome
}

extension Action {
    public var checkable: Bool { false }
    public func check(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome? { nil }
    public var reversible: Bool { false }
    public func capture(_ request: ActionRequest) async throws(ActionError) -> JSONValue? { nil }
    public func rollback(_ request: ActionRequest, preState: JSONValue) async throws(ActionError) -> ActionOutcome {
        throw .permanent("NotReversible", "\(request.action) cannot be rolled back")
    }
}

/// An action whose effect `cordon rollback` can undo from the pre-state it recorded.
/// Rolling back twice must be harmless (restore what is recorded, skip what is already so).
/// Its `capturePreState` reads what it may change before the first change, in the form
/// its `rollback` takes.
public protocol ReversibleAction: Action {
    func capturePreState(_ request: ActionRequest) async throws(ActionError) -> JSONValue
}

extension ReversibleAction {
    public var reversible: Bool { true }
    public func capture(_ request: ActionRequest) async throws(ActionError) -> JSONValue? { try await capturePreState(request) }
}

/// What a step asks of its action.
public struct ActionRequest: Sendable {
    public var action: String
    public var inputs: JSONObject
    /// Derived from the incident, the playbook's name and version, the step and its
    /// inputs: the same for every retry and restart of the same step.
    public var idempotencyKey: String
    public var incident: JSONValue
    public var evidence: any EvidenceSink
    public var secrets: SecretStore

    public init(action: String, inputs: JSONObject, idempotencyKey: String, incident: JSONValue, evidence: any EvidenceSink, secrets: SecretStore) {
        self.action = action
        self.inputs = inputs
        self.idempotencyKey = idempotencyKey
        self.incident = incident
        self.evidence = evidence
        self.secrets = secrets
    }
}

/// What an action did.
public struct ActionOutcome: Sendable {
    public var outputs: JSONObject
    /// The resource acted on (instance id, role, bucket…), for the timeline.
    public var target: String?
    /// Evidence references (`{name, sha256, size, media_type}`) stored during the run.
    public var evidence: [JSONValue]
    /// The state before the change, for rollback.
    public var preState: JSONValue?
    /// True when the effect was already in place and nothing was changed.
    public var alreadyDone: Bool

    public init(outputs: JSONObject = [:], target: String? = nil, evidence: [JSONValue] = [], preState: JSONValue? = nil, alreadyDone: Bool = false) {
        self.outputs = outputs
        self.target = target
        self.evidence = evidence
        self.preState = preState
        self.alreadyDone = alreadyDone
    }
}

/// A failed action: retryable (throttling, 5xx, timeouts) or permanent (access denied,
/// not found, invalid input), with the provider's code and message.
public struct ActionError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var retryable: Bool
    /// How long the service asked to wait before a retry (HTTP `Retry-After`): the engine
    /// waits at least this long, within the step's timeout.
    public var retryAfter: Duration?

    public init(code: String, message: String, retryable: Bool, retryAfter: Duration? = nil) {
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retryAfter = retryAfter
    }

    public var description: String { "\(code): \(message)" }

    public static func permanent(_ code: String, _ message: String) -> ActionError { ActionError(code: code, message: message, retryable: false) }
    public static func retryable(_ code: String, _ message: String, after: Duration? = nil) -> ActionError {
        ActionError(code: code, message: message, retryable: true, retryAfter: after)
    }
}

/// Where actions store evidence (content-addressed); returns the reference to cite.
public protocol EvidenceSink: Sendable {
    func store(_ bytes: [UInt8], name: String, mediaType: String) throws -> JSONValue
    /// The bytes stored under a SHA-256 (hex).
    func load(_ sha256: String) throws -> [UInt8]
    /// The same, cited by the record of this seq (which a store may find it by sooner).
    func load(_ sha256: String, citedAt seq: Int64) throws -> [UInt8]
}

extension EvidenceSink {
    public func load(_ sha256: String, citedAt seq: Int64) throws -> [UInt8] { try load(sha256) }
}
