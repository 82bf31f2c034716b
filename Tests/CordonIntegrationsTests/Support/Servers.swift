import CordonCore
import CordonTestSupport
import Foundation
import Synchronization

@testable import CordonIntegrations

/// The receivers, started once per test process.
enum Receivers {
    static let webhookSecret = "whsec-test-signing-key-0123456789"
    static let pagerDutyKey = "R0UT1NGKEY0123456789abcdef012345"
    static let opsgenieKey = "og-api-key-1b2c3d4e-5f60"

    private static let servers = Mutex<[String: PythonServer]>([:])

    static func start(_ name: String, _ environment: [String: String]) throws -> PythonServer {
        try servers.withLock { all in
            if let s = all[name] { return s }
            let s = try PythonServer(name: name, script: ReceiverScript.source, environment: environment)
            all[name] = s
            return s
        }
    }

    static var environment: [String: String] {
        ["RECEIVER_WEBHOOK_SECRET": webhookSecret, "RECEIVER_PD_KEY": pagerDutyKey, "RECEIVER_OPSGENIE_KEY": opsgenieKey]
    }

    /// Plain HTTP on 127.0.0.1.
    static func http() async throws -> PythonServer { try await offPool { try start("receiver", environment) } }

    /// HTTPS with a self-signed certificate (made by openssl), which Cordon must refuse.
    static func selfSignedHTTPS() async throws -> PythonServer {
        try await offPool {
            let cert = try SelfSigned.make()
            var env = environment
            env["RECEIVER_TLS_CERT"] = cert.cert
            env["RECEIVER_TLS_KEY"] = cert.key
            return try start("receiver-tls", env)
        }
    }

    /// A fresh receiver (own counters), for tests that count deliveries.
    static func fresh() async throws -> PythonServer {
        try await offPool { try PythonServer(name: "receiver", script: ReceiverScript.source, environment: environment) }
    }

    /// What a receiver saw.
    static func log(_ server: PythonServer) async throws -> JSONValue {
        let r = try await HTTPTransport.shared.send(
            method: "GET", url: "http://127.0.0.1:\(server.port)/_requests", headers: [], body: nil, timeout: .seconds(5), describe: "receiver log")
        return try JSONParser.parse(r.body)
    }
}

/// A self-signed certificate for localhost and 127.0.0.1, made once with openssl.
enum SelfSigned {
    private static let made = Mutex<(cert: String, key: String)?>(nil)

    static func make() throws -> (cert: String, key: String) {
        try made.withLock { cached in
            if let cached { return cached }
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-cert-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let cert = dir.appendingPathComponent("cert.pem").path, key = dir.appendingPathComponent("key.pem").path
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try Spawn.run(p)
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw TestFailure("openssl req failed (\(p.terminationStatus))") }
            cached = (cert, key)
            return (cert, key)
        }
    }
}

/// A port nothing listens on.
func closedPort() throws -> Int {
    // Bound, then let go when this returns: free now, though a server started later may take it.
    try ReservedClosedPort().port
}

/// A loopback port bound but never listening, for as long as this lives: a connection to
/// it is refused, and no server started meanwhile by another test can take it.
final class ReservedClosedPort: Sendable {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { ptr in
            ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else {
            close(fd)
            throw TestFailure("cannot bind")
        }
        port = Int(UInt16(bigEndian: addr.sin_port))
    }

    deinit { close(fd) }
}

/// Evidence kept in memory, redacting like the journal's store.
final class MemoryEvidence: EvidenceSink, Sendable {
    let items = Mutex<[String: [UInt8]]>([:])
    let secrets: SecretStore?
    init(secrets: SecretStore? = nil) { self.secrets = secrets }

    func store(_ bytes: [UInt8], name: String, mediaType: String) throws -> JSONValue {
        let b = secrets?.redact(bytes) ?? bytes
        let hash = String(b.count) + "-" + String(items.withLock { $0.count })
        items.withLock { $0[hash] = b }
        return ["name": .string(name), "sha256": .string(hash), "size": .number(JSONNumber(b.count)), "media_type": .string(mediaType)]
    }

    func load(_ sha256: String) throws -> [UInt8] {
        guard let b = items.withLock({ $0[sha256] }) else { throw TestFailure("no evidence \(sha256)") }
        return b
    }

    var all: [[UInt8]] { items.withLock { Array($0.values) } }
}

/// The incident as integration templates see it.
let sampleIncident: JSONValue = [
    "id": "inc-0123456789ab", "key": "i-0abc", "title": "Backdoor:EC2/C&CActivity.B!DNS on i-0abc", "severity": 8,
    "playbook": "guardduty-ec2-quarantine", "status": "running", "opened_at": "2026-03-01T10:00:00Z", "findings": ["f-1"],
    "account": "111122223333", "region": "us-east-1",
    "steps": [["id": "evidence", "action": "aws.ec2.capture_instance", "status": "succeeded"], ["id": "isolate", "action": "aws.ec2.isolate_instance", "status": "succeeded"]],
    "rollback": "cordon rollback inc-0123456789ab",
]

/// Loads integration files, the shipped ones with their service hosts pointed at a receiver.
func loadIntegrations(_ files: [String: String]) throws -> LoadedConfig {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-int-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    for (name, text) in files { try text.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8) }
    let loaded = ConfigLoader(actions: .builtIn).load([dir.path])
    guard loaded.isValid else { throw TestFailure("invalid integrations: \(loaded.diagnostics)") }
    return loaded
}

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

func shippedIntegrations(receiver port: Int) throws -> [String: any Action] {
    var files: [String: String] = [:]
    for name in ["slack", "teams", "pagerduty", "opsgenie", "webhook"] {
        var text = try String(contentsOf: packageRoot.appendingPathComponent("Integrations/\(name).yaml"), encoding: .utf8)
        text = text.replacingOccurrences(of: "https://events.pagerduty.com", with: "http://127.0.0.1:\(port)/pagerduty")
        text = text.replacingOccurrences(of: "https://api.opsgenie.com", with: "http://127.0.0.1:\(port)/opsgenie")
        files["\(name).yaml"] = text
    }
    return IntegrationActions.all(try loadIntegrations(files).integrations)
}

func actionRequest(
    _ action: String, _ inputs: JSONObject, secrets: SecretStore, evidence: any EvidenceSink = MemoryEvidence(), key: String = "key-\(UUID().uuidString)",
    incident: JSONValue = sampleIncident
) -> ActionRequest {
    ActionRequest(action: action, inputs: inputs, idempotencyKey: key, incident: incident, evidence: evidence, secrets: secrets)
}

/// Runs an action; the error (or nil).
func outcome(_ action: any Action, _ request: ActionRequest) async -> Result<ActionOutcome, ActionError> {
    do throws(ActionError) { return .success(try await action.run(request)) } catch { return .failure(error) }
}
