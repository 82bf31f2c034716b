import ArgumentParser
import CordonAWS
import CordonCloud
import CordonCore
import CordonEngine
import CordonIntake
import CordonJournal
import CordonServer
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

// `cordon run` assembled: the journal and engine, the intake sources, and one service
// group that runs them and stops them in order.
extension RunCommand {
    /// The runner's parts, once opened.
    struct Parts {
        let journal: SQLiteJournal
        let engine: Engine
        let metrics: ServerMetrics
        let receipts: ReceiptQueue
        let handlers: Int
        let queue: QueueDirectory?
        let server: IntakeServer?
        let poller: SQSPoller?
        /// The SQS poller's own AWS client, shut down when the runner stops.
        let sqsCloud: AWSCloud?
    }

    func run(_ loaded: LoadedConfig, _ session: CloudSession, _ shutdownRequests: AsyncStream<Void>) async throws {
        // One runner per data directory: it runs every incident, and other commands
        // journal decisions and closes for it to take in.
        let lock = try data.lock(
            role: "run",
            advice: "one runner per data directory: stop it first, or give this one a --data-dir of its own (runners may share a queue directory)")
        defer { withExtendedLifetime(lock) {} }
        let metrics = ServerMetrics()
        let (journal, engine) = try await openEngine(
            loaded, data, cloud: session, actionsInFlight: concurrency, retention: .live(findings: dedupeWindow),
            // The runner follows the journal on its own schedule (JournalFollowerService).
            followsBetweenSteps: false, wrapJournal: { MetricsJournal($0, metrics: metrics) }, logger: Self.log,
            witnessEvents: { metrics.witness($0.witness, seq: $0.seq, succeeded: $0.succeeded) })
        let (crashes, lastCrash) = try await beginRun(engine, data)
        // What replaying the journal allocated and freed goes back to the system now.
        Allocator.releaseFreeMemory()
        journal.startCheckpointTimer()
        let parts = try await openSources(loaded, journal: journal, engine: engine, metrics: metrics)
        let sources = [
            parts.queue.map { "\($0.incoming.path) (\($0.watching ? "inotify" : "polling"))" }, listen.map { "http\(tlsCert != nil ? "s" : "")://\($0)" },
            sqsUrl,
        ].compactMap { $0 }
        Self.log.notice("running \(loaded.playbooks.count) playbook(s) on \(sources.joined(separator: ", ")), journal \(data.directory.journal.path), memory allocator \(Allocator.name)")
        let failed = try await runServices(parts, lastCrash: lastCrash, shutdownRequests: shutdownRequests)
        try? await parts.sqsCloud?.shutdown()
        do {
            try await journal.close()
        } catch {
            throw CordonError(.runFailed, "cannot sign the journal at shutdown: \(error)")
        }
        if output == .json { print(JSONWriter.pretty(await Self.summary(engine, metrics, failed: failed))) }
        crashes.end()
        if failed {
            // A source or the handlers stopped on an error (e.g. the journal could not
            // commit): what is durable resumes on the next start, but this run failed.
            throw CordonError(.runFailed, "stopped after an error; journal signed up to what is durable")
        }
        Self.log.notice("stopped; journal signed")
    }

    /// Opens the sources the options name: the queue directory, the HTTP intake, the SQS
    /// poller. A source that cannot be opened is a usage error (exit 2).
    func openSources(_ loaded: LoadedConfig, journal: SQLiteJournal, engine: Engine, metrics: ServerMetrics) async throws -> Parts {
        var queue: QueueDirectory?
        if let queueDir {
            do {
                queue = try QueueDirectory(root: URL(fileURLWithPath: queueDir), create: createQueueDir)
            } catch {
                throw CordonError(.invalidInput, "\(error)")
            }
        }
        // As many waiting as QueueRunner keeps for its handlers (the benchmark's figures).
        let handlers = QueueRunner.handlers(actionsInFlight: concurrency)
        let receipts = ReceiptQueue(limit: QueueRunner.backlog(handlers: handlers))
        let batcher = IntakeBatcher(engine: engine)
        let server = try makeServer(loaded, engine: engine, batcher: batcher, receipts: receipts, metrics: metrics)
        var poller: SQSPoller?
        var sqsCloud: AWSCloud?
        if let sqsUrl {
            // The shared HTTP client, with a deadline that outlasts the long poll.
            let cloud = AWSCloud(
                options: AWSCloudOptions(environment: ProcessInfo.processInfo.environment), http: .shared(requestTimeout: .seconds(Int64(sqsWait + 15))))
            sqsCloud = cloud
            do {
                let sqs = try await AWSSQS.forQueue(sqsUrl, cloud: cloud)
                poller = SQSPoller(
                    sqs: sqs, queueURL: sqsUrl, batcher: batcher, receipts: receipts, metrics: metrics, waitSeconds: sqsWait,
                    visibilityTimeout: sqsVisibilityTimeout, logger: Self.log)
            } catch {
                try? await cloud.shutdown()
                throw CordonError(.usage, "--sqs-url: \(error)")
            }
        }
        return Parts(
            journal: journal, engine: engine, metrics: metrics, receipts: receipts, handlers: handlers, queue: queue, server: server, poller: poller,
            sqsCloud: sqsCloud)
    }

    /// The HTTP intake of `--listen`, if given.
    func makeServer(_ loaded: LoadedConfig, engine: Engine, batcher: IntakeBatcher, receipts: ReceiptQueue, metrics: ServerMetrics) throws -> IntakeServer? {
        guard let listen, let (host, port) = Self.hostPort(listen) else { return nil }
        let secrets = SecretStore()
        for name in apiKeySecret + hmacSecret + metricsTokenSecret where (secrets.value(name) ?? "").isEmpty {
            throw CordonError(.usage, "secret \(name) is not set (environment variable \(name) or a file named by \(name)_FILE)")
        }
        let authenticator = RequestAuthenticator(
            apiKeys: apiKeySecret.compactMap { secrets.value($0) }, hmacSecrets: hmacSecret.compactMap { secrets.value($0) }, apiKeyHeader: apiKeyHeader,
            replayWindow: Double(replayWindow.duration.components.seconds))
        var pem: String?
        if let snsCertFile {
            guard let text = try? String(contentsOfFile: snsCertFile, encoding: .utf8) else {
                throw CordonError(.usage, "--sns-cert-file \(snsCertFile) cannot be read")
            }
            pem = text
        }
        var configuration = IntakeServerConfiguration(
            host: host, port: port, maxBody: maxBody, authenticator: authenticator, snsTopics: Set(snsTopic), snsConfirmHosts: Set(snsConfirmHost),
            snsCertificatePEM: pem, tlsCertificatePath: tlsCert, tlsKeyPath: tlsKey)
        configuration.metricsTokens = metricsTokenSecret.compactMap { secrets.value($0) }
        configuration.metricsUnauthenticated = metricsUnauthenticated
        configuration.maxConnections = maxConnections
        configuration.requestTimeout = requestTimeout.duration
        configuration.unauthenticatedBodyBudget = unauthenticatedBodyBudget
        if !configuration.isLoopback && !configuration.usesTLS {
            Self.log.warning("listening on \(host), not a loopback address, without TLS: API keys and findings cross the network in clear text (give --tls-cert and --tls-key, or put a TLS proxy in front)")
        }
        let journalPath = data.directory.journal.path
        let playbookCount = loaded.playbooks.count
        return IntakeServer(
            configuration: configuration, engine: engine, batcher: batcher, receipts: receipts, metrics: metrics,
            readiness: {
                if playbookCount == 0 { return "no playbooks loaded" }
                if !FileManager.default.isWritableFile(atPath: journalPath) { return "journal \(journalPath) is not writable" }
                return nil
            }, logger: Self.log)
    }

    /// Runs the service group until it stops; true when it stopped on an error.
    ///
    /// Resuming what the last runner left and the handler pool come first, then
    /// housekeeping and the sources. Graceful shutdown (SIGTERM, SIGINT) goes through them
    /// in reverse: the sources stop taking work (HTTP stops accepting and answers the
    /// requests in progress, the SQS long poll is abandoned, the queue directory stops
    /// claiming), then the handlers finish what was received and resumed incidents go on,
    /// all within --shutdown-timeout, after which what is left is cancelled (and resumes
    /// from the journal on the next start).
    func runServices(_ parts: Parts, lastCrash: Set<String>, shutdownRequests: AsyncStream<Void>) async throws -> Bool {
        let shutdownTimeout = self.shutdownTimeout
        let cutShort = Atomic<Bool>(false)
        let onCancelled: @Sendable () -> Void = {
            if !cutShort.exchange(true, ordering: .relaxed) {
                RunCommand.log.warning("in-flight work did not finish within \(shutdownTimeout); cancelling it (it resumes on the next start)")
            }
        }
        let services: [ServiceGroupConfiguration.ServiceConfiguration]
        do {
            services = try await self.services(parts, lastCrash: lastCrash, onCancelled: onCancelled)
        } catch {
            try? await parts.sqsCloud?.shutdown()
            try await parts.journal.close()
            throw error
        }
        var configuration = ServiceGroupConfiguration(services: services, logger: Self.servicesLog)
        configuration.maximumGracefulShutdownDuration = shutdownTimeout.duration
        let group = ServiceGroup(configuration: configuration)
        do {
            try await withThrowingDiscardingTaskGroup { tasks in
                // SIGTERM and SIGINT, including one that came while loading, opening the
                // journal or resuming, start the group's graceful shutdown.
                tasks.addTask {
                    for await _ in shutdownRequests {
                        await group.triggerGracefulShutdown()
                        return
                    }
                }
                try await group.run()
                tasks.cancelAll()
            }
            return false
        } catch is CancellationError where cutShort.load(ordering: .relaxed) {
            // The handlers cut short by --shutdown-timeout (said above).
            return false
        } catch {
            Self.log.error("\(error)")
            return true
        }
    }

    /// The runner's services, in the order the group starts them.
    func services(
        _ parts: Parts, lastCrash: Set<String>, onCancelled: @escaping @Sendable () -> Void
    ) async throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        let engine = parts.engine
        func service(_ service: any Service) -> ServiceGroupConfiguration.ServiceConfiguration {
            // A source or the handlers ending on their own (a journal failure) stops the
            // rest gracefully; the error is reported when the group returns.
            .init(service: service, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
        }
        // What the last runner left unfinished is taken up beside new work.
        let unfinished = try await engine.unfinished()
        if !unfinished.isEmpty {
            Self.log.notice(
                "resuming \(unfinished.incidents.count) unfinished incident(s) and \(unfinished.receipts.count) finding(s) received but not handled")
        }
        var services = [
            ServiceGroupConfiguration.ServiceConfiguration(
                service: ResumeService(engine: engine, work: unfinished, oneAtATime: lastCrash, logger: Self.log, onCancelled: onCancelled),
                successTerminationBehavior: .ignore,
                failureTerminationBehavior: .gracefullyShutdownGroup),
            service(HandlerPoolService(receipts: parts.receipts, engine: engine, concurrency: parts.handlers, onCancelled: onCancelled)),
            service(HousekeepingService(engine: engine, queue: parts.queue, logger: Self.log)),
            service(JournalFollowerService(engine: engine, logger: Self.log)),
        ]
        if let queue = parts.queue {
            let metrics = parts.metrics
            let runner = QueueRunner(
                queue: queue, engine: engine, concurrency: concurrency, batchSize: batch, pollInterval: pollInterval.duration,
                logger: Self.log, onFile: { _, count in metrics.finding(source: "queue", outcome: "accepted", count: count) })
            services.append(service(QueueIntakeService(runner: runner, receipts: parts.receipts)))
        }
        if let poller = parts.poller { services.append(service(poller)) }
        for publisher in Witnesses.registered {
            // A witness never stops the runner: its failures are retried, logged and counted.
            services.append(.init(service: WitnessService(publisher: publisher), successTerminationBehavior: .ignore, failureTerminationBehavior: .ignore))
        }
        if let server = parts.server {
            let scheme = server.configuration.usesTLS ? "https" : "http"
            let host = server.configuration.host
            do {
                services.append(service(try server.service(onRunning: { port in RunCommand.log.notice("listening on \(scheme)://\(host):\(port)") })))
            } catch {
                throw CordonError(.usage, "--tls-cert/--tls-key: \(error)")
            }
        }
        return services
    }
}
