import CordonCore
import CordonJournal
import CordonTestSupport
import Foundation
import Synchronization
import Testing

/// `cordon run --listen` end to end: the binary, a real port, curl as the client.
@Suite(.serialized) struct ListenCLITests {
    /// Runs curl off the cooperative pool; returns the HTTP status and the body.
    static func curl(_ arguments: [String]) async throws -> (Int, String) {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                do {
                    let p = Process()
                    p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
                    p.arguments = ["-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20"] + arguments
                    let text = String(decoding: try Spawn.capture(p, timeout: 60).stdout, as: UTF8.self)
                    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
                    continuation.resume(returning: (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n")))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// A `cordon run` process whose stderr is collected.
    final class Runner {
        let process: Process
        let stderr = Collected()

        final class Collected: Sendable {
            private let text = Mutex<String>("")
            func append(_ more: String) { text.withLock { $0 += more } }
            var all: String { text.withLock { $0 } }
        }

        init(_ arguments: [String], environment extra: [String: String] = [:], directory: URL? = nil) throws {
            process = Process()
            process.executableURL = CLI.executable(for: extra)
            process.arguments = ["run"] + arguments
            if let directory { process.currentDirectoryURL = directory }
            var environment = ProcessInfo.processInfo.environment
            for (k, v) in extra { environment[k] = v }
            process.environment = environment
            process.standardOutput = FileHandle.nullDevice
            let err = Spawn.pipe()
            process.standardError = err
            try Spawn.run(process)
            let handle = err.fileHandleForReading
            Thread.detachNewThread { [stderr] in
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    stderr.append(String(decoding: chunk, as: UTF8.self))
                }
            }
        }

        var text: String { stderr.all }

        /// The port of "cordon: listening on SCHEME://HOST:PORT" once it is printed.
        func port(_ prefix: String, seconds: Double = 30) async throws -> Int? {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if let range = text.range(of: "listening on " + prefix) { return Int(text[range.upperBound...].prefix { $0.isNumber }) }
                if !process.isRunning { return nil }
                try await Task.sleep(for: .milliseconds(50))
            }
            return nil
        }

        /// SIGTERM, then the exit status (a runner that does not stop within two minutes
        /// is killed and the test fails).
        func stop(sourceLocation: Testing.SourceLocation = #_sourceLocation) async -> Int32 {
            process.terminate()
            await CLI.waitForExit(process, sourceLocation: sourceLocation)
            return process.terminationStatus
        }
    }

    /// Runs a program to completion off the cooperative pool; its status and stderr.
    static func exec(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, stderr: String) {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                do {
                    let p = Process()
                    p.executableURL = URL(fileURLWithPath: executable)
                    p.arguments = arguments
                    let captured = try Spawn.capture(p)
                    continuation.resume(returning: (captured.status, String(decoding: captured.stderr, as: UTF8.self)))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    static func finding(_ id: String) -> String {
        #"{"version":"0","id":"\#(id)","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"1","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":[],"detail":{"id":"f-\#(id)","type":"Recon:EC2/PortProbeUnprotectedPort","severity":2,"updatedAt":"2026-03-01T10:00:00Z"}}"#
    }

    @Test func acceptsAuthenticatedFindingsOverHTTPAndStopsCleanly() async throws {
        let s = try RunCLITests.Setup()
        let runner = try Runner(
            [
                "--listen", "127.0.0.1:0", "--api-key-secret", "CORDON_TEST_KEY", "--data-dir", s.data, "--playbooks", s.playbooks,
                "--integrations", s.root.appendingPathComponent("Integrations").path,
            ], environment: ["CORDON_TEST_RECORDER_FILE": s.recorder, "CORDON_TEST_KEY": "k-123456789"])
        // The bound port is on stderr: "cordon: listening on http://127.0.0.1:PORT".
        let bound = try #require(try await runner.port("http://127.0.0.1:"), "no listening line: \(runner.text)")
        // Loopback: no warning about clear text.
        #expect(!runner.text.contains("without TLS"), "\(runner.text)")
        let url = "http://127.0.0.1:\(bound)"
        let finding = #"{"version":"0","id":"http-1","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"1","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":[],"detail":{"id":"f-http-1","type":"Recon:EC2/PortProbeUnprotectedPort","severity":2,"updatedAt":"2026-03-01T10:00:00Z"}}"#
        let (status, body) = try await Self.curl([url + "/v1/findings", "-H", "X-Cordon-Api-Key: k-123456789", "--data-binary", finding])
        #expect(status == 202, "\(body)")
        #expect(body.contains("http-1"))
        let (unauthorized, _) = try await Self.curl([url + "/v1/findings", "-H", "X-Cordon-Api-Key: wrong", "--data-binary", finding])
        #expect(unauthorized == 401)
        #expect(try await Self.curl([url + "/healthz"]).0 == 200)
        #expect(try await Self.curl([url + "/readyz"]).0 == 200)
        try await s.waitForCompleted(1)
        // Metrics need a token: an API key does.
        #expect(try await Self.curl([url + "/metrics"]).0 == 401)
        #expect(try await Self.curl([url + "/metrics", "-H", "Authorization: Bearer wrong"]).0 == 401)
        let (_, metrics) = try await Self.curl([url + "/metrics", "-H", "Authorization: Bearer k-123456789"])
        #expect(metrics.contains(#"cordon_findings_received_total{source="http",outcome="accepted"} 1"#), "\(metrics)")
        #expect(metrics.contains(#"cordon_findings_received_total{source="http",outcome="unauthorized"} 1"#))
        #expect(await runner.stop() == 0, "\(runner.text)")
        #expect(runner.text.contains("stopped; journal signed"), "\(runner.text)")
        #expect(s.effectCount() == 1)
        let verify = try await CLI.run(["journal", "verify", "--data-dir", s.data])
        #expect(verify.status == 0, "\(verify.stdout)")
    }

    @Test func refusesToListenWithoutCredentials() async throws {
        let r = try await CLI.run(["run", "--listen", "127.0.0.1:0"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("--listen needs credentials"))
        let none = try await CLI.run(["run"])
        #expect(none.status == 2)
        #expect(none.stderr.contains("at least one source"))
    }

    /// With --tls-cert/--tls-key the port speaks HTTPS only: a client trusting the
    /// certificate gets 202, plain HTTP gets nowhere, and no warning is printed.
    @Test func servesHTTPSWithTheGivenCertificate() async throws {
        let s = try RunCLITests.Setup()
        let cert = s.root.appendingPathComponent("tls-cert.pem").path
        let key = s.root.appendingPathComponent("tls-key.pem").path
        let openssl = try await Self.exec(
            "/usr/bin/openssl",
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ])
        #expect(openssl.status == 0, "\(openssl.stderr)")
        let runner = try Runner(
            [
                "--listen", "0.0.0.0:0", "--tls-cert", cert, "--tls-key", key, "--api-key-secret", "CORDON_TEST_KEY", "--data-dir", s.data,
                "--playbooks", s.playbooks, "--integrations", s.root.appendingPathComponent("Integrations").path,
            ], environment: ["CORDON_TEST_RECORDER_FILE": s.recorder, "CORDON_TEST_KEY": "k-tls-123456789"])
        let port = try #require(try await runner.port("https://0.0.0.0:"), "no listening line: \(runner.text)")
        // Off loopback but with TLS: no warning.
        #expect(!runner.text.contains("without TLS"), "\(runner.text)")
        let (status, body) = try await Self.curl([
            "--cacert", cert, "https://127.0.0.1:\(port)/v1/findings", "-H", "X-Cordon-Api-Key: k-tls-123456789", "--data-binary", Self.finding("tls-1"),
        ])
        #expect(status == 202, "\(body)")
        #expect(body.contains("tls-1"))
        // A client that does not trust the certificate refuses it; plain HTTP is not answered.
        #expect(try await Self.curl(["https://127.0.0.1:\(port)/healthz"]).0 == 0)
        let (plain, plainBody) = try await Self.curl([
            "http://127.0.0.1:\(port)/v1/findings", "-H", "X-Cordon-Api-Key: k-tls-123456789", "--data-binary", Self.finding("plain-1"),
        ])
        #expect(plain == 0, "plain HTTP on the TLS port answered \(plain): \(plainBody)")
        #expect(try await Self.curl(["--cacert", cert, "https://127.0.0.1:\(port)/healthz"]).0 == 200)
        try await s.waitForCompleted(1)
        #expect(await runner.stop() == 0, "\(runner.text)")
        #expect(s.effectCount() == 1)
        let verify = try await CLI.run(["journal", "verify", "--data-dir", s.data])
        #expect(verify.status == 0, "\(verify.stdout)")
    }

    @Test func warnsWhenListeningOffLoopbackWithoutTLS() async throws {
        let s = try RunCLITests.Setup()
        let runner = try Runner(
            [
                "--listen", "0.0.0.0:0", "--api-key-secret", "CORDON_TEST_KEY", "--data-dir", s.data, "--playbooks", s.playbooks,
                "--integrations", s.root.appendingPathComponent("Integrations").path,
            ], environment: ["CORDON_TEST_RECORDER_FILE": s.recorder, "CORDON_TEST_KEY": "k-123456789"])
        #expect(try await runner.port("http://0.0.0.0:") != nil, "\(runner.text)")
        #expect(runner.text.contains("cordon: warning: listening on 0.0.0.0, not a loopback address, without TLS"), "\(runner.text)")
        #expect(await runner.stop() == 0, "\(runner.text)")
    }

    /// SIGTERM with a step still running: the sources stop, the step is cancelled after
    /// --shutdown-timeout, the journal is signed, exit 0; the next start resumes the step.
    @Test func boundsTheShutdownAndResumesWhatWasCutShort() async throws {
        let s = try RunCLITests.Setup()
        try """
            name: slow
            version: 1
            description: a step that outlasts the shutdown timeout
            trigger: {source: [aws.guardduty]}
            incident: {key: "{{ detail.id }}"}
            steps:
              - id: wait
                action: core.wait
                with: {duration: "{{ detail.wait }}"}
              - id: effect
                action: test.record
                with: {target: "{{ detail.id }}"}
            """.write(toFile: s.playbooks + "/p.yaml", atomically: true, encoding: .utf8)
        func slowFinding(_ wait: String) -> String {
            #"{"version":"0","id":"slow-1","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"1","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":[],"detail":{"id":"f-slow","wait":"\#(wait)","type":"Recon:EC2/PortProbeUnprotectedPort","severity":2,"updatedAt":"2026-03-01T10:00:00Z"}}"#
        }
        let arguments = [
            "--listen", "127.0.0.1:0", "--queue-dir", s.queue.path, "--api-key-secret", "CORDON_TEST_KEY", "--shutdown-timeout", "2s", "--data-dir",
            s.data, "--playbooks", s.playbooks, "--integrations", s.root.appendingPathComponent("Integrations").path,
        ]
        let environment = ["CORDON_TEST_RECORDER_FILE": s.recorder, "CORDON_TEST_KEY": "k-123456789"]
        let runner = try Runner(arguments, environment: environment)
        let port = try #require(try await runner.port("http://127.0.0.1:"), "\(runner.text)")
        let (status, body) = try await Self.curl([
            "http://127.0.0.1:\(port)/v1/findings", "-H", "X-Cordon-Api-Key: k-123456789", "--data-binary", slowFinding("10m"),
        ])
        #expect(status == 202, "\(body)")
        try await Task.sleep(for: .seconds(1))
        let started = Date()
        #expect(await runner.stop() == 0, "\(runner.text)")
        #expect(Date().timeIntervalSince(started) < 20)
        #expect(runner.text.contains("in-flight work did not finish within 2s; cancelling it"), "\(runner.text)")
        #expect(runner.text.contains("stopped; journal signed"), "\(runner.text)")
        #expect(s.effectCount() == 0)
        let verify = try await CLI.run(["journal", "verify", "--data-dir", s.data])
        #expect(verify.status == 0, "\(verify.stdout)")
        // The next start resumes the incident.
        let again = try Runner(arguments, environment: environment)
        #expect(try await again.port("http://127.0.0.1:") != nil, "\(again.text)")
        #expect(again.text.contains("resuming 1 unfinished incident(s)"), "\(again.text)")
        // The resumed step runs again beside new work; the second stop cuts it short too.
        try await Task.sleep(for: .seconds(1))
        #expect(await again.stop() == 0, "\(again.text)")
        #expect(again.text.contains("in-flight work did not finish within 2s; cancelling it"), "\(again.text)")
        // Neither stop is journaled as the step's failure: an intent each, no result, and
        // the incident still running for the next start.
        let journal = try SQLiteJournal(directory: DataDirectory(s.data), readOnly: true)
        let records = try await journal.records(from: 1, limit: 1_000)
        #expect(records.filter { $0.kind == RecordKind.stepIntent && $0.data["step"] == "wait" }.count == 2, "\(records.map(\.kind))")
        #expect(!records.contains { $0.kind == RecordKind.stepFailed || $0.kind == RecordKind.incidentCompleted }, "\(records.map(\.kind))")
        #expect(try await CLI.run(["journal", "verify", "--data-dir", s.data]).status == 0)
    }
}
