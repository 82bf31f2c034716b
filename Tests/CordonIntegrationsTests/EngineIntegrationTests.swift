import CordonCore
import CordonEngine
import CordonJournal
import CordonTestSupport
import Foundation
import Testing

@testable import CordonIntegrations

/// Integration actions run by the engine into the SQLite journal: secrets never reach
/// the journal, the evidence or an export; Retry-After is honoured; failures end the step
/// with a specific error.
@Suite(.serialized) struct EngineIntegrationTests {
    static let urlSecret = "hook-path-7c1d9e0f5a3b"
    static let headerSecret = "hdr-token-2b8e6a4f9d0c"
    static let bodySecret = "body-secret-5e3a1c7b8f2d"

    static func integration(port: Int) -> String {
        """
        name: hook
        secrets: [HOOK_URL_PART, HOOK_TOKEN, HOOK_BODY_SECRET]
        actions:
          send:
            inputs: {text: {required: true}}
            request:
              method: POST
              url: "http://127.0.0.1:\(port)/echo/{{ secret.HOOK_URL_PART }}"
              headers: {X-Token: "{{ secret.HOOK_TOKEN }}"}
              body: {text: "{{ inputs.text }}", key: "{{ secret.HOOK_BODY_SECRET }}"}
            success: [200]
          call:
            inputs: {path: {required: true}}
            request:
              method: POST
              url: "{{ inputs.path }}"
              body: {}
              timeout: 800ms
            success: [200]
            retry_on: [429, 503]
        """
    }

    static func playbook(_ steps: String) -> String {
        """
        name: demo
        version: 1
        description: test
        trigger: {source: [aws.guardduty]}
        incident:
          key: "{{ detail.resource.instanceDetails.instanceId }}"
          title: "{{ detail.type }}"
        steps:
        \(steps)
        """
    }

    static func finding(_ id: String) -> Finding {
        let text = #"{"version":"0","id":"\#(id)","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"111122223333","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":[],"detail":{"id":"\#(id)","type":"Backdoor:EC2/C&CActivity.B!DNS","severity":8,"updatedAt":"2026-03-01T10:00:00Z","resource":{"resourceType":"Instance","instanceDetails":{"instanceId":"i-\#(id)"}}}}"#
        return FindingDecoder().decode(Array(text.utf8), source: "test").findings[0]
    }

    struct Harness {
        let dir: URL
        let journal: SQLiteJournal
        let engine: Engine
    }

    func harness(steps: String, port: Int) async throws -> Harness {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-eng-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("cfg"), withIntermediateDirectories: true)
        try Self.integration(port: port).write(to: dir.appendingPathComponent("cfg/hook.yaml"), atomically: true, encoding: .utf8)
        try Self.playbook(steps).write(to: dir.appendingPathComponent("cfg/p.yaml"), atomically: true, encoding: .utf8)
        let config = ConfigLoader(actions: .builtIn).load([dir.appendingPathComponent("cfg").path])
        guard config.isValid else { throw TestFailure("\(config.diagnostics)") }
        let secrets = SecretStore(environment: ["HOOK_URL_PART": Self.urlSecret, "HOOK_TOKEN": Self.headerSecret, "HOOK_BODY_SECRET": Self.bodySecret])
        let journal = try SQLiteJournal(directory: DataDirectory(dir.appendingPathComponent("data").path), secrets: secrets)
        let engine = Engine(
            config: config, actions: CoreActions.all.merging(IntegrationActions.all(config.integrations)) { $1 }, journal: journal,
            evidence: journal.evidence, secrets: secrets, actor: "cordon/test", index: try await IncidentIndex.load(from: journal))
        return Harness(dir: dir, journal: journal, engine: engine)
    }

    /// Every file under a directory, as bytes.
    func files(under url: URL) throws -> [(String, Data)] {
        var out: [(String, Data)] = []
        let e = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey])
        while let f = e?.nextObject() as? URL {
            if (try? f.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true { out.append((f.path, try Data(contentsOf: f))) }
        }
        return out
    }

    @Test func secretsInTheURLAHeaderAndTheBodyNeverReachTheJournalEvidenceOrExport() async throws {
        let server = try await Receivers.http()
        let h = try await harness(steps: """
              - id: tell
                action: hook.send
                with: {text: "contained"}
            """, port: server.port)
        let outcome = try await h.engine.process([Self.finding("f1")])
        let incident = try #require(outcome.first?.incidents.first)
        let records = try await h.journal.records(incident: incident)
        let done = try #require(records.first { $0.kind == RecordKind.stepSucceeded })
        // The receiver really got the secrets (the echo comes back redacted)…
        let raw = try await Receivers.log(server)["requests"]?.arrayValue?.last { $0["path"]?.stringValue?.hasPrefix("/echo/") == true }
        #expect(raw?["path"] == .string("/echo/" + Self.urlSecret))
        #expect(raw?["headers"]?["X-Token"] == .string(Self.headerSecret))
        #expect(raw?["body"]?.stringValue?.contains(Self.bodySecret) == true)
        #expect(done.data["outputs"]?["body"]?["headers"]?["X-Token"] == "«secret:HOOK_TOKEN»")
        #expect(done.data["outputs"]?["body"]?["path"] == "/echo/«secret:HOOK_URL_PART»")
        #expect(!done.evidenceHashes.isEmpty)
        let bundle = h.dir.appendingPathComponent("bundle")
        try await EvidenceBundle.export(incident: incident, journal: h.journal, to: bundle)
        try await h.journal.close()
        // …and no byte of the journal database (with its WAL), its evidence or the export holds them.
        let everything = try files(under: h.dir.appendingPathComponent("data")) + files(under: bundle)
        #expect(everything.contains { $0.0.hasSuffix("journal.sqlite") })
        #expect(everything.contains { $0.0.contains("/evidence/") })
        for secret in [Self.urlSecret, Self.headerSecret, Self.bodySecret] {
            for (path, data) in everything {
                #expect(data.range(of: Data(secret.utf8)) == nil, "\(secret) found in \(path)")
            }
        }
    }

    @Test func theEngineWaitsAtLeastRetryAfter() async throws {
        let server = try await Receivers.http()
        let id = UUID().uuidString.prefix(8)
        let h = try await harness(steps: """
              - id: call
                action: hook.call
                with: {path: "http://127.0.0.1:\(server.port)/flaky/\(id)/2/429/1"}
                retry: {attempts: 4, backoff: 1ms, max_backoff: 5ms}
                timeout: 20s
            """, port: server.port)
        let started = ContinuousClock.now
        let outcome = try await h.engine.process([Self.finding("f2")])
        let elapsed = ContinuousClock.now - started
        let incident = try #require(outcome.first?.incidents.first)
        let records = try await h.journal.records(incident: incident)
        #expect(records.contains { $0.kind == RecordKind.stepSucceeded })
        let failed = records.filter { $0.kind == RecordKind.stepFailed }
        let throttled = failed.filter { $0.data["retry_after"] == "1s" }
        #expect(throttled.allSatisfy { $0.data["will_retry_in"] == "1s" })
        // On a loaded CI machine a connection can fail around a request (seen twice in many
        // runs): before it reaches the receiver, or after the receiver answered 429 but
        // before the answer arrived. That is a retry of its own, not a Retry-After wait, and
        // it costs an attempt.
        let other = failed.filter { $0.data["retry_after"] == nil }
        #expect(other.count <= 1, "\(other.map { $0.data["error"]?.stringValue ?? "?" })")
        #expect(other.allSatisfy { $0.data["retryable"] == true })
        #expect(throttled.count == 2 || (throttled.count == 1 && other.count == 1), "throttled \(throttled.count), other \(other.count)")
        #expect(records.filter { $0.kind == RecordKind.stepIntent }.count == failed.count + 1)
        #expect(elapsed >= .seconds(throttled.count), "one Retry-After: 1 wait per 429 seen")
        try await h.journal.close()
    }

    @Test func aRetryAfterBeyondTheStepTimeoutFailsAtOnce() async throws {
        let server = try await Receivers.http()
        let h = try await harness(steps: """
              - id: call
                action: hook.call
                with: {path: "http://127.0.0.1:\(server.port)/status/429/120"}
                retry: {attempts: 5, backoff: 1ms}
                timeout: 5s
            """, port: server.port)
        let started = ContinuousClock.now
        let outcome = try await h.engine.process([Self.finding("f3")])
        #expect(ContinuousClock.now - started < .seconds(30), "no 120 s wait")
        let records = try await h.journal.records(incident: try #require(outcome.first?.incidents.first))
        let failed = try #require(records.last { $0.kind == RecordKind.stepFailed })
        #expect(records.filter { $0.kind == RecordKind.stepIntent }.count == 1)
        #expect(failed.data["will_retry_in"] == nil)
        #expect(failed.data["error"]?.stringValue?.contains("Retry-After: 2m") == true)
        try await h.journal.close()
    }

    @Test func unreachableTLSClientErrorAndTimeoutEachEndTheStepWithASpecificError() async throws {
        let server = try await Receivers.http()
        let tls = try await Receivers.selfSignedHTTPS()
        let closed = try closedPort()
        let h = try await harness(steps: """
              - id: unreachable
                action: hook.call
                with: {path: "http://127.0.0.1:\(closed)/x"}
                retry: {attempts: 2, backoff: 1ms}
                timeout: 10s
                on_error: continue
              - id: tls
                action: hook.call
                with: {path: "https://127.0.0.1:\(tls.port)/x"}
                timeout: 10s
                on_error: continue
              - id: client_error
                action: hook.call
                with: {path: "http://127.0.0.1:\(server.port)/status/403"}
                timeout: 10s
                on_error: continue
              - id: hangs
                action: hook.call
                with: {path: "http://127.0.0.1:\(server.port)/hang"}
                retry: {attempts: 2, backoff: 1ms}
                timeout: 10s
                on_error: continue
            """, port: server.port)
        let started = ContinuousClock.now
        let outcome = try await h.engine.process([Self.finding("f4")])
        #expect(ContinuousClock.now - started < .seconds(60), "nothing hangs")
        let index = await h.engine.index
        let incident = try #require(outcome.first?.incidents.first)
        let steps = try #require(index.incidents[incident]?.steps)
        for id in ["unreachable", "tls", "client_error", "hangs"] { #expect(steps[id]?.status == "failed", "\(id)") }
        #expect(steps["unreachable"]?.attempts == 2)
        #expect(steps["unreachable"]?.error?.hasPrefix("ConnectionRefused: hook.call: POST http://127.0.0.1:\(closed): connection refused") == true)
        #expect(steps["tls"]?.attempts == 1)
        #expect(steps["tls"]?.error?.hasPrefix("TLSError: hook.call: POST https://127.0.0.1:\(tls.port): TLS handshake failed: the server's certificate is not trusted") == true)
        #expect(steps["client_error"]?.attempts == 1)
        #expect(steps["client_error"]?.error?.hasPrefix("HTTP403: hook.call: POST http://127.0.0.1:\(server.port) answered HTTP 403 Forbidden") == true)
        #expect(steps["hangs"]?.attempts == 2)
        #expect(steps["hangs"]?.error?.hasPrefix("RequestTimeout: hook.call: POST http://127.0.0.1:\(server.port): no complete answer within 800ms") == true)
        try await h.journal.close()
    }
}
