import ArgumentParser
import CordonAWS
import CordonCloud
import CordonSimulatedCloud
import CordonCore
import CordonEngine
import CordonIntake
import CordonJournal
import CordonServer
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run continuously: take findings from a queue directory, webhooks, SNS or SQS and run the playbooks.",
        discussion: """
            Sources (at least one): --queue-dir, --listen (HTTP: POST /v1/findings, POST /v1/sns, \
            GET /healthz, /readyz, /metrics: a bearer token, an API key or a \
            --metrics-token-secret token), --sqs-url. All feed one pool of handlers (4 × \
            --concurrency, at least 64), which run incidents with at most --concurrency actions \
            called at once; every finding is journaled (durable) before its source is acknowledged \
            (file moved, 202 answered, SQS message deleted).

            --listen HOST:PORT: POST /v1/findings takes any input format Cordon decodes, \
            authenticated by an API key (secret named by --api-key-secret, sent as \
            X-Cordon-Api-Key, Authorization: Bearer, or the header named by --api-key-header) or \
            by an HMAC-SHA256 signature (secret named by --hmac-secret; header \
            Cordon-Signature: t=UNIX,v1=HEX(HMAC(secret, "t.body")), within --replay-window, each \
            signature accepted once). \
            Answers 202 with the finding ids; 401, 413 (--max-body) or 400 journal nothing. \
            An API key is checked before the body is read; a signed request's body, and an SNS \
            message, are held within --unauthenticated-body-budget until verified (503 beyond \
            it). At most --max-connections connections are held; a request must arrive whole \
            within --request-timeout (408 and closed otherwise). \
            POST /v1/sns is an SNS subscription endpoint for the --sns-topic topics.

            --queue-dir DIR: producers write a finding file elsewhere in DIR and rename it into \
            DIR/incoming/ (a rename is atomic). Cordon claims each file by renaming it into \
            DIR/processing/, journals its findings (up to --batch files in one durable commit), \
            then moves it to DIR/done/; a file that cannot be decoded goes to DIR/failed/ with \
            NAME.error.json beside it. The incidents then run, --concurrency actions at a time. Files \
            left in processing/ by a runner that crashed are taken up again. Several runners \
            may share one queue directory (each with its own --data-dir); none processes a \
            file twice. New files are noticed at once (inotify), or within --poll-interval.

            One runner per data directory: it holds DATA/runner.lock, takes in decisions made \
            with `cordon approve` and closes made with `cordon close` within a second, and \
            closes incidents whose playbook's quiet period passed.

            On start, incidents left unfinished by a crash (and findings journaled but not yet \
            handled) are resumed; what was in progress when the last two runs crashed is \
            quarantined instead (see docs/engine.md). SIGTERM or SIGINT stops the sources (no more files claimed, \
            HTTP requests in progress answered, the SQS long poll abandoned), lets the incidents \
            in progress finish (at most --shutdown-timeout; what is cut short resumes on the \
            next start), writes a signed checkpoint and exits 0.
            """)

    @Option(help: ArgumentHelp("The queue directory (it must exist, unless --create-queue-dir).", valueName: "DIR"))
    var queueDir: String?

    @Flag(help: "Create the queue directory (and its parents) when it does not exist.")
    var createQueueDir = false

    @Option(help: ArgumentHelp("Serve the webhook, SNS, health and metrics endpoints on this address.", valueName: "HOST:PORT"))
    var listen: String?

    @Option(help: ArgumentHelp("Largest accepted request body in bytes (413 above).", valueName: "BYTES"))
    var maxBody = 1 << 20

    @Option(help: ArgumentHelp("HTTP connections held at once; more are closed as they arrive.", valueName: "N"))
    var maxConnections = 1024

    @Option(
        help: "Time a request's headers and body have to arrive (for a connection's first request, from its start); then 408 and the connection is closed (default: 30s).",
        transform: { try DurationOption.parse($0, option: "--request-timeout") })
    var requestTimeout = DurationOption("30s")

    @Option(
        help: ArgumentHelp(
            "Bytes that bodies not yet authenticated (signed requests, SNS messages) may hold together; beyond it such requests get 503. API keys are checked before the body is read.",
            valueName: "BYTES"))
    var unauthenticatedBodyBudget = 32 << 20

    @Option(help: ArgumentHelp("Secret (environment variable NAME or file NAME_FILE) holding an accepted API key; repeatable.", valueName: "NAME"))
    var apiKeySecret: [String] = []

    @Option(help: ArgumentHelp("Extra header carrying the API key (as an EventBridge connection sends it).", valueName: "HEADER"))
    var apiKeyHeader: String?

    @Option(help: ArgumentHelp("Secret holding an HMAC-SHA256 key for Cordon-Signature; repeatable.", valueName: "NAME"))
    var hmacSecret: [String] = []

    @Option(help: "How far a signature's timestamp may be from now (default: 5m).", transform: { try DurationOption.parse($0, option: "--replay-window") })
    var replayWindow = DurationOption("5m")

    @Option(help: ArgumentHelp("Secret holding a bearer token that may read GET /metrics (besides the API keys); repeatable.", valueName: "NAME"))
    var metricsTokenSecret: [String] = []

    @Flag(help: "Serve GET /metrics without credentials (only where the network keeps it private).")
    var metricsUnauthenticated = false

    @Option(help: ArgumentHelp("SNS topic whose messages /v1/sns accepts and whose subscription it confirms; repeatable.", valueName: "ARN"))
    var snsTopic: [String] = []

    @Option(help: ArgumentHelp("Verify SNS signatures with this PEM certificate instead of fetching SigningCertURL (tests).", valueName: "FILE"))
    var snsCertFile: String?

    @Option(help: ArgumentHelp("Also follow SubscribeURLs on this host (host or host:port; tests, emulators); repeatable.", valueName: "HOST"))
    var snsConfirmHost: [String] = []

    @Option(help: ArgumentHelp("TLS certificate chain (PEM) for --listen.", valueName: "FILE"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("TLS private key (PEM) for --listen.", valueName: "FILE"))
    var tlsKey: String?

    @Option(help: ArgumentHelp("Long-poll this SQS queue.", valueName: "URL"))
    var sqsUrl: String?

    @Option(help: "Seconds a received SQS message stays invisible to other consumers (extended while in flight).")
    var sqsVisibilityTimeout = 60

    @Option(help: "Seconds each SQS long poll waits (0 to 20).")
    var sqsWait = 20

    @Option(help: "Actions called at once, across incidents (cloud and integration calls in flight); incidents waiting for the journal do not count.")
    var concurrency = 16

    @Option(help: "Files claimed and journaled together in one commit.")
    var batch = 256

    @Option(help: "How often to look at incoming/ when inotify is not available (default: 1s).", transform: { try DurationOption.parse($0, option: "--poll-interval") })
    var pollInterval = DurationOption("1s")

    @Option(
        help: "How long in-flight work may take after SIGTERM/SIGINT before it is cancelled (default: 30s).",
        transform: { try DurationOption.parse($0, option: "--shutdown-timeout") })
    var shutdownTimeout = DurationOption("30s")

    @Option(
        help: ArgumentHelp(
            "Findings whose delivery again is recognised as a duplicate: the last N received. Memory holds these (by a 16-byte digest), the incidents in progress, and 120–200 bytes per finished incident.",
            valueName: "N"))
    var dedupeWindow = IncidentIndex.Retention.defaultWindow

    @OptionGroup var config: ConfigOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var cloud: CloudOptions

    @Flag(help: "Run even when the playbook directory holds no playbook (by default that is an error: a wrong path, or a link not followed).")
    var allowEmpty = false

    @Option(help: "text or json: json prints a summary of the run on standard output when it stops (the log stays on standard error).")
    var output: OutputFormat = .text

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard queueDir != nil || listen != nil || sqsUrl != nil else {
            throw ValidationError("give at least one source: --queue-dir DIR, --listen HOST:PORT or --sqs-url URL")
        }
        if let queueDir, !createQueueDir, !FileManager.default.fileExists(atPath: queueDir) {
            throw ValidationError("--queue-dir: no directory \(queueDir) (create it, or give --create-queue-dir)")
        }
        if let listen, Self.hostPort(listen) == nil { throw ValidationError("--listen: \(listen) is not HOST:PORT such as 127.0.0.1:8080") }
        guard (1...(256 << 20)).contains(maxBody) else { throw ValidationError("--max-body must be 1 to 268435456 (256 MiB)") }
        guard (1...1_000_000).contains(maxConnections) else { throw ValidationError("--max-connections must be 1 to 1000000") }
        guard requestTimeout.duration > .zero else { throw ValidationError("--request-timeout must be longer than 0s") }
        guard unauthenticatedBodyBudget >= maxBody else {
            throw ValidationError("--unauthenticated-body-budget (\(unauthenticatedBodyBudget)) must be at least --max-body (\(maxBody)), or no signed request of the largest size could be read")
        }
        guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
        guard (0...20).contains(sqsWait) else { throw ValidationError("--sqs-wait must be 0 to 20") }
        guard (2...43_200).contains(sqsVisibilityTimeout) else { throw ValidationError("--sqs-visibility-timeout must be 2 to 43200") }
        if listen != nil && apiKeySecret.isEmpty && hmacSecret.isEmpty && snsTopic.isEmpty {
            throw ValidationError("--listen needs credentials: --api-key-secret NAME or --hmac-secret NAME (or --sns-topic ARN for SNS only)")
        }
        guard (1...1024).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 1024") }
        guard (1...10_000).contains(batch) else { throw ValidationError("--batch must be 1 to 10000") }
        guard (1_000...100_000_000).contains(dedupeWindow) else { throw ValidationError("--dedupe-window must be 1000 to 100000000") }
    }

    func run() async throws {
        logging.bootstrap(defaultLevel: .info)
        // Signals first: a SIGTERM or SIGINT during start-up stops cleanly too. The stream
        // keeps a request made before the service group runs; `run` hands it on.
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let (shutdownRequests, requestShutdown) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let signalWatcher = Task {
            for await _ in signals { requestShutdown.yield() }
        }
        defer { signalWatcher.cancel() }
        let loaded = try loadConfiguration(config)
        if loaded.playbooks.isEmpty && !allowEmpty {
            throw CordonError(.notFound, "no playbook found in \(config.playbooks): nothing would run (check the path; give --allow-empty to run without playbooks)")
        }
        try await CloudSession.with(cloud, data) { session in try await run(loaded, session, shutdownRequests) }
    }

    static func hostPort(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }

    /// What `--output json` prints when the runner stops: how it ended, the findings taken
    /// by source and outcome, and the incidents by state.
    static func summary(_ engine: Engine, _ metrics: ServerMetrics, failed: Bool) async -> JSONValue {
        let counts = await engine.counts()
        var states = JSONObject()
        for state in IncidentState.allCases { states[state.rawValue] = .number(JSONNumber(counts.total(state))) }
        var findings = JSONObject()
        for (source, outcomes) in metrics.findingCounts.sorted(by: { $0.key < $1.key }) {
            var o = JSONObject()
            for (outcome, n) in outcomes.sorted(by: { $0.key < $1.key }) { o[outcome] = .number(JSONNumber(n)) }
            findings[source] = .object(o)
        }
        return [
            "stopped": .string(failed ? "after an error" : "cleanly"), "findings": .object(findings), "incidents": .object(states),
            "approvals_pending": .number(JSONNumber(counts.approvalsPending)), "quarantined": .number(JSONNumber(counts.quarantined)),
        ]
    }

    /// The runner's log (after `logging.bootstrap()`).
    static var log: Logger { Logger(label: "cordon.run") }

    /// ServiceLifecycle's own log: its start and stop of each service show at debug.
    static var servicesLog: Logger { LoggingOptions.quiet(Logger(label: "cordon.services")) }
}
