import CordonCore
import CordonJournal
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
                    let out = Pipe()
                    p.standardOutput = out
                    p.standardError = FileHandle.nullDevice
                    try p.run()
                    let data = out.fileHandleForReading.readDataToEndOfFile()
                    p.waitUntilExit()
                    let text = String(decoding: data, as: UTF8.self)
                    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
                    continuation.resume(returning: (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n")))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    @Test func acceptsAuthenticatedFindingsOverHTTPAndStopsCleanly() async throws {
        let s = try RunCLITests.Setup()
        let p = Process()
        p.executableURL = CLI.executable
        p.arguments = [
            "run", "--listen", "127.0.0.1:0", "--api-key-secret", "CORDON_TEST_KEY", "--data-dir", s.data, "--playbooks", s.playbooks,
            "--integrations", s.root.appendingPathComponent("Integrations").path,
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["CORDON_TEST_RECORDER_FILE"] = s.recorder
        environment["CORDON_TEST_KEY"] = "k-123456789"
        p.environment = environment
        p.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        p.standardError = err
        try p.run()
        // The bound port is on stderr: "cordon: listening on http://127.0.0.1:PORT".
        let lines = Mutex<String>("")
        let handle = err.fileHandleForReading
        Thread.detachNewThread {
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                lines.withLock { $0 += String(decoding: chunk, as: UTF8.self) }
            }
        }
        var port: Int?
        let deadline = Date().addingTimeInterval(30)
        while port == nil && Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
            let text = lines.withLock { $0 }
            if let range = text.range(of: "listening on http://127.0.0.1:") {
                port = Int(text[range.upperBound...].prefix { $0.isNumber })
            }
        }
        let bound = try #require(port, "no listening line: \(lines.withLock { $0 })")
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
        let (_, metrics) = try await Self.curl([url + "/metrics"])
        #expect(metrics.contains(#"cordon_findings_received_total{source="http",outcome="accepted"} 1"#), "\(metrics)")
        #expect(metrics.contains(#"cordon_findings_received_total{source="http",outcome="unauthorized"} 1"#))
        p.terminate()
        await CLI.waitForExit(p)
        #expect(p.terminationStatus == 0, "\(lines.withLock { $0 })")
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
}
