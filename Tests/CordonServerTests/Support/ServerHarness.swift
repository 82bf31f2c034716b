import AsyncHTTPClient
import CordonCore
import CordonEngine
import CordonIntake
import CordonJournal
import CordonServer
import CordonTestSupport
import Foundation
import GRDB
import NIOCore
import Synchronization
import Testing
import CordonIntegrations

/// Resources that runners share, as they share a cloud account: what has been contained.
final class SharedTarget: Sendable {
    private let contained = Mutex<Set<String>>([])
    /// Contains `target`; false when it already was (checked and changed atomically, as
    /// one API call with a condition would).
    func contain(_ target: String) -> Bool { contained.withLock { $0.insert(target).inserted } }
    var all: Set<String> { contained.withLock { $0 } }
}

/// Counts what the playbook's step did. With a shared target it behaves as Cordon's real
/// actions do: it reads the target's state first and changes nothing when the effect is
/// already in place (`alreadyDone`); `effects` then counts changes and `calls` every call.
final class CountingAction: Action, Sendable {
    let effects = Mutex<[String]>([])
    let calls = Mutex<[String]>([])
    let target: SharedTarget?
    init(target: SharedTarget? = nil) { self.target = target }
    var count: Int { effects.withLock { $0.count } }
    func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        let name = request.inputs["target"]?.stringValue ?? ""
        calls.withLock { $0.append(name) }
        if let target, !target.contain(name) { return ActionOutcome(outputs: ["done": true], target: name, alreadyDone: true) }
        effects.withLock { $0.append(name) }
        return ActionOutcome(outputs: ["done": true], target: name)
    }
}

let testPlaybook = """
    name: demo
    version: 1
    description: test
    trigger: {source: [aws.guardduty]}
    incident:
      key: "{{ detail.id }}"
      title: "{{ detail.type }}"
    steps:
      - id: record
        action: test.count
        with: {target: "{{ detail.id }}"}
    """

/// A guardduty finding as an EventBridge event.
func findingJSON(id: String, updatedAt: String = "2026-03-01T10:00:00Z") -> String {
    #"{"version":"0","id":"\#(id)","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"111122223333","time":"\#(updatedAt)","region":"us-east-1","resources":[],"detail":{"id":"\#(id)","type":"Recon:EC2/PortProbeUnprotectedPort","severity":5,"updatedAt":"\#(updatedAt)","resource":{"resourceType":"Instance","instanceDetails":{"instanceId":"i-\#(id)"}}}}"#
}

/// An engine on a fresh journal, the shared receipt queue with its handlers, and
/// (optionally) the HTTP intake on a loopback port.
final class ServerHarness: Sendable {
    let dir: TempDir
    let journal: SQLiteJournal
    let engine: Engine
    let metrics = ServerMetrics()
    let receipts = ReceiptQueue(limit: 256)
    let batcher: IntakeBatcher
    let action: CountingAction
    /// The handler pool, unless the test runs its own (`handlers: false`).
    let handlers: Task<Void, any Error>?
    let server: Task<Void, any Error>?
    let port: Int
    let client: HTTPClient
    let logs = LogLines()

    static let apiKey = "test-api-key-0123456789"
    static let hmacKey = "test-hmac-secret-abcdef"

    /// `intakeDelay`: each journal write of received findings first waits this long (a
    /// slow disk), telling `intakeWrites` when it starts. `target`: resources shared with
    /// other harnesses (see `CountingAction`).
    init(
        listen: Bool = true, handlers runHandlers: Bool = true, intakeDelay: Duration? = nil, intakeWrites: LogLines? = nil, target: SharedTarget? = nil,
        configure: (inout IntakeServerConfiguration) -> Void = { _ in }
    ) async throws {
        action = CountingAction(target: target)
        dir = try TempDir("server", removeOnDeinit: true)
        try dir.write("Playbooks/p.yaml", testPlaybook)
        // Declares the action `test.count` (the engine runs CountingAction for it).
        try dir.write(
            "Integrations/test.yaml",
            """
            name: test
            actions:
              count:
                inputs: {target: {required: true}}
                request: {method: POST, url: "http://127.0.0.1:9/{{ inputs.target }}"}
            """)
        let config = ConfigLoader(actions: .builtIn).load([dir.path + "/Playbooks", dir.path + "/Integrations"])
        #expect(config.isValid, "\(config.errors.map(\.description))")
        let journal = try SQLiteJournal(directory: DataDirectory(dir.path + "/data"))
        self.journal = journal
        let metrics = self.metrics
        let base: any Journal = intakeDelay.map { SlowIntakeJournal(base: journal, delay: $0, started: intakeWrites) } ?? journal
        engine = Engine(
            config: config, actions: CoreActions.all.merging(["test.count": action]) { $1 }, journal: MetricsJournal(base, metrics: metrics),
            evidence: journal.evidence, secrets: SecretStore(environment: [:]), actor: "cordon/test", index: try await IncidentIndex.load(from: journal))
        batcher = IntakeBatcher(engine: engine)
        if runHandlers {
            handlers = Task { [receipts, engine] in try await QueueRunner.handle(receipts, engine: engine, concurrency: 4) }
        } else {
            handlers = nil
        }
        client = HTTPClient.shared
        if listen {
            var configuration = IntakeServerConfiguration(
                host: "127.0.0.1", port: 0, maxBody: 64 << 10,
                authenticator: RequestAuthenticator(apiKeys: [Self.apiKey], hmacSecrets: [Self.hmacKey], apiKeyHeader: "X-EventBridge-Key"))
            configure(&configuration)
            let intake = IntakeServer(
                configuration: configuration, engine: engine, batcher: batcher, receipts: receipts, metrics: metrics,
                logger: CordonLog.logger("test", sink: { [logs] line in logs.append(line) }))
            let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
            server = Task { try await intake.run(onRunning: { continuation.yield($0) }) }
            var bound = 0
            for await p in ports {
                bound = p
                break
            }
            port = bound
        } else {
            server = nil
            port = 0
        }
    }

    func stop() async {
        server?.cancel()
        _ = await server?.result
        await receipts.close()
        _ = await handlers?.result
        try? await journal.close()
    }

    var base: String { "http://127.0.0.1:\(port)" }

    /// POSTs `body` with the given headers; returns status and body text. `timeout` counts
    /// from the call, time waiting for one of the client's connections included.
    func post(_ path: String, _ body: [UInt8], headers: [(String, String)], timeout: TimeAmount = .seconds(30)) async throws -> (Int, String) {
        var request = HTTPClientRequest(url: base + path)
        request.method = .POST
        for (k, v) in headers { request.headers.add(name: k, value: v) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await client.execute(request, timeout: timeout)
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        return (Int(response.status.code), text)
    }

    /// GETs `path`; `/metrics` with the API key as a bearer token, as Prometheus sends one.
    func get(_ path: String, authorized: Bool = true) async throws -> (Int, String) {
        var request = HTTPClientRequest(url: base + path)
        if authorized && path == "/metrics" { request.headers.add(name: "Authorization", value: "Bearer \(Self.apiKey)") }
        let response = try await client.execute(request, timeout: .seconds(30))
        return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 4 << 20)))
    }

    func signed(_ body: String, time: Date = Date()) -> [(String, String)] {
        [("Cordon-Signature", RequestAuthenticator.sign(body: Array(body.utf8), secret: Self.hmacKey, time: time)), ("Content-Type", "application/json")]
    }

    /// Records in the journal, read from the SQLite file itself.
    func count(_ kind: RecordKind? = nil) throws -> Int {
        if let kind { return try countRecords(where: "kind = ?", [kind.rawValue]) }
        return try countRecords(where: "1", [])
    }

    /// Steps journaled as succeeded because their effect was already in place.
    func alreadyDone() throws -> Int {
        try countRecords(where: "kind = ? AND json_extract(CAST(canonical AS TEXT), '$.data.already_done') = 1", [RecordKind.stepSucceeded.rawValue])
    }

    private func countRecords(where condition: String, _ arguments: StatementArguments) throws -> Int {
        let queue = try DatabaseQueue(path: dir.path + "/data/journal.sqlite", configuration: { var c = Configuration(); c.readonly = true; c.busyMode = .timeout(30); return c }())
        return try queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM records WHERE \(condition)", arguments: arguments) ?? 0 }
    }

    /// Waits (bounded) until `condition` holds.
    func eventually(_ timeout: Duration = .seconds(20), _ condition: () throws -> Bool) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return try condition()
    }
}

/// A journal whose writes of received findings are slow.
struct SlowIntakeJournal: ForwardingJournal {
    let base: any Journal
    let delay: Duration
    let started: LogLines?
    var wrapped: any Journal { base }

    func append(_ records: [NewRecord]) async throws -> [JournalRecord] {
        if records.contains(where: { $0.kind == RecordKind.findingReceived }) {
            started?.append("\(records.count)")
            try? await Task.sleep(for: delay)
        }
        return try await base.append(records)
    }
}

/// Lines logged by a component under test.
final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

/// Runs a command to completion off the pool; throws with its output when it fails.
func run(_ executable: String, _ arguments: [String]) async throws {
    try await offPool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let captured = try Spawn.capture(process)
        if captured.status != 0 || captured.timedOut {
            throw TestFailure("\(executable) \(arguments.joined(separator: " ")) failed: \(captured.stderrText)")
        }
    }
}
