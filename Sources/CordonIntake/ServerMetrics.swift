import CordonCore
import CordonEngine
import CoreMetrics
import Foundation
import Metrics
import Prometheus
import Synchronization

/// Counters, gauges and histograms for `GET /metrics`. They are recorded through
/// swift-metrics and exported as Prometheus text (exposition format 0.0.4) by a
/// `PrometheusCollectorRegistry` that belongs to this instance. Updated by the intake
/// sources and by `MetricsJournal`, which sees every record the engine appends; the gauges
/// that describe the engine are set from it at scrape time, by `render`.
public final class ServerMetrics: Sendable {
    /// What the HTTP intake holds at scrape time.
    public struct HTTPGauges: Sendable {
        public var connections: Int
        public var unauthenticatedBodyBytes: Int
        public init(connections: Int, unauthenticatedBodyBytes: Int) {
            self.connections = connections
            self.unauthenticatedBodyBytes = unauthenticatedBodyBytes
        }
    }

    /// Every metric exported, by name, with its HELP text and, for histograms, its buckets.
    enum Family: String, CaseIterable {
        case findings = "cordon_findings_received_total"
        case httpConnections = "cordon_http_connections"
        case httpConnectionsClosed = "cordon_http_connections_closed_total"
        case httpUnauthenticatedBodyBytes = "cordon_http_unauthenticated_body_bytes"
        case sqsMessages = "cordon_sqs_messages_total"
        case playbookMatches = "cordon_playbook_matches_total"
        case incidents = "cordon_incidents"
        case incidentsOpen = "cordon_incidents_open"
        case quarantined = "cordon_quarantined"
        case steps = "cordon_steps_total"
        case stepDuration = "cordon_step_duration_seconds"
        case approvalsPending = "cordon_approvals_pending"
        case journalAppend = "cordon_journal_append_seconds"
        case witnessWrites = "cordon_witness_writes_total"
        case witnessSeq = "cordon_witness_seq"

        var help: String {
            switch self {
            case .findings: "Findings (or rejected requests) by source and outcome."
            case .httpConnections: "HTTP connections open."
            case .httpConnectionsClosed: "HTTP connections the intake closed: refused (--max-connections), timed_out (--request-timeout)."
            case .httpUnauthenticatedBodyBytes: "Bytes of request bodies held before their signature is checked (--unauthenticated-body-budget)."
            case .sqsMessages: "SQS messages by outcome."
            case .playbookMatches: "Findings matched, by playbook."
            case .incidents: "Incidents by playbook and state (open: steps running or waiting; contained: steps finished; closed)."
            case .incidentsOpen: "Incidents whose steps are running or waiting, by playbook."
            case .quarantined: "Findings and incidents quarantined after crashing the runner twice in a row."
            case .steps: "Steps finished, by action and outcome (succeeded, failed, skipped, planned)."
            case .stepDuration: "Step duration from the first intent to the result, by action."
            case .approvalsPending: "Steps waiting for an approval."
            case .journalAppend: "Journal append latency (until durable)."
            case .witnessWrites: "Checkpoint heads sent to each witness (--anchor), by outcome (succeeded, failed: retried)."
            case .witnessSeq: "The newest checkpoint seq each witness has taken."
            }
        }

        /// Upper bounds in seconds.
        var buckets: [Double] {
            switch self {
            case .stepDuration: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
            case .journalAppend: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
            default: []
            }
        }
    }

    /// The outcomes of `connection(_:)`, each exported (at zero until it happens) whenever
    /// the HTTP gauges are.
    static let connectionOutcomes = ["refused", "timed_out"]

    /// The metrics that the intake and the journal update, made on first use for each set
    /// of label values, and what `findingCounts` and the step durations need besides.
    struct State: Sendable {
        struct FindingKey: Hashable, Sendable {
            var source: String
            var outcome: String
        }
        struct StepKey: Hashable, Sendable {
            var action: String
            var outcome: String
        }
        /// The registry's counters cannot be read back: `findingCounts` is kept here too.
        var findingCounts: [FindingKey: Int] = [:]
        var findings: [FindingKey: CoreMetrics.Counter] = [:]
        var matches: [String: CoreMetrics.Counter] = [:]  // playbook
        var steps: [StepKey: CoreMetrics.Counter] = [:]
        var stepDurations: [String: CoreMetrics.Timer] = [:]  // action
        /// The first intent of each step in progress (incident and step id): when and which action.
        var stepStarts: [String: (Date, String)] = [:]
        var sqsMessages: [String: CoreMetrics.Counter] = [:]  // outcome
        var connections: [String: CoreMetrics.Counter] = [:]  // outcome
        var witnessWrites: [StepKey: CoreMetrics.Counter] = [:]  // witness, outcome
        var witnessSeqs: [String: Meter] = [:]  // witness
    }

    /// The gauges `render` sets from what the engine and the HTTP intake hold.
    struct ScrapeGauges: Sendable {
        struct Playbook: Sendable {
            var byState: [IncidentState: Meter]
            var open: Meter
        }
        var playbooks: [String: Playbook] = [:]
        var http: (connections: Meter, unauthenticatedBodyBytes: Meter)?
    }

    /// The exporter, this instance's own: several runners and servers in one process (the
    /// tests) keep separate counts, and the global `MetricsSystem` is left alone.
    private let registry: PrometheusCollectorRegistry
    private let factory: RegistryMetricsFactory
    private let appendLatency: CoreMetrics.Timer
    private let quarantined: Meter
    private let approvalsPending: Meter
    private let state = Mutex(State())
    /// Also held while rendering, so that one scrape's gauges are not set under another's.
    private let scrape = Mutex(ScrapeGauges())

    public init() {
        let registry = PrometheusCollectorRegistry()
        let factory = RegistryMetricsFactory(
            registry: registry,
            families: Dictionary(uniqueKeysWithValues: Family.allCases.map { ($0.rawValue, .init(help: $0.help, buckets: $0.buckets)) }))
        self.registry = registry
        self.factory = factory
        appendLatency = CoreMetrics.Timer(label: Family.journalAppend.rawValue, factory: factory)
        quarantined = Meter(label: Family.quarantined.rawValue, factory: factory)
        approvalsPending = Meter(label: Family.approvalsPending.rawValue, factory: factory)
    }

    private func counter(_ family: Family, _ labels: [(String, String)]) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: family.rawValue, dimensions: labels, factory: factory)
    }

    private func meter(_ family: Family, _ labels: [(String, String)] = []) -> Meter {
        Meter(label: family.rawValue, dimensions: labels, factory: factory)
    }

    /// A finding (or a rejected request) from `source` (`http`, `sns`, `sqs`, `queue`):
    /// `accepted`, `duplicate`, `unauthorized`, `too_large`, `busy` (the budget of
    /// unauthenticated bodies is full), `malformed`, `error`.
    public func finding(source: String, outcome: String, count: Int = 1) {
        let count = max(0, count)  // a Prometheus counter never goes down
        let key = State.FindingKey(source: source, outcome: outcome)
        let counter = state.withLock { s in
            s.findingCounts[key, default: 0] += count
            return s.findings.value(key) { self.counter(.findings, [("source", source), ("outcome", outcome)]) }
        }
        counter.increment(by: count)
    }

    /// Findings so far by source and outcome (`cordon run --output json` prints them at the end).
    public var findingCounts: [String: [String: Int]] {
        state.withLock { s in
            var out: [String: [String: Int]] = [:]
            for (key, count) in s.findingCounts { out[key.source, default: [:]][key.outcome] = count }
            return out
        }
    }

    /// An HTTP connection closed by the intake's guard: `refused` (--max-connections),
    /// `timed_out` (--request-timeout).
    public func connection(_ outcome: String) {
        connectionCounter(outcome).increment()
    }

    private func connectionCounter(_ outcome: String) -> CoreMetrics.Counter {
        state.withLock { s in s.connections.value(outcome) { self.counter(.httpConnectionsClosed, [("outcome", outcome)]) } }
    }

    /// A checkpoint head sent to a witness: `succeeded`, or `failed` (it is retried).
    public func witness(_ witness: String, seq: Int64, succeeded: Bool) {
        let outcome = succeeded ? "succeeded" : "failed"
        let (counter, gauge) = state.withLock { s in
            (
                s.witnessWrites.value(State.StepKey(action: witness, outcome: outcome)) { self.counter(.witnessWrites, [("witness", witness), ("outcome", outcome)]) },
                succeeded ? s.witnessSeqs.value(witness) { Meter(label: Family.witnessSeq.rawValue, dimensions: [("witness", witness)], factory: self.factory) } : nil
            )
        }
        counter.increment()
        gauge?.set(Double(seq))
    }

    /// An SQS message: `deleted`, `undecodable`, `error`.
    public func sqsMessage(_ outcome: String, count: Int = 1) {
        let counter = state.withLock { s in s.sqsMessages.value(outcome) { self.counter(.sqsMessages, [("outcome", outcome)]) } }
        counter.increment(by: max(0, count))
    }

    /// `records` were appended (or posted, with no `latency` of their own): counts the
    /// matches and the finished steps, and times each step from its first intent.
    func appended(_ records: [JournalRecord], latency: Duration?) {
        if let latency { appendLatency.record(duration: latency) }
        state.withLock { s in
            for record in records {
                switch record.kind {
                case RecordKind.findingReceived:
                    for name in record.data["matched"]?.arrayValue ?? [] {
                        guard let name = name.stringValue else { continue }
                        s.matches.value(name) { self.counter(.playbookMatches, [("playbook", name)]) }.increment()
                    }
                case RecordKind.stepIntent:
                    let key = (record.incident ?? "") + "\u{0}" + (record.data["step"]?.stringValue ?? "")
                    if s.stepStarts[key] == nil {
                        s.stepStarts[key] = (Timestamp.parse(record.time) ?? Date(), record.data["action"]?.stringValue ?? "unknown")
                    }
                case RecordKind.stepSucceeded, RecordKind.stepFailed, RecordKind.stepSkipped, RecordKind.stepPlanned:
                    // A failed attempt that will be retried is not a result yet.
                    if record.kind == RecordKind.stepFailed && record.data["will_retry_in"] != nil { continue }
                    let action = record.data["action"]?.stringValue ?? "unknown"
                    let outcome = String(record.kind.rawValue.dropFirst("step.".count))
                    let stepKey = State.StepKey(action: action, outcome: outcome)
                    s.steps.value(stepKey) { self.counter(.steps, [("action", action), ("outcome", outcome)]) }.increment()
                    let key = (record.incident ?? "") + "\u{0}" + (record.data["step"]?.stringValue ?? "")
                    if let (start, _) = s.stepStarts.removeValue(forKey: key) {
                        let end = Timestamp.parse(record.time) ?? Date()
                        let timer = s.stepDurations.value(action) {
                            CoreMetrics.Timer(label: Family.stepDuration.rawValue, dimensions: [("action", action)], factory: self.factory)
                        }
                        timer.recordSeconds(max(0, end.timeIntervalSince(start)))
                    }
                default: break
                }
            }
        }
    }

    /// The exposition; `incidents` (by playbook and state, the approvals pending, what is
    /// quarantined) is read from the engine at scrape time, and so is `http`, which only the
    /// HTTP intake has.
    public func render(incidents: IncidentIndex.Counts, http: HTTPGauges? = nil) -> String {
        if http != nil {
            for outcome in Self.connectionOutcomes { _ = connectionCounter(outcome) }
        }
        return scrape.withLock { gauges in
            for (playbook, states) in incidents.byPlaybook {
                let playbookGauges = gauges.playbooks.value(playbook) {
                    ScrapeGauges.Playbook(
                        byState: Dictionary(uniqueKeysWithValues: IncidentState.allCases.map {
                            ($0, meter(.incidents, [("playbook", playbook), ("state", $0.rawValue)]))
                        }),
                        open: meter(.incidentsOpen, [("playbook", playbook)]))
                }
                for (incidentState, gauge) in playbookGauges.byState { gauge.set(states[incidentState] ?? 0) }
                playbookGauges.open.set(states[.open] ?? 0)
            }
            // A playbook the engine no longer counts incidents for leaves the exposition.
            for (playbook, playbookGauges) in gauges.playbooks where incidents.byPlaybook[playbook] == nil {
                playbookGauges.byState.values.forEach { $0.destroy() }
                playbookGauges.open.destroy()
                gauges.playbooks[playbook] = nil
            }
            quarantined.set(incidents.quarantined)
            approvalsPending.set(incidents.approvalsPending)
            if let http {
                let httpGauges = gauges.http ?? (meter(.httpConnections), meter(.httpUnauthenticatedBodyBytes))
                gauges.http = httpGauges
                httpGauges.connections.set(http.connections)
                httpGauges.unauthenticatedBodyBytes.set(http.unauthenticatedBodyBytes)
            }
            return registry.emitToString()
        }
    }
}

extension Dictionary {
    /// The value for `key`, made by `make` and kept the first time.
    fileprivate mutating func value(_ key: Key, orMake make: () -> Value) -> Value {
        if let value = self[key] { return value }
        let value = make()
        self[key] = value
        return value
    }
}
