import ArgumentParser
import CordonCore
import CordonJournal
import Foundation
import Synchronization

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run continuously: take findings from a queue directory and run the playbooks.",
        discussion: """
            --queue-dir DIR: producers write a finding file elsewhere in DIR and rename it into \
            DIR/incoming/ (a rename is atomic). Cordon claims each file by renaming it into \
            DIR/processing/, journals its findings (up to --batch files in one durable commit), \
            then moves it to DIR/done/; a file that cannot be decoded goes to DIR/failed/ with \
            NAME.error.json beside it. Up to --concurrency incidents then run at once. Files \
            left in processing/ by a runner that crashed are taken up again. Several runners \
            may share one queue directory (each with its own --data-dir); none processes a \
            file twice. New files are noticed at once (inotify), or within --poll-interval.

            On start, incidents left unfinished by a crash (and findings journaled but not yet \
            handled) are resumed. SIGTERM or SIGINT stops claiming files, lets the incidents in \
            progress finish (at most --shutdown-timeout; what is cut short resumes on the next \
            start), writes a signed checkpoint and exits 0.
            """)

    @Option(help: ArgumentHelp("The queue directory.", valueName: "DIR"))
    var queueDir: String

    @Option(help: "Incidents handled at once (their journal writes share group commits).")
    var concurrency = 16

    @Option(help: "Files claimed and journaled together in one commit.")
    var batch = 256

    @Option(help: "How often to look at incoming/ when inotify is not available.")
    var pollInterval: String = "1s"

    @Option(help: "How long in-flight work may take after SIGTERM/SIGINT before it is cancelled.")
    var shutdownTimeout: String = "30s"

    @OptionGroup var config: ConfigOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var cloud: CloudOptions

    func validate() throws {
        guard (1...1024).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 1024") }
        guard (1...10_000).contains(batch) else { throw ValidationError("--batch must be 1 to 10000") }
        guard DurationParser.parse(pollInterval) != nil else { throw ValidationError("--poll-interval: \(pollInterval) is not a duration such as 1s") }
        guard DurationParser.parse(shutdownTimeout) != nil else { throw ValidationError("--shutdown-timeout: \(shutdownTimeout) is not a duration such as 30s") }
    }

    func run() async throws {
        // Signals first: a SIGTERM during start-up stops cleanly too.
        let stopping = StopFlag()
        let signals = [SIGTERM, SIGINT].map { sig -> DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig)
            source.setEventHandler { stopping.set() }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
        let loaded = try loadConfiguration(config)
        try await CloudSession.with(cloud, data) { session in try await run(loaded, session, stopping) }
    }

    func run(_ loaded: LoadedConfig, _ session: CloudSession, _ stopping: StopFlag) async throws {
        let (journal, engine) = try await openEngine(loaded, data, cloud: session)
        journal.startCheckpointTimer()
        let queue: QueueDirectory
        do {
            queue = try QueueDirectory(root: URL(fileURLWithPath: queueDir))
        } catch {
            printError("cordon: \(error)")
            throw ExitCode(2)
        }
        printError("cordon: running \(loaded.playbooks.count) playbook(s) on \(queue.incoming.path) (\(queue.watching ? "inotify" : "polling")), journal \(data.directory.journal.path)")

        let resumed = try await engine.resumeUnfinished()
        if !resumed.isEmpty { printError("cordon: resumed \(resumed.count) unfinished incident(s)") }
        let poll = DurationParser.parse(pollInterval)!
        let workers = concurrency
        let batch = self.batch
        let work = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Housekeeping: approval timeouts, files of runners that stopped.
                group.addTask {
                    var lastOrphanCheck = ContinuousClock.now - .seconds(3600)
                    while !stopping.isSet {
                        let moved = try await engine.expireApprovals()
                        if !moved.isEmpty { printError("cordon: approval timed out for \(moved.joined(separator: ", ")); on_timeout applied") }
                        if ContinuousClock.now - lastOrphanCheck > .seconds(10) {
                            let recovered = (try? queue.recoverOrphans()) ?? 0
                            if recovered > 0 { printError("cordon: took up \(recovered) file(s) left by a runner that stopped") }
                            lastOrphanCheck = .now
                        }
                        try? await Task.sleep(for: .seconds(1))
                    }
                }
                group.addTask {
                    let runner = QueueRunner(
                        queue: queue, engine: engine, concurrency: workers, batchSize: batch, pollInterval: poll, log: { printError($0) })
                    try await runner.run(isStopping: { stopping.isSet })
                }
                try await group.waitForAll()
            }
        }
        // Wait for a signal, then for the work to wind down (bounded).
        while !stopping.isSet {
            try? await Task.sleep(for: .milliseconds(100))
            if work.isCancelled { break }
        }
        let deadline = ContinuousClock.now + DurationParser.parse(shutdownTimeout)!
        let finished = Mutex(false)
        let waiter = Task {
            _ = await work.result
            finished.withLock { $0 = true }
        }
        while !finished.withLock({ $0 }) && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        if !finished.withLock({ $0 }) {
            printError("cordon: in-flight work did not finish within \(shutdownTimeout); cancelling it (it resumes on the next start)")
            work.cancel()
            _ = await waiter.value
        }
        if case .failure(let error) = await work.result { printError("cordon: \(error)") }
        try await journal.close()
        printError("cordon: stopped; journal signed")
    }
}

/// Set once by a signal handler, read by the loops.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .sequentiallyConsistent) }
    var isSet: Bool { flag.load(ordering: .sequentiallyConsistent) }
}
