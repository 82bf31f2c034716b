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
            DIR/processing/, journals and runs its findings, then moves it to DIR/done/; a file \
            that cannot be decoded goes to DIR/failed/ with NAME.error.json beside it. Files \
            left in processing/ by a runner that crashed are taken up again. Several runners \
            may share one queue directory (each with its own --data-dir); none processes a \
            file twice. New files are noticed at once (inotify), or within --poll-interval.

            On start, incidents left unfinished by a crash are resumed. SIGTERM or SIGINT stops \
            claiming files, lets the file in progress finish (at most --shutdown-timeout), \
            writes a signed checkpoint and exits 0.
            """)

    @Option(help: ArgumentHelp("The queue directory.", valueName: "DIR"))
    var queueDir: String

    @Option(help: "Files processed at once (their journal writes share group commits).")
    var concurrency = 4

    @Option(help: "How often to look at incoming/ when inotify is not available.")
    var pollInterval: String = "1s"

    @Option(help: "How long in-flight work may take after SIGTERM/SIGINT before it is cancelled.")
    var shutdownTimeout: String = "30s"

    @OptionGroup var config: ConfigOptions
    @OptionGroup var data: DataOptions

    func validate() throws {
        guard (1...256).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 256") }
        guard DurationParser.parse(pollInterval) != nil else { throw ValidationError("--poll-interval: \(pollInterval) is not a duration such as 1s") }
        guard DurationParser.parse(shutdownTimeout) != nil else { throw ValidationError("--shutdown-timeout: \(shutdownTimeout) is not a duration such as 30s") }
    }

    func run() async throws {
        let loaded = try loadConfiguration(config)
        let (journal, engine) = try await openEngine(loaded, data)
        journal.startCheckpointTimer()
        let queue: QueueDirectory
        do {
            queue = try QueueDirectory(root: URL(fileURLWithPath: queueDir))
        } catch {
            printError("cordon: \(error)")
            throw ExitCode(2)
        }
        let stopping = StopFlag()
        let signals = [SIGTERM, SIGINT].map { sig -> DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig)
            source.setEventHandler { stopping.set() }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
        printError("cordon: running \(loaded.playbooks.count) playbook(s) on \(queue.incoming.path) (\(queue.watching ? "inotify" : "polling")), journal \(data.directory.journal.path)")

        let resumed = try await engine.resumeUnfinished()
        if !resumed.isEmpty { printError("cordon: resumed \(resumed.count) unfinished incident(s)") }
        let poll = DurationParser.parse(pollInterval)!
        let workers = concurrency
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
                for _ in 0..<workers {
                    group.addTask {
                        while !stopping.isSet {
                            let generation = queue.generation
                            guard let claimed = try queue.claim() else {
                                await queue.wait(timeout: poll, after: generation)
                                continue
                            }
                            try await Self.handle(claimed, queue: queue, engine: engine)
                        }
                    }
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

    static func handle(_ claimed: QueueDirectory.Claimed, queue: QueueDirectory, engine: Engine) async throws {
        let result = FindingDecoder().decode(fileAtPath: claimed.url.path)
        // The findings are journaled before the file is acknowledged (moved out of processing/).
        for finding in result.findings { _ = try await engine.process(finding) }
        if result.issues.isEmpty {
            try queue.complete(claimed)
        } else {
            for issue in result.issues { printError("cordon: \(claimed.name): \(issue.message)") }
            try queue.fail(
                claimed,
                reason: [
                    "file": .string(claimed.name), "findings_processed": .number(JSONNumber(result.findings.count)),
                    "errors": .array(result.issues.map { ["where": .string($0.origin.description.replacingOccurrences(of: claimed.url.path, with: claimed.name)), "message": .string($0.message)] }),
                ])
        }
    }
}

/// Set once by a signal handler, read by the loops.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .sequentiallyConsistent) }
    var isSet: Bool { flag.load(ordering: .sequentiallyConsistent) }
}
