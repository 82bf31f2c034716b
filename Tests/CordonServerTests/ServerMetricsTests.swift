import CordonCore
import CordonEngine
import Foundation
import Testing

@testable import CordonIntake

/// `ServerMetrics` on its own: the exposition its registry writes, what each family says
/// and holds, and that two instances in one process count apart.
@Suite struct ServerMetricsTests {
    /// One scrape, checked as Prometheus reads it: every sample belongs to a family whose
    /// `# TYPE` came before it, and the lines of a family are not interleaved with another's.
    struct Exposition {
        var types: [String: String] = [:]
        var help: [String: String] = [:]
        /// By the sample's name with its labels as written (`name{a="b"}`).
        var samples: [String: Double] = [:]

        init(_ text: String) throws {
            var finished: Set<String> = []
            var current: String?
            func enter(_ family: String) throws {
                guard family != current else { return }
                if let current { finished.insert(current) }
                try #require(!finished.contains(family), "the lines of \(family) are split: \(text)")
                current = family
            }
            for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
                let words = line.split(separator: " ", maxSplits: 3).map(String.init)
                if line.hasPrefix("# HELP ") {
                    try enter(words[2])
                    help[words[2]] = words.count > 3 ? words[3] : ""
                } else if line.hasPrefix("# TYPE ") {
                    try enter(words[2])
                    types[words[2]] = words[3]
                } else {
                    let sample = line.split(separator: " ").map(String.init)
                    try #require(sample.count == 2, "not a sample: \(line)")
                    let value = try #require(Double(sample[1]), "not a number: \(line)")
                    let name = String(sample[0].prefix { $0 != "{" })
                    var family = name
                    for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
                        let base = String(name.dropLast(suffix.count))
                        if types[base] == "histogram" { family = base }
                    }
                    try #require(types[family] != nil, "no TYPE before \(line)")
                    try enter(family)
                    samples[sample[0]] = value
                }
            }
            #expect(text.hasSuffix("\n"))
        }

        /// The `le` bounds of a histogram series, in order, and the count in each.
        func buckets(_ name: String, _ labels: String = "") -> [(String, Double)] {
            samples.compactMap { key, value -> (String, Double)? in
                let prefix = name + "_bucket{" + (labels.isEmpty ? "" : labels + ",") + #"le=""#
                guard key.hasPrefix(prefix) else { return nil }
                return (String(key.dropFirst(prefix.count).dropLast(2)), value)
            }
            .sorted { (Double($0.0) ?? .infinity) < (Double($1.0) ?? .infinity) }
        }
    }

    static func record(_ kind: RecordKind, incident: String = "inc-1", _ data: JSONValue, at seconds: Double) -> JournalRecord {
        JournalRecord(
            unwritten: NewRecord(incident: incident, kind: kind, actor: "test", data: data),
            now: Date(timeIntervalSince1970: 1_800_000_000 + seconds))
    }

    @Test("every family is declared with its type and help, and the exposition is well formed")
    func families() throws {
        let metrics = ServerMetrics()
        metrics.finding(source: "http", outcome: "accepted", count: 3)
        metrics.connection("refused")
        metrics.sqsMessage("deleted", count: 2)
        metrics.witness("file:/w", seq: 7, succeeded: false)
        metrics.witness("file:/w", seq: 7, succeeded: true)
        metrics.appended(
            [
                Self.record(.findingReceived, ["matched": ["demo"]], at: 0),
                Self.record(.stepIntent, ["step": "notify", "action": "webhook.send"], at: 0),
                Self.record(.stepSucceeded, ["step": "notify", "action": "webhook.send"], at: 2),
            ], latency: .milliseconds(3))
        var counts = IncidentIndex.Counts()
        counts.byPlaybook["demo"] = [.open: 2, .closed: 1]
        counts.approvalsPending = 1
        let e = try Exposition(metrics.render(incidents: counts, http: .init(connections: 4, unauthenticatedBodyBytes: 512)))
        for family in ServerMetrics.Family.allCases {
            let type = family.buckets.isEmpty ? (family.rawValue.hasSuffix("_total") ? "counter" : "gauge") : "histogram"
            #expect(e.types[family.rawValue] == type, "\(family.rawValue)")
            #expect(e.help[family.rawValue] == family.help, "\(family.rawValue)")
        }
        #expect(e.samples[#"cordon_findings_received_total{source="http",outcome="accepted"}"#] == 3)
        #expect(e.samples[#"cordon_witness_writes_total{witness="file:/w",outcome="failed"}"#] == 1)
        #expect(e.samples[#"cordon_witness_seq{witness="file:/w"}"#] == 7)
        #expect(e.samples[#"cordon_http_connections_closed_total{outcome="refused"}"#] == 1)
        #expect(e.samples[#"cordon_http_connections_closed_total{outcome="timed_out"}"#] == 0)
        #expect(e.samples["cordon_http_connections"] == 4)
        #expect(e.samples["cordon_http_unauthenticated_body_bytes"] == 512)
        #expect(e.samples[#"cordon_sqs_messages_total{outcome="deleted"}"#] == 2)
        #expect(e.samples[#"cordon_playbook_matches_total{playbook="demo"}"#] == 1)
        #expect(e.samples[#"cordon_incidents{playbook="demo",state="open"}"#] == 2)
        #expect(e.samples[#"cordon_incidents{playbook="demo",state="contained"}"#] == 0)
        #expect(e.samples[#"cordon_incidents{playbook="demo",state="closed"}"#] == 1)
        #expect(e.samples[#"cordon_incidents_open{playbook="demo"}"#] == 2)
        #expect(e.samples["cordon_quarantined"] == 0)
        #expect(e.samples["cordon_approvals_pending"] == 1)
        #expect(e.samples[#"cordon_steps_total{action="webhook.send",outcome="succeeded"}"#] == 1)

        let steps = e.buckets("cordon_step_duration_seconds", #"action="webhook.send""#)
        #expect(steps.map(\.0) == ["0.01", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "30.0", "60.0", "300.0", "+Inf"])
        #expect(steps.map(\.1) == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
        #expect(e.samples[#"cordon_step_duration_seconds_sum{action="webhook.send"}"#] == 2)
        #expect(e.samples[#"cordon_step_duration_seconds_count{action="webhook.send"}"#] == 1)
        let appends = e.buckets("cordon_journal_append_seconds")
        #expect(appends.map(\.0) == ["0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "+Inf"])
        #expect(appends.map(\.1) == [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
        #expect(e.samples["cordon_journal_append_seconds_sum"] == 0.003)
    }

    @Test("a retried failure is not a result; a label value is escaped")
    func retriesAndEscaping() throws {
        let metrics = ServerMetrics()
        metrics.appended(
            [
                Self.record(.stepIntent, ["step": "s", "action": #"a"b\c"#], at: 0),
                Self.record(.stepFailed, ["step": "s", "action": #"a"b\c"#, "will_retry_in": 1], at: 1),
                Self.record(.stepIntent, ["step": "s", "action": #"a"b\c"#], at: 2),
                Self.record(.stepFailed, ["step": "s", "action": #"a"b\c"#], at: 5),
            ], latency: nil)
        let e = try Exposition(metrics.render(incidents: IncidentIndex.Counts()))
        #expect(e.samples[#"cordon_steps_total{action="a\"b\\c",outcome="failed"}"#] == 1)
        #expect(e.samples[#"cordon_step_duration_seconds_sum{action="a\"b\\c"}"#] == 5, "timed from the first intent")
        #expect(e.samples["cordon_journal_append_seconds_count"] == 0, "posted records are not timed")
        #expect(e.types["cordon_http_connections"] == nil, "no HTTP intake, no HTTP gauges")
    }

    @Test("two instances count apart, and findingCounts reads back what was counted")
    func instancesAreIsolated() throws {
        let first = ServerMetrics(), second = ServerMetrics()
        first.finding(source: "sqs", outcome: "accepted", count: 2)
        first.finding(source: "sqs", outcome: "duplicate")
        second.finding(source: "queue", outcome: "accepted")
        #expect(first.findingCounts == ["sqs": ["accepted": 2, "duplicate": 1]])
        #expect(second.findingCounts == ["queue": ["accepted": 1]])
        let text = second.render(incidents: IncidentIndex.Counts())
        #expect(text.contains(#"cordon_findings_received_total{source="queue",outcome="accepted"} 1"# + "\n"))
        #expect(!text.contains(#"source="sqs""#))
    }

    @Test("a playbook that no longer has incidents leaves the incident gauges")
    func vanishedPlaybook() throws {
        let metrics = ServerMetrics()
        var counts = IncidentIndex.Counts()
        counts.byPlaybook = ["a": [.open: 1], "b": [.contained: 1]]
        #expect(try Exposition(metrics.render(incidents: counts)).samples[#"cordon_incidents_open{playbook="b"}"#] == 0)
        counts.byPlaybook["b"] = nil
        let e = try Exposition(metrics.render(incidents: counts))
        #expect(e.samples[#"cordon_incidents_open{playbook="a"}"#] == 1)
        #expect(!e.samples.keys.contains { $0.contains(#"playbook="b""#) })
    }
}
