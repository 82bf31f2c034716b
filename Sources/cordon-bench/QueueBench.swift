import ArgumentParser
import CordonCore
import CordonEngine
import CordonIntake
import CordonJournal
import Foundation
import Synchronization
import CordonIntegrations

struct QueueBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Queue directory throughput and latency with a no-op action, and memory with many playbooks.",
        discussion: """
            Loads --playbooks playbooks (triggers from Fixtures/bench/patterns-WORKLOAD.jsonl, one \
            no-op step each), drops --findings GuardDuty findings (one file each) into a fresh \
            queue directory, and processes them as `cordon run` does (claim, journal with \
            synchronous=FULL, match, run). Prints findings/s, the latency from a file's arrival \
            in incoming/ to its first step's action call (p50/p99), and the resident memory.
            """)

    @OptionGroup var bench: BenchPlaybookOptions

    @Option(help: "Findings to process.")
    var findings = 2_000

    @Option(help: "Actions called at once, as `cordon run --concurrency` (with as many handlers as `cordon run` gives it).")
    var concurrency = 16

    @Option(help: "Files journaled in one commit, as `cordon run --batch`.")
    var batch = 256

    @Option(help: "Drop files at this many per second while the runner works (0: drop them all first, a backlog).")
    var rate = 0.0

    @Option(help: "Work directory (removed afterwards).")
    var dir: String = "./.build/bench-queue"

    @Option(help: "Findings already in the journal before the drain, as in one that has been in use: each a finding.received record citing its raw finding (2.4 KB of evidence) and, one in two, an incident of four records.")
    var journalFindings = 0

    @Option(help: "Write each finding's arrival (ms since the start) and latency (ms) to this CSV file.")
    var latencyLog: String?

    final class NoOp: Action, @unchecked Sendable {
        let calls = Mutex<[String: ContinuousClock.Instant]>([:])
        var checkable: Bool { true }
        func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
            let id = request.incident["findings"]?[0]?.stringValue ?? ""
            calls.withLock { if $0[id] == nil { $0[id] = .now } }
            return ActionOutcome()
        }
    }

    func run() async throws {
        let root = URL(fileURLWithPath: dir).appendingPathComponent(UUID().uuidString)
        defer { try? FileManager.default.removeItem(at: root) }
        let fm = FileManager.default
        try fm.createDirectory(at: root.appendingPathComponent("Playbooks"), withIntermediateDirectories: true)
        try bench.writePlaybooks(to: root.appendingPathComponent("Playbooks"))
        let loadStart = ContinuousClock.now
        let loaded = ConfigLoader(actions: .builtIn).load([root.appendingPathComponent("Playbooks").path])
        guard loaded.isValid else { print(loaded.diagnostics.prefix(3)); throw ExitCode(1) }
        let loadTime = ContinuousClock.now - loadStart
        let events = try bench.events().prefix(findings)
        let secrets = SecretStore(environment: [:])
        let journal = try SQLiteJournal(directory: DataDirectory(root.appendingPathComponent("data").path), secrets: secrets)
        if journalFindings > 0 {
            let started = ContinuousClock.now
            try await Self.prefill(journal, findings: journalFindings)
            FileHandle.standardError.write(
                Data(String(format: "journal: %d findings written before the drain in %.1f s\n", journalFindings, (ContinuousClock.now - started).seconds).utf8))
        }
        let noop = NoOp()
        let engine = try await makeEngine(loaded, journal: journal, secrets: secrets, action: noop)
        let queue = try QueueDirectory(root: root.appendingPathComponent("queue"), create: true)
        let rssAfterLoad = Self.rssMB()

        // Drop the files (all first, or at --rate while the workers run), noting when each
        // arrived in incoming/.
        let lines = Array(events)
        let dropper = Dropper(
            stagingPath: root.appendingPathComponent("queue").path + "/.", incomingPath: queue.incoming.path + "/",
            ids: lines.map { (try? JSONParser.parse(Array($0)))?["id"]?.stringValue ?? "" })
        try dropper.stage(lines)
        if rate <= 0 { for i in lines.indices { try dropper.drop(i) } }
        FileHandle.standardError.write(Data("draining \(lines.count) files\n".utf8))
        // Before the CPU count starts: the reference work is not the drain's.
        let reference = HostSpeed.referenceMicroseconds()
        let cpuStart = Self.cpuSeconds()
        let hostStart = Self.hostCPU()
        let statsStart = journal.commitStatistics
        let start = ContinuousClock.now
        let total = lines.count
        let produced = Locked(false)
        let producerCPU = Locked(0.0)
        if rate > 0 { Self.startProducer(dropper, total: total, rate: rate, start: start, produced: produced, cpu: producerCPU) }
        let filesDone = Locked(0)
        let handled = Locked(0)
        let runner = QueueRunner(
            queue: queue, engine: engine, concurrency: QueueRunner.handlers(actionsInFlight: concurrency), batchSize: batch, pollInterval: .milliseconds(50),
            onFile: { _, _ in filesDone.value.withLock { $0 += 1 } }, onHandled: { _ in handled.value.withLock { $0 += 1 } })
        try await runner.run(isStopping: { filesDone.value.withLock { $0 } >= total })
        FileHandle.standardError.write(Data("drained\n".utf8))
        let processed = handled.value.withLock { $0 }
        while rate > 0 && !produced.value.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
        let elapsed = ContinuousClock.now - start
        let cpu = Self.cpuSeconds() - cpuStart - producerCPU.value.withLock { $0 }
        let hostEnd = Self.hostCPU()
        let stats = journal.commitStatistics
        try await journal.close()
        let seconds = elapsed.seconds
        let latencies = try latencies(calls: noop.calls.withLock { $0 }, arrived: dropper.arrivedAt.value.withLock { $0 }, start: start)
        func pct(_ p: Double) -> Double { latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        print(String(format: "playbooks: %d loaded in %.0f ms; RSS after load %.0f MB, at end %.0f MB", loaded.playbooks.count,
                     loadTime.seconds * 1000, rssAfterLoad, Self.rssMB()))
        print(String(format: "queue: %d findings in %.2f s = %.0f findings/s with %d actions at once (claim, journal with synchronous=FULL, match, open incidents, run)", processed, seconds, Double(processed) / seconds, concurrency))
        print(Self.journalLine(statsStart, stats, seconds: seconds))
        print(String(format: "cpu: %.2f s user+system during the drain (the producer's excluded) = %.0f µs per finding (%.0f%% of one core)", cpu, cpu / Double(max(processed, 1)) * 1e6, cpu / seconds * 100))
        print(Self.stealLine(hostStart, hostEnd))
        print(HostSpeed.lines(reference))
        if rate > 0 {
            print(String(format: "first action called for %d findings; latency from arrival in incoming/ to the first action call p50 %.1f ms, p99 %.1f ms at %.0f files/s", latencies.count, pct(0.5), pct(0.99), rate))
        } else {
            print(String(format: "first action called for %d findings; time from the start of the drain p50 %.1f ms, p99 %.1f ms (a backlog, not arrival latency: use --rate)", latencies.count, pct(0.5), pct(0.99)))
        }
    }

    /// The engine as `cordon run` has it, with `action` as `core.log` (the playbooks' step):
    /// the journal replayed into a runner's index, --concurrency actions at once.
    func makeEngine(_ loaded: LoadedConfig, journal: SQLiteJournal, secrets: SecretStore, action: NoOp) async throws -> Engine {
        var actions = CoreActions.all
        actions["core.log"] = action
        return Engine(
            config: loaded, actions: actions, journal: journal, evidence: journal.evidence, secrets: secrets, actor: "cordon-bench",
            index: try await IncidentIndex.load(from: journal, retention: .live(findings: IncidentIndex.Retention.defaultWindow)),
            actionsInFlight: concurrency)
    }

    /// The findings' files. A producer as another process would be: a file written beside
    /// incoming/, then renamed into it. Files are written before the drain (creating
    /// thousands of files costs the file system more than Cordon's own work), and renamed
    /// in all at once or at --rate, noting when each arrived.
    struct Dropper: Sendable {
        /// The staging prefix: the queue directory and a dot (hidden, beside incoming/).
        let stagingPath: String
        let incomingPath: String
        /// Each file's finding id.
        let ids: [String]
        let arrivedAt = Locked<[String: ContinuousClock.Instant]>([:])

        static func name(_ i: Int) -> String { String(format: "f%06d.json", i) }

        /// Writes every file beside incoming/.
        func stage(_ lines: [ArraySlice<UInt8>]) throws {
            for i in lines.indices {
                let path = stagingPath + Self.name(i)
                let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                guard fd >= 0 else { throw ValidationError("cannot create \(path)") }
                let written = lines[i].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                close(fd)
                guard written == lines[i].count else { throw ValidationError("cannot write \(path)") }
            }
        }

        /// Renames file `i` into incoming/.
        func drop(_ i: Int) throws {
            let name = Self.name(i)
            guard rename(stagingPath + name, incomingPath + name) == 0 else { throw ValidationError("cannot drop \(name)") }
            arrivedAt.value.withLock { $0[ids[i]] = .now }
        }
    }

    /// At --rate, a thread of its own (not the runner's task pool) drops every file that
    /// is due each time it wakes, so the rate holds even when its timer is late.
    /// It wakes at most every millisecond (more often costs this VM more CPU in timer
    /// wakeups than the files cost Cordon), and its own CPU time is not Cordon's: it is
    /// noted in `cpu` (to subtract from the figure printed) before `produced` is set.
    static func startProducer(
        _ dropper: Dropper, total: Int, rate: Double, start: ContinuousClock.Instant, produced: Locked<Bool>, cpu producerCPU: Locked<Double>
    ) {
        let thread = Thread {
            var next = 0
            while next < total {
                let elapsed = ContinuousClock.now - start
                let seconds = elapsed.seconds
                let due = min(total, Int(seconds * rate) + 1)
                while next < due {
                    try? dropper.drop(next)
                    next += 1
                }
                let wait = max(0.001, Double(next) / rate - seconds)
                usleep(UInt32(min(wait, 0.1) * 1e6))
            }
            producerCPU.value.withLock { $0 = threadCPUSeconds() }
            produced.value.withLock { $0 = true }
        }
        thread.start()
    }

    /// Each finding's latency in ms, sorted, written with its arrival to --latency-log when
    /// given. Latency counts from the drain's start for files that were waiting (a
    /// backlog); it is the time a finding spent before its first action ran.
    func latencies(
        calls: [String: ContinuousClock.Instant], arrived: [String: ContinuousClock.Instant], start: ContinuousClock.Instant
    ) throws -> [Double] {
        var latencies: [Double] = []
        var rows: [(Double, Double)] = []
        for (id, called) in calls {
            let from = max(arrived[id] ?? start, start)
            let latency = (called - from).seconds * 1000
            latencies.append(latency)
            rows.append(((from - start).seconds * 1000, latency))
        }
        if let latencyLog {
            let text = "arrival_ms,latency_ms\n" + rows.sorted { $0.0 < $1.0 }.map { String(format: "%.3f,%.3f", $0.0, $0.1) }.joined(separator: "\n") + "\n"
            try text.write(toFile: latencyLog, atomically: true, encoding: .utf8)
        }
        return latencies.sorted()
    }

    /// Appends `findings` findings' worth of records, with random incident ids and
    /// evidence, so that the drain's commits land in indexes of that size.
    static func prefill(_ journal: SQLiteJournal, findings: Int) async throws {
        var generator = SystemRandomNumberGenerator()
        var evidence = (0..<2400).map { _ in UInt8.random(in: 32...126, using: &generator) }
        let kinds = [RecordKind.incidentOpened, RecordKind.stepIntent, RecordKind.stepSucceeded, RecordKind.incidentCompleted]
        var batch: [NewRecord] = []
        var posts = 0
        for i in 0..<findings {
            // Unique evidence: its hash lands at a random place in the evidence index.
            withUnsafeBytes(of: UInt64.random(in: .min ... .max, using: &generator)) { evidence.replaceSubrange(0..<8, with: $0) }
            let reference = try journal.evidence.put(evidence, name: "finding")
            batch.append(NewRecord(kind: RecordKind.findingReceived, actor: "cordon-bench", data: ["finding": .string("prefill-\(i)"), "evidence": [reference.json]]))
            if i % 2 == 0 {
                let incident = "inc-" + String(UInt64.random(in: .min ... .max, using: &generator) >> 16, radix: 16)
                for kind in kinds {
                    batch.append(NewRecord(incident: incident, kind: kind, actor: "cordon-bench", data: ["step": "noop", "finding": .string("prefill-\(i)")]))
                }
            }
            if batch.count >= 500 {
                journal.post(batch)
                batch = []
                posts += 1
                // Bounded: posted records and their evidence wait in memory until written.
                if posts % 8 == 0 { try await journal.durable() }
            }
        }
        journal.post(batch)
        try await journal.durable()
        // The kernel would otherwise write the prefill's hundreds of megabytes back during
        // the drain, and the first WAL checkpoint's fsync of the database would wait for them.
        sync()
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// The journal's commits between two statistics, and its writer thread's share.
    static func journalLine(_ before: SQLiteJournal.CommitStatistics, _ after: SQLiteJournal.CommitStatistics, seconds: Double) -> String {
        let records = after.records - before.records
        let commits = after.commits - before.commits
        let cpu = after.writerCPU - before.writerCPU
        return String(
            format: "journal: %d records in %d commits (%.1f records per commit, %.0f commits/s); writer thread %.0f%% of a core, %.1f µs per record",
            records, commits, Double(records) / Double(max(commits, 1)), Double(commits) / seconds, cpu / seconds * 100,
            cpu / Double(max(records, 1)) * 1e6)
    }

    /// The machine's CPU time so far, and the part the hypervisor gave to other guests
    /// (`steal` in /proc/stat), in clock ticks.
    static func hostCPU() -> (total: Double, steal: Double) {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = stat.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") })
        else { return (0, 0) }
        let fields = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard fields.count >= 8 else { return (0, 0) }
        return (fields.prefix(8).reduce(0, +), fields[7])
    }

    /// How much of the machine the host took between two `hostCPU()` readings: on a shared
    /// VM, figures from runs with more than a few percent are not comparable.
    static func stealLine(_ before: (total: Double, steal: Double), _ after: (total: Double, steal: Double)) -> String {
        let total = after.total - before.total
        let share = total > 0 ? (after.steal - before.steal) / total * 100 : 0
        return String(format: "host: the hypervisor took %.1f%% of this VM's CPU time during the run (steal in /proc/stat)", share)
    }

    /// The resident memory of this process, or of another one, in MB.
    static func rssMB(_ pid: Int32? = nil) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(pid.map(String.init) ?? "self")/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return 0 }
        return Double(line.split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? 0) / 1024
    }
}

/// A mutex-protected value that closures can share.
final class Locked<T: Sendable>: Sendable {
    let value: Mutex<T>
    init(_ initial: T) { value = Mutex(initial) }
}
