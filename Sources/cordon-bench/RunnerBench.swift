import ArgumentParser
import CordonCore
import CordonEngine
import CordonIntake
import CordonJournal
import Foundation
import CordonIntegrations

/// `cordon run` started on a journal that has been in use: how long it takes to start and
/// how much memory it holds, measured on the real executable.
struct RunnerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runner",
        abstract: "Start-up time and resident memory of `cordon run` on a journal that has been in use.",
        discussion: """
            Writes a journal as the runner would (the engine handles --journal-findings \
            GuardDuty findings of the corpus against --playbooks playbooks with a no-op \
            step; past the corpus's 5,000 the findings are its events again under new ids), \
            verifies it (as `cordon journal verify`), then starts `cordon run --queue-dir` \
            on it and prints the time until it runs, \
            its resident memory while idle (the largest of the samples taken every 0.25 s) \
            and after it has processed --then more findings dropped into its queue.
            """)

    @OptionGroup var bench: BenchPlaybookOptions

    @Option(help: "Findings handled into the journal before `cordon run` starts.")
    var journalFindings = 100_000

    @Option(help: "Findings dropped into the queue once it runs (0: none).")
    var then = 5_000

    @Option(help: "Seconds of idle memory samples.")
    var idle = 5.0

    @Option(help: ArgumentHelp("Pass --dedupe-window N to cordon run.", valueName: "N"))
    var dedupeWindow: Int?

    @Option(help: "The cordon executable (default: beside this one).")
    var cordon: String?

    @Option(help: "Work directory (removed afterwards).")
    var dir: String = "./.build/bench-runner"

    @Option(help: ArgumentHelp("Keep the journal and playbooks in this directory, and use them again when it has them (to compare builds of cordon on one journal).", valueName: "DIR"))
    var keep: String?

    func run() async throws {
        let root = URL(fileURLWithPath: keep ?? (dir + "/" + UUID().uuidString))
        defer { if keep == nil { try? FileManager.default.removeItem(at: root) } }
        let fm = FileManager.default
        let playbookDir = root.appendingPathComponent("Playbooks")
        let reused = keep != nil && fm.fileExists(atPath: root.appendingPathComponent("data/journal.sqlite").path)
        try? fm.removeItem(at: root.appendingPathComponent("queue"))
        if !reused {
            try fm.createDirectory(at: playbookDir, withIntermediateDirectories: true)
            try bench.writePlaybooks(to: playbookDir)
        }
        let loaded = ConfigLoader(actions: .builtIn).load([playbookDir.path])
        guard loaded.isValid else { print(loaded.diagnostics.prefix(3)); throw ExitCode(1) }
        let events = try bench.events().map { String(decoding: $0, as: UTF8.self) }
        guard !events.isEmpty else { throw ValidationError("no events in \(bench.corpus)/guardduty-events.jsonl.gz") }

        if reused {
            print("journal: the one in \(root.path) (its findings and playbooks as written then)")
        } else {
            let started = ContinuousClock.now
            let (incidents, bytes) = try await Self.prefill(
                loaded, events: events, findings: journalFindings, data: root.appendingPathComponent("data"))
            print(
                String(
                    format: "journal: %d findings handled in %.1f s, %d incidents, %.0f MB (database and WAL)", journalFindings,
                    (ContinuousClock.now - started).seconds, incidents, Double(bytes) / 1e6))
        }
        try Self.printVerification(data: root.appendingPathComponent("data"))

        let queue = root.appendingPathComponent("queue")
        let log = root.appendingPathComponent("cordon.log")
        _ = fm.createFile(atPath: log.path, contents: nil)
        let process = try cordonProcess(root: root, queue: queue, playbooks: playbookDir, log: log)
        let spawned = ContinuousClock.now
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        try await Self.waitUntilRunning(process, log: log, since: spawned)
        let startup = (ContinuousClock.now - spawned).seconds
        var idleRSS = 0.0
        let idleUntil = ContinuousClock.now + .milliseconds(Int(idle * 1000))
        while ContinuousClock.now < idleUntil {
            idleRSS = max(idleRSS, QueueBench.rssMB(process.processIdentifier))
            try await Task.sleep(for: .milliseconds(250))
        }
        print(String(format: "cordon run: running after %.2f s; resident memory while idle %.1f MB", startup, idleRSS))

        if then > 0 { try await dropMore(events, into: queue, process: process) }
        process.terminate()
        process.waitUntilExit()
        guard process.terminationReason == .exit && process.terminationStatus == 0 else {
            print("cordon run did not stop cleanly (status \(process.terminationStatus)):\n" + ((try? String(contentsOf: log, encoding: .utf8)) ?? ""))
            throw ExitCode(1)
        }
    }

    /// Prints what an auditor's `cordon journal verify` costs on the journal.
    static func printVerification(data: URL) throws {
        let verifyStart = ContinuousClock.now
        let report = try JournalVerifier(directory: DataDirectory(data.path)).verify()
        let verifySeconds = (ContinuousClock.now - verifyStart).seconds
        print(
            String(
                format: "verify: %d records and %d evidence items in %.2f s = %.0f records/s (%@)", report.records, report.evidenceFiles,
                verifySeconds, Double(report.records) / max(verifySeconds, 1e-9), report.isValid ? "valid" : "NOT valid"))
    }

    /// `cordon run --queue-dir` on the journal under `root`, its standard error to `log`
    /// (not started).
    func cordonProcess(root: URL, queue: URL, playbooks playbookDir: URL, log: URL) throws -> Process {
        let executable = cordon ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("cordon").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments =
            ["run", "--queue-dir", queue.path, "--create-queue-dir", "--data-dir", root.appendingPathComponent("data").path, "--playbooks", playbookDir.path]
            + (dedupeWindow.map { ["--dedupe-window", String($0)] } ?? [])
        process.currentDirectoryURL = root
        process.standardError = try FileHandle(forWritingTo: log)
        process.standardOutput = FileHandle.nullDevice
        return process
    }

    /// Waits until cordon says it is running (after replaying the journal).
    static func waitUntilRunning(_ process: Process, log: URL, since spawned: ContinuousClock.Instant) async throws {
        while !((try? String(contentsOf: log, encoding: .utf8)) ?? "").contains("cordon: running") {
            guard process.isRunning else {
                print("cordon run exited with status \(process.terminationStatus):\n" + ((try? String(contentsOf: log, encoding: .utf8)) ?? ""))
                throw ExitCode(1)
            }
            guard ContinuousClock.now - spawned < .seconds(600) else { throw ValidationError("cordon run did not start within 600 s") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Drops --then more findings into the running cordon's queue, waits until it has
    /// processed them, and prints the time and its resident memory.
    func dropMore(_ events: [String], into queue: URL, process: Process) async throws {
        // Written beside incoming/ and renamed into it, as producers do.
        let incoming = queue.appendingPathComponent("incoming")
        var peak = 0.0
        let dropped = ContinuousClock.now
        // New ids on every run (a kept journal has seen the last run's).
        let round = Int.random(in: 1_000_000...9_999_999)
        for i in 0..<then {
            if i % 500 == 0 { peak = max(peak, QueueBench.rssMB(process.processIdentifier)) }
            let text = Self.event(events, i, round: round)
            let staging = queue.appendingPathComponent(".f\(i).json")
            try text.write(to: staging, atomically: false, encoding: .utf8)
            guard rename(staging.path, incoming.appendingPathComponent("f\(i).json").path) == 0 else { throw ValidationError("cannot rename into \(incoming.path)") }
        }
        let done = queue.appendingPathComponent("done")
        while ((try? FileManager.default.contentsOfDirectory(atPath: done.path).count) ?? 0) < then {
            peak = max(peak, QueueBench.rssMB(process.processIdentifier))
            guard process.isRunning else { throw ValidationError("cordon run exited while processing") }
            guard ContinuousClock.now - dropped < .seconds(600) else { throw ValidationError("cordon run did not process \(then) findings within 600 s") }
            try await Task.sleep(for: .milliseconds(100))
        }
        let took = (ContinuousClock.now - dropped).seconds
        let after = QueueBench.rssMB(process.processIdentifier)
        // Once the allocator has had its time (jemalloc returns freed memory over ~10 s).
        try await Task.sleep(for: .seconds(12))
        print(
            String(
                format: "cordon run: %d more findings dropped and processed in %.1f s; resident memory %.1f MB at most, %.1f MB after, %.1f MB 12 s later",
                then, took, peak, after, QueueBench.rssMB(process.processIdentifier)))
    }

    /// Event `i`, under a new id past the corpus's first pass (`round` keeps sets apart).
    static func event(_ events: [String], _ i: Int, round: Int = 0) -> String {
        let event = events[i % events.count]
        let pass = i / events.count + round
        guard pass > 0, let id = (try? JSONParser.parse(Array(event.utf8)))?["id"]?.stringValue else { return event }
        // The id is unique in the corpus: every occurrence (the event's and the finding's) changes.
        return event.replacingOccurrences(of: id, with: "\(id)-\(pass)")
    }

    /// Handles findings into a new journal as `cordon run` would (batches of 256 received
    /// together, 64 handlers); returns the incidents opened and the journal's size.
    static func prefill(_ loaded: LoadedConfig, events: [String], findings: Int, data: URL) async throws -> (Int, Int) {
        let secrets = SecretStore(environment: [:])
        let journal = try SQLiteJournal(directory: DataDirectory(data.path), secrets: secrets)
        var actions = CoreActions.all
        actions["core.log"] = QueueBench.NoOp()
        let engine = Engine(
            config: loaded, actions: actions, journal: journal, evidence: journal.evidence, secrets: secrets, actor: "cordon-bench",
            index: IncidentIndex(retention: .live(findings: IncidentIndex.Retention.defaultWindow)), actionsInFlight: 16)
        let receipts = ReceiptQueue(limit: 1_024)
        let opened = Locked(0)
        let handlers = Task {
            try await QueueRunner.handle(receipts, engine: engine, concurrency: 64) { outcome in
                opened.value.withLock { $0 += outcome.incidents.count }
            }
        }
        var next = 0
        while next < findings {
            let batch = (next..<min(findings, next + 256)).flatMap { i in
                FindingDecoder().decode(Array(event(events, i).utf8), source: "bench").findings
            }
            next += 256
            for receipt in try await engine.receive(batch) {
                guard await receipts.waitForRoom() else { break }
                await receipts.submit(receipt)
            }
        }
        await receipts.close()
        try await handlers.value
        try await journal.close()
        let size = ["journal.sqlite", "journal.sqlite-wal"].compactMap {
            (try? FileManager.default.attributesOfItem(atPath: data.appendingPathComponent($0).path)[.size] as? Int) ?? nil
        }.reduce(0, +)
        return (opened.value.withLock { $0 }, size)
    }
}
