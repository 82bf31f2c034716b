import CordonCore
import Foundation

/// The runs of `cordon run` and `cordon process` on a data directory, and what each was
/// working on when it crashed (`DATA/crashes.log`): how a finding that crashes the runner
/// is told from a kill or a bug elsewhere.
///
/// Each run writes `start PID TIME` when it begins and `stop PID TIME` when it ends
/// cleanly; a crash handler (`CrashGuard`) writes `crash PID signal N`, one `item ID` line
/// per finding or incident in progress, and `end PID`. A kill (`kill -9`, the OOM killer)
/// writes nothing. Work that was in progress when the last two runs both crashed is
/// quarantined at the next start (`Engine.quarantine`).
public struct CrashLog: Sendable {
    public let url: URL

    public init(_ directory: DataDirectory) { url = directory.url.appendingPathComponent("crashes.log") }

    /// One run, as the log tells it.
    public struct Run: Sendable, Equatable {
        public var pid: Int32
        public var started: String
        /// The fault signal it died of, and what it was working on then.
        public var crash: (signal: Int32, items: [String])?
        public var stopped = false

        public static func == (a: Run, b: Run) -> Bool {
            a.pid == b.pid && a.started == b.started && a.stopped == b.stopped && a.crash?.signal == b.crash?.signal && a.crash?.items == b.crash?.items
        }
    }

    /// The runs the log records, oldest first (from its last 256 KiB: a few crashes).
    public func runs() -> [Run] {
        guard let handle = FileHandle(forReadingAtPath: url.path) else { return [] }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        let window: UInt64 = 256 << 10
        try? handle.seek(toOffset: size > window ? size - window : 0)
        let text = String(decoding: (try? handle.readToEnd()) ?? Data(), as: UTF8.self)
        var runs: [Run] = []
        var crashing: (run: Int, signal: Int32, items: [String])?
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 3).map(String.init)
            guard let word = parts.first else { continue }
            switch word {
            case "start" where parts.count >= 3:
                guard let pid = Int32(parts[1]) else { continue }
                runs.append(Run(pid: pid, started: parts[2]))
            case "stop" where parts.count >= 2:
                guard let pid = Int32(parts[1]), let i = runs.lastIndex(where: { $0.pid == pid && !$0.stopped && $0.crash == nil }) else { continue }
                runs[i].stopped = true
            case "crash" where parts.count >= 4:
                guard let pid = Int32(parts[1]), let signal = Int32(parts[3]), let i = runs.lastIndex(where: { $0.pid == pid && !$0.stopped && $0.crash == nil }) else { continue }
                crashing = (i, signal, [])
            case "item" where parts.count >= 2:
                crashing?.items.append(String(line.dropFirst(5)))
            case "end":
                if let c = crashing { runs[c.run].crash = (c.signal, c.items) }
                crashing = nil
            default:
                continue
            }
        }
        // A crash record cut short (the handler died too) still counts, with what it wrote.
        if let c = crashing { runs[c.run].crash = (c.signal, c.items) }
        return runs
    }

    /// What was in progress when each of the last two runs crashed (nil unless both
    /// crashed), with a sentence saying so for the journal.
    public func inProgressAtTwoCrashes() -> (items: Set<String>, reason: String)? {
        let runs = runs()
        guard runs.count >= 2, let last = runs[runs.count - 1].crash, let before = runs[runs.count - 2].crash else { return nil }
        let items = Set(last.items).intersection(before.items)
        guard !items.isEmpty else { return nil }
        let reason = "its handling was in progress when the last two runs crashed (signal \(before.signal) in the run started \(runs[runs.count - 2].started), signal \(last.signal) in the one started \(runs[runs.count - 1].started)); it is not taken up again automatically"
        return (items, reason)
    }

    /// What was in progress when the last run crashed (empty when it did not).
    public func inProgressAtLastCrash() -> Set<String> {
        Set(runs().last?.crash?.items ?? [])
    }

    /// Records the start of this run and installs the crash handler.
    public func begin() throws {
        try append("start \(getpid()) \(Timestamp.string(Date()))\n")
        try CrashGuard.install(path: url.path)
    }

    /// Records this run's clean end.
    public func end() { try? append("stop \(getpid()) \(Timestamp.string(Date()))\n") }

    private func append(_ line: String) throws {
        let fd = open(url.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SQLiteJournal.Error(message: "cannot open \(url.path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(line.utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
}
