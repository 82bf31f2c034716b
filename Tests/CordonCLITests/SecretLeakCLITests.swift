import CordonCore
import CordonTestSupport
import Foundation
import Testing

/// Secrets must not reach storage through what is derived from them or echoed back: a
/// runner posts to receivers that answer with their URL, query, headers and body, and
/// steps pass secrets through filters; then every place Cordon writes is searched for
/// every secret and every part of one.
@Suite(.serialized) struct SecretLeakCLITests {
    /// Answers every POST with what it received (path, headers, body): 500 under `/fail/`,
    /// 200 elsewhere.
    static let echo = #"""
        import json, sys, threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace")
                echoed = json.dumps({"you_called": self.path, "headers": dict(self.headers), "you_sent": body,
                                     "note": "invalid token in " + self.path})
                self.send_response(500 if "/fail/" in self.path else 200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(echoed.encode())
            def log_message(self, *args):
                pass
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        print(server.server_address[1], flush=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sys.stdin.read()
        server.shutdown()
        """#

    static let playbook = """
        name: leaky
        version: 1
        description: Steps that pass secrets through filters, and receivers that echo them.
        trigger: {source: [aws.guardduty]}
        incident: {key: "{{ detail.id }}"}
        steps:
          - id: derived
            action: core.log
            with: {message: "upper {{ secret.API_TOKEN | upper }} lower {{ secret.API_TOKEN | lower }} json {{ secret.QUOTED | json }} list {{ vars.tokens | json | upper }}"}
          - id: slack
            action: slack.post_message
            with: {text: "finding {{ detail.id }} {{ secret.API_TOKEN | lower }}", resource: "i-0abc", actions_taken: "isolated"}
            retry: {attempts: 1}
            on_error: continue
          - id: webhook
            action: webhook.send
            with: {text: "token {{ secret.API_TOKEN | upper }}", details: {quoted: "{{ secret.QUOTED | upper }}"}}
            retry: {attempts: 1}
        vars:
          tokens: ["{{ secret.API_TOKEN }}", "x"]
        """

    @Test func noSecretNorAnyPartOfOneIsStoredAnywhere() async throws {
        let echo = try PythonServer(name: "echo", script: Self.echo)
        defer { echo.stop() }
        let s = try RunCLITests.Setup()
        defer { try? FileManager.default.removeItem(at: s.root) }
        // The shipped integrations, and this playbook alone.
        let integrations = s.root.appendingPathComponent("Integrations")
        for name in ["slack.yaml", "webhook.yaml"] {
            try FileManager.default.copyItem(at: CLI.packageRoot.appendingPathComponent("Integrations/\(name)"), to: integrations.appendingPathComponent(name))
        }
        try Self.playbook.write(toFile: s.playbooks + "/p.yaml", atomically: true, encoding: .utf8)

        let slackKey = "AbCdEf123456GhIjKl789012", team = "T0123ABCD", bot = "B0456EFGH"
        let hookToken = "Zq9Xw8Vu7Ts6Rr5Qp4On3Ml2", queryToken = "sEcReTqUeRyVaLuE77"
        let secrets = [
            "SLACK_WEBHOOK_URL": "\(echo.endpoint)/services/\(team)/\(bot)/\(slackKey)",
            "WEBHOOK_URL": "\(echo.endpoint)/fail/hooks/\(hookToken)?token=\(queryToken)&format=json",
            "WEBHOOK_SIGNING_SECRET": "signing-Secret-abc123",
            "API_TOKEN": "tok_live_aBcD1234eFgH5678",
            "QUOTED": #"pa"ss'wo\rd-12345"#,
        ]
        // Everything that must appear nowhere: the values, what filters make of them, the
        // parts of the URLs that carry the credential.
        var forbidden: [String] = Array(secrets.values) + [slackKey, team, bot, hookToken, queryToken]
        forbidden += ["TOK_LIVE_ABCD1234EFGH5678", "tok_live_abcd1234efgh5678", #"pa\"ss'wo\\rd-12345"#, #"PA\"SS'WO\\RD-12345"#, #"PA"SS'WO\RD-12345"#]
        forbidden += [#"TOK_LIVE_ABCD1234EFGH5678\"#]

        let runner = try ListenCLITests.Runner(
            ["--queue-dir", s.queue.path, "--data-dir", s.data, "--playbooks", s.playbooks, "--integrations", integrations.path, "--listen", "127.0.0.1:0",
             "--api-key-secret", "TEST_API_KEY", "--poll-interval", "100ms"],
            environment: secrets.merging(["TEST_API_KEY": "metrics-and-api-key-1"]) { $1 })
        let port = try #require(try await runner.port("http://127.0.0.1:"), "\(runner.text)")
        try s.drop(1)
        // The incident runs its three steps; the webhook's fails (500).
        var shown = ""
        for _ in 0..<200 {
            shown = try await CLI.run(["incidents", "--data-dir", s.data, "--output", "json"]).stdout
            if shown.contains("\"contained\"") || shown.contains("\"failed\"") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let incidents = try JSONSerialization.jsonObject(with: Data(shown.utf8)) as? [[String: Any]] ?? []
        let incident = try #require(incidents.first?["id"] as? String, "\(shown) \(runner.text)")
        let (_, metrics) = try await ListenCLITests.curl(["http://127.0.0.1:\(port)/metrics", "-H", "Authorization: Bearer metrics-and-api-key-1"])
        #expect(await runner.stop() == 0, "\(runner.text)")

        // What a user reads: show, the four timelines, the bundle.
        var texts: [(String, String)] = [("runner log", runner.text), ("metrics", metrics)]
        for output in ["text", "json"] {
            texts.append(("show \(output)", try await CLI.run(["show", incident, "--data-dir", s.data, "--output", output]).stdout))
        }
        for format in ["json", "csv", "md", "html"] {
            texts.append(("timeline \(format)", try await CLI.run(["timeline", incident, "--data-dir", s.data, "--format", format]).stdout))
        }
        let bundle = s.root.appendingPathComponent("bundle").path
        let exported = try await CLI.run(["export", incident, "--out", bundle, "--data-dir", s.data])
        #expect(exported.status == 0, "\(exported.stderr)")
        // What is stored: every file of the data directory (journal, its WAL, evidence)
        // and of the bundle, as bytes.
        for root in [s.data, bundle] {
            let files = FileManager.default.enumerator(atPath: root)?.compactMap { $0 as? String } ?? []
            for file in files {
                var isDirectory: ObjCBool = false
                let path = root + "/" + file
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                    let data = FileManager.default.contents(atPath: path)
                else { continue }
                texts.append((path, String(decoding: data, as: UTF8.self)))
            }
        }
        #expect(texts.contains { $0.0.hasSuffix("journal.sqlite") || $0.0.hasSuffix("journal.sqlite-wal") })
        #expect(texts.count > 12, "\(texts.map(\.0))")

        for (place, text) in texts {
            for secret in forbidden where text.contains(secret) {
                Issue.record("\(place) holds \(secret)")
            }
            // An echoed signature (v1=64 hex digits) is derived from the signing key.
            #expect(text.range(of: #"v1=[0-9a-f]{64}"#, options: .regularExpression) == nil, "\(place) holds a signature")
        }
        // The receivers' answers were stored, redacted — ordinary words and hosts kept.
        let stored = texts.filter { $0.0.contains("/evidence/") || $0.0.hasPrefix("show") }.map(\.1).joined()
        #expect(stored.contains("services/«secret:SLACK_WEBHOOK_URL»"), "the echoed path, redacted part by part")
        #expect(stored.contains("invalid token in"))
        let all = texts.map(\.1).joined()
        #expect(all.contains("«secret:API_TOKEN»"))
        #expect(all.contains("HTTP 500"), "the failing webhook's answer is in the journal")
    }
}
