import CordonCore
import CordonEngine
import Foundation
import Synchronization
import CordonIntegrations

/// What an engine test starts from: a playbook and the test integration (`test.record`)
/// loaded from a temporary directory, secrets, and a journal of backend `J` with its
/// evidence sink. Each test target names the backend it runs on with a typealias
/// (`EngineHarness`) and builds it with an initialiser for that backend.
public struct EngineFixture<J: Journal>: Sendable {
    public let dir: TempDir
    public let journal: J
    public let evidence: any EvidenceSink
    public let config: LoadedConfig
    public let secrets: SecretStore

    public struct InvalidPlaybook: Error, CustomStringConvertible {
        public var description: String
    }

    /// Loads `playbook`; `open` makes the journal and evidence sink, given the directory
    /// and the secrets (to redact with).
    public init(
        playbook: String, environment: [String: String] = [:],
        journal open: (_ dir: TempDir, _ secrets: SecretStore) throws -> (J, any EvidenceSink)
    ) throws {
        dir = try TempDir()
        try dir.write("Integrations/test.yaml", EngineFixtures.integration)
        try dir.write("Playbooks/p.yaml", playbook)
        config = ConfigLoader(actions: .builtIn).load([dir.path + "/Playbooks", dir.path + "/Integrations"])
        guard config.isValid else { throw InvalidPlaybook(description: "\(config.diagnostics)") }
        secrets = SecretStore(environment: environment)
        let opened = try open(dir, secrets)
        journal = opened.0
        evidence = opened.1
    }

    /// An engine on the journal (another process's, when called again: its index is
    /// loaded from the journal), with the core actions and `actions`.
    public func engine(
        _ actions: [String: any Action], dryRun: Bool = false, actionsInFlight: Int? = nil, retention: IncidentIndex.Retention = .everything
    ) async throws -> Engine {
        Engine(
            config: config, actions: CoreActions.all.merging(actions) { $1 }, journal: journal, evidence: evidence, secrets: secrets,
            actor: "cordon/test", dryRun: dryRun, index: try await IncidentIndex.load(from: journal, retention: retention),
            actionsInFlight: actionsInFlight)
    }

    /// A GuardDuty finding on an EC2 instance tagged `env: prod`.
    public static func finding(id: String, instance: String = "i-1", severity: Int = 8, updatedAt: String = "2026-03-01T10:00:00Z") -> Finding {
        let text = #"{"version":"0","id":"\#(id)","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"111122223333","time":"\#(updatedAt)","region":"us-east-1","resources":[],"detail":{"id":"\#(id)","type":"Backdoor:EC2/C&CActivity.B!DNS","severity":\#(severity),"createdAt":"2026-03-01T09:59:00Z","updatedAt":"\#(updatedAt)","resource":{"resourceType":"Instance","instanceDetails":{"instanceId":"\#(instance)","tags":[{"key":"env","value":"prod"}]}}}}"#
        return FindingDecoder().decode(Array(text.utf8), source: "test").findings[0]
    }

    public func records(_ incident: String) async throws -> [JournalRecord] { try await journal.records(incident: incident) }
}

extension EngineFixture where J == MemoryJournal {
    /// On a new `MemoryJournal` and `MemoryEvidence`.
    public init(playbook: String, environment: [String: String] = [:]) throws {
        try self.init(playbook: playbook, environment: environment) { _, secrets in
            (MemoryJournal(secrets: secrets), MemoryEvidence(secrets: secrets))
        }
    }

    /// What is wrong with the journal once its head is signed (`JournalChain`), the
    /// evidence its records cite included: [] when nothing is.
    public func chainProblems() async throws -> [String] {
        try await journal.checkpoint()
        return try await JournalChain.problems(in: journal, publicKey: journal.publicKey, evidence: evidence)
    }
}

public enum EngineFixtures {
    /// The integration of the test action `test.record`.
    public static let integration = """
        name: test
        secrets: [TEST_TOKEN]
        actions:
          record:
            inputs: {target: {required: true}, note: {}, token: {}}
            request: {method: POST, url: "http://127.0.0.1:9/{{ inputs.target }}"}
        """
}

/// Three steps on a GuardDuty finding's instance: `first` (retried), `second` (noting how
/// `first` went) and `log`, which runs only when `second` succeeded.
public let basicPlaybook = """
    name: demo
    version: 1
    description: test
    trigger: {source: [aws.guardduty], detail: {severity: [{numeric: [">=", 7]}]}}
    incident:
      key: "{{ detail.resource.instanceDetails.instanceId }}"
      title: "{{ detail.type }} on {{ detail.resource.instanceDetails.instanceId }}"
    vars:
      instance: "{{ detail.resource.instanceDetails.instanceId }}"
    steps:
      - id: first
        action: test.record
        with: {target: "{{ vars.instance }}", note: one}
        retry: {attempts: 3, backoff: 10ms, max_backoff: 20ms}
      - id: second
        action: test.record
        with: {target: "{{ vars.instance }}", note: "after {{ steps.first.status }}"}
      - id: log
        action: core.log
        when: {steps: {second: {status: [succeeded]}}}
        with: {message: "done with {{ vars.instance }}"}
    """

/// A test action that counts its side effects and fails or hangs on demand.
public final class RecordingAction: Action, Sendable {
    /// The idempotency key of each call that took effect.
    public let effects = Mutex<[String]>([])
    /// The failures of the next calls, in order (nil: succeed).
    public let plan = Mutex<[ActionError?]>([])
    public let hang: Duration?

    public init(failures: [ActionError?] = [], hang: Duration? = nil) {
        plan.withLock { $0 = failures }
        self.hang = hang
    }

    public var count: Int { effects.withLock { $0.count } }

    public func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        if let hang { try? await Task.sleep(for: hang) }
        if let failure = plan.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { throw failure }
        effects.withLock { $0.append(request.idempotencyKey) }
        let ref = try? request.evidence.store(Array("response for \(request.inputs["target"]?.stringValue ?? "")".utf8), name: "response", mediaType: "text/plain")
        return ActionOutcome(outputs: ["done": true, "echo": .object(request.inputs)], target: request.inputs["target"]?.stringValue, evidence: ref.map { [$0] } ?? [])
    }
}
