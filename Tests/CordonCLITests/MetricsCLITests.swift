import CordonCore
import CordonTestSupport
import Foundation
import Testing

/// `GET /metrics` of `cordon run`: protected by a token, and its incident gauges agree with
/// `cordon incidents` after incidents open, complete, are approved (from another process)
/// and are closed (from another process).
@Suite(.serialized) struct MetricsCLITests {
    static let playbook = """
        name: gauged
        version: 1
        description: High-severity findings wait for approval; the others complete at once.
        trigger: {source: [aws.guardduty]}
        incident: {key: "{{ detail.id }}"}
        steps:
          - id: notify
            action: webhook.send
            with: {text: "finding {{ detail.id }}"}
            approval: {when: {detail: {severity: [{numeric: [">=", 5]}]}}, timeout: 1h, on_timeout: skip}
            retry: {attempts: 1}
        """

    /// `cordon_incidents{state}` and `cordon_approvals_pending` as scraped.
    static func gauges(_ metrics: String) -> (states: [String: Int], pending: Int) {
        var states: [String: Int] = [:]
        var pending = 0
        for line in metrics.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            // Gauges are written as floating-point numbers (`1.0`); a count is a whole one.
            guard parts.count == 2, let number = Double(parts[1]), let value = Int(exactly: number) else { continue }
            if parts[0].hasPrefix("cordon_incidents{"), let range = parts[0].range(of: #"state=""#) {
                states[String(parts[0][range.upperBound...].prefix { $0 != "\"" }), default: 0] += value
            } else if parts[0] == "cordon_approvals_pending" {
                pending = value
            }
        }
        return (states.filter { $0.value > 0 }, pending)
    }

    @Test func incidentGaugesAgreeWithCordonIncidentsAndNeedAToken() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-metrics-\(UUID().uuidString)")
        let queue = root.appendingPathComponent("queue"), data = root.appendingPathComponent("data").path
        let playbooks = root.appendingPathComponent("Playbooks").path
        try FileManager.default.createDirectory(at: queue.appendingPathComponent("incoming"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: playbooks, withIntermediateDirectories: true)
        try Self.playbook.write(toFile: playbooks + "/p.yaml", atomically: true, encoding: .utf8)
        let receiver = try RecordingReceiver()
        defer {
            receiver.stop()
            try? FileManager.default.removeItem(at: root)
        }
        let env = ["WEBHOOK_URL": receiver.url, "WEBHOOK_SIGNING_SECRET": "s", "TEST_API_KEY": "api-key-1", "TEST_METRICS_TOKEN": "metrics-token-1"]
        let runner = try ListenCLITests.Runner(
            ["--queue-dir", queue.path, "--data-dir", data, "--playbooks", playbooks, "--listen", "127.0.0.1:0", "--api-key-secret", "TEST_API_KEY",
             "--metrics-token-secret", "TEST_METRICS_TOKEN", "--poll-interval", "100ms"],
            environment: env)
        let port = try #require(try await runner.port("http://127.0.0.1:"), "\(runner.text)")
        let metricsURL = "http://127.0.0.1:\(port)/metrics"
        #expect(try await ListenCLITests.curl([metricsURL]).0 == 401)
        #expect(try await ListenCLITests.curl([metricsURL, "-H", "Authorization: Bearer nope"]).0 == 401)

        func drop(_ id: String, severity: Int) throws {
            let text = #"{"version":"0","id":"\#(id)","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"1","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":[],"detail":{"id":"\#(id)","type":"X","severity":\#(severity),"updatedAt":"2026-03-01T10:00:00Z"}}"#
            try text.write(to: queue.appendingPathComponent(".\(id).tmp"), atomically: true, encoding: .utf8)
            try FileManager.default.moveItem(at: queue.appendingPathComponent(".\(id).tmp"), to: queue.appendingPathComponent("incoming/\(id).json"))
        }
        /// `cordon incidents` by state and pending approvals.
        func listed() async throws -> (states: [String: Int], pending: Int, ids: [String: String]) {
            let list = try await CLI.run(["incidents", "--data-dir", data, "--output", "json"])
            let incidents = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]] ?? []
            var states: [String: Int] = [:]
            var ids: [String: String] = [:]
            for i in incidents {
                states[i["state"] as? String ?? "?", default: 0] += 1
                ids[i["key"] as? String ?? "?"] = i["id"] as? String
            }
            return (states, incidents.filter { $0["status"] as? String == "awaiting-approval" }.count, ids)
        }
        /// Waits until the scraped gauges agree with the listing and are `expected`.
        func agree(_ expected: [String: Int], pending: Int, _ what: String) async throws -> [String: String] {
            var last = ""
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                let (status, text) = try await ListenCLITests.curl([metricsURL, "-H", "Authorization: Bearer metrics-token-1"])
                #expect(status == 200)
                let scraped = Self.gauges(text)
                let listing = try await listed()
                last = "scraped \(scraped), listed \(listing.states) pending \(listing.pending)"
                if scraped.states == listing.states && scraped.pending == listing.pending && scraped.states == expected && scraped.pending == pending {
                    return listing.ids
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            Issue.record("after \(what): \(last); expected \(expected), pending \(pending)")
            return [:]
        }

        try drop("f-high", severity: 8)
        try drop("f-low", severity: 2)
        let ids = try await agree(["open": 1, "contained": 1], pending: 1, "opening and completing")
        let high = try #require(ids["f-high"]), low = try #require(ids["f-low"])
        let approve = try await CLI.run(["approve", high, "notify", "--by", "lead", "--data-dir", data, "--playbooks", playbooks], environment: env)
        #expect(approve.status == 0, "\(approve.stderr)")
        _ = try await agree(["contained": 2], pending: 0, "approving from another process")
        let close = try await CLI.run(["close", low, "--by", "lead", "--data-dir", data])
        #expect(close.status == 0, "\(close.stderr)")
        _ = try await agree(["contained": 1, "closed": 1], pending: 0, "closing from another process")
        #expect(await runner.stop() == 0)
        #expect(receiver.requests.count == 2)
    }
}
