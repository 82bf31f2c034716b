import CordonCore
import CordonEngine
import Foundation
import Synchronization

/// Counters, gauges and histograms for `GET /metrics`, written as Prometheus text
/// (exposition format 0.0.4). Updated by the intake sources and by `MetricsJournal`,
/// which sees every record the engine appends.
public final class ServerMetrics: Sendable {
    struct Histogram: Sendable {
        var buckets: [Double]
        var counts: [Int]
        var sum = 0.0
        var count = 0

        init(buckets: [Double]) {
            self.buckets = buckets
            counts = Array(repeating: 0, count: buckets.count)
        }

        mutating func observe(_ value: Double) {
            for (i, bound) in buckets.enumerated() where value <= bound { counts[i] += 1 }
            sum += value
            count += 1
        }
    }

    struct State: Sendable {
        var findings: [[String]: Int] = [:]  // [source, outcome]
        var matches: [String: Int] = [:]
        var steps: [[String]: Int] = [:]  // [action, outcome]
        var stepDurations: [String: Histogram] = [:]  // action
        var appendLatency = Histogram(buckets: ServerMetrics.latencyBuckets)
        var stepStarts: [String: (Date, String)] = [:]
        var sqsMessages: [String: Int] = [:]
        var connections: [String: Int] = [:]
    }

    /// What the HTTP intake holds at scrape time.
    public struct HTTPGauges: Sendable {
        public var connections: Int
        public var unauthenticatedBodyBytes: Int
        public init(connections: Int, unauthenticatedBodyBytes: Int) {
            self.connections = connections
            self.unauthenticatedBodyBytes = unauthenticatedBodyBytes
        }
    }

    static let latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
    static let stepBuckets = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]

    private let state = Mutex(State())

    public init() {}

    /// A finding (or a rejected request) from `source` (`http`, `sns`, `sqs`, `queue`):
    /// `accepted`, `duplicate`, `unauthorized`, `too_large`, `busy` (the budget of
    /// unauthenticated bodies is full), `malformed`, `error`.
    public func finding(source: String, outcome: String, count: Int = 1) {
        state.withLock { $0.findings[[source, outcome], default: 0] += count }
    }

    /// Findings so far by source and outcome (`cordon run --output json` prints them at the end).
    public var findingCounts: [String: [String: Int]] {
        state.withLock { s in
            var out: [String: [String: Int]] = [:]
            for (key, count) in s.findings where key.count == 2 { out[key[0], default: [:]][key[1]] = count }
            return out
        }
    }

    /// An HTTP connection closed by the intake's guard: `refused` (--max-connections),
    /// `timed_out` (--request-timeout).
    public func connection(_ outcome: String) {
        state.withLock { $0.connections[outcome, default: 0] += 1 }
    }

    /// An SQS message: `deleted`, `undecodable`, `error`.
    public func sqsMessage(_ outcome: String, count: Int = 1) {
        state.withLock { $0.sqsMessages[outcome, default: 0] += count }
    }

    func appended(_ records: [JournalRecord], latency: Double?) {
        state.withLock { s in
            if let latency { s.appendLatency.observe(latency) }
            for record in records {
                switch record.kind {
                case RecordKind.findingReceived:
                    for name in record.data["matched"]?.arrayValue ?? [] {
                        if let name = name.stringValue { s.matches[name, default: 0] += 1 }
                    }
                case RecordKind.stepIntent:
                    let key = (record.incident ?? "") + "\u{0}" + (record.data["step"]?.stringValue ?? "")
                    if s.stepStarts[key] == nil {
                        s.stepStarts[key] = (Timestamp.parse(record.time) ?? Date(), record.data["action"]?.stringValue ?? "unknown")
                    }
                case RecordKind.stepSucceeded, RecordKind.stepFailed, RecordKind.stepSkipped, RecordKind.stepPlanned:
                    let action = record.data["action"]?.stringValue ?? "unknown"
                    let outcome = String(record.kind.rawValue.dropFirst("step.".count))
                    let retrying = record.kind == RecordKind.stepFailed && record.data["will_retry_in"] != nil
                    if !retrying { s.steps[[action, outcome], default: 0] += 1 }
                    let key = (record.incident ?? "") + "\u{0}" + (record.data["step"]?.stringValue ?? "")
                    if !retrying, let (start, _) = s.stepStarts.removeValue(forKey: key) {
                        let end = Timestamp.parse(record.time) ?? Date()
                        s.stepDurations[action, default: Histogram(buckets: Self.stepBuckets)].observe(max(0, end.timeIntervalSince(start)))
                    }
                default: break
                }
            }
        }
    }

    /// The exposition; `incidents` (by playbook and state, the approvals pending, what is
    /// quarantined) is read from the engine at scrape time.
    public func render(incidents: IncidentIndex.Counts, http: HTTPGauges? = nil) -> String {
        let s = state.withLock { $0 }
        var out = ""
        func escape(_ v: String) -> String {
            v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
        }
        func labels(_ pairs: [(String, String)]) -> String {
            pairs.isEmpty ? "" : "{" + pairs.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        func header(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func number(_ v: Double) -> String {
            v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)
        }
        func histogram(_ name: String, _ base: [(String, String)], _ h: Histogram) {
            for (bound, count) in zip(h.buckets, h.counts) {
                out += "\(name)_bucket\(labels(base + [("le", number(bound))])) \(count)\n"
            }
            out += "\(name)_bucket\(labels(base + [("le", "+Inf")])) \(h.count)\n"
            out += "\(name)_sum\(labels(base)) \(h.sum)\n"
            out += "\(name)_count\(labels(base)) \(h.count)\n"
        }
        header("cordon_findings_received_total", "counter", "Findings (or rejected requests) by source and outcome.")
        for (key, v) in s.findings.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            out += "cordon_findings_received_total\(labels([("source", key[0]), ("outcome", key[1])])) \(v)\n"
        }
        if let http {
            header("cordon_http_connections", "gauge", "HTTP connections open.")
            out += "cordon_http_connections \(http.connections)\n"
            header("cordon_http_connections_closed_total", "counter", "HTTP connections the intake closed: refused (--max-connections), timed_out (--request-timeout).")
            for outcome in ["refused", "timed_out"] {
                out += "cordon_http_connections_closed_total\(labels([("outcome", outcome)])) \(s.connections[outcome] ?? 0)\n"
            }
            header("cordon_http_unauthenticated_body_bytes", "gauge", "Bytes of request bodies held before their signature is checked (--unauthenticated-body-budget).")
            out += "cordon_http_unauthenticated_body_bytes \(http.unauthenticatedBodyBytes)\n"
        }
        header("cordon_sqs_messages_total", "counter", "SQS messages by outcome.")
        for (key, v) in s.sqsMessages.sorted(by: { $0.key < $1.key }) {
            out += "cordon_sqs_messages_total\(labels([("outcome", key)])) \(v)\n"
        }
        header("cordon_playbook_matches_total", "counter", "Findings matched, by playbook.")
        for (key, v) in s.matches.sorted(by: { $0.key < $1.key }) {
            out += "cordon_playbook_matches_total\(labels([("playbook", key)])) \(v)\n"
        }
        let byPlaybook = incidents.byPlaybook.sorted(by: { $0.key < $1.key })
        header("cordon_incidents", "gauge", "Incidents by playbook and state (open: steps running or waiting; contained: steps finished; closed).")
        for (playbook, states) in byPlaybook {
            for state in IncidentState.allCases {
                out += "cordon_incidents\(labels([("playbook", playbook), ("state", state.rawValue)])) \(states[state] ?? 0)\n"
            }
        }
        header("cordon_incidents_open", "gauge", "Incidents whose steps are running or waiting, by playbook.")
        for (playbook, states) in byPlaybook {
            out += "cordon_incidents_open\(labels([("playbook", playbook)])) \(states[.open] ?? 0)\n"
        }
        header("cordon_quarantined", "gauge", "Findings and incidents quarantined after crashing the runner twice in a row.")
        out += "cordon_quarantined \(incidents.quarantined)\n"
        header("cordon_steps_total", "counter", "Steps finished, by action and outcome (succeeded, failed, skipped, planned).")
        for (key, v) in s.steps.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            out += "cordon_steps_total\(labels([("action", key[0]), ("outcome", key[1])])) \(v)\n"
        }
        header("cordon_step_duration_seconds", "histogram", "Step duration from the first intent to the result, by action.")
        for (key, h) in s.stepDurations.sorted(by: { $0.key < $1.key }) { histogram("cordon_step_duration_seconds", [("action", key)], h) }
        header("cordon_approvals_pending", "gauge", "Steps waiting for an approval.")
        out += "cordon_approvals_pending \(incidents.approvalsPending)\n"
        header("cordon_journal_append_seconds", "histogram", "Journal append latency (until durable).")
        histogram("cordon_journal_append_seconds", [], s.appendLatency)
        return out
    }
}
