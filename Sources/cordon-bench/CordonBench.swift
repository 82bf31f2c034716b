import ArgumentParser
import CordonCore
import Foundation

@main
struct CordonBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cordon-bench",
        abstract: "Benchmarks for Cordon (run with `swift run -c release cordon-bench …`).",
        subcommands: [MatchBench.self, JournalBench.self, QueueBench.self, HTTPBench.self, RunnerBench.self])
}

struct MatchBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "match",
        abstract: "EventBridge pattern matching throughput over Fixtures/bench.",
        discussion: """
            For N = 1, 100 and 1000 patterns of each workload (the first N lines of \
            patterns-exact.jsonl / patterns-mixed.jsonl) it matches every raw event line of \
            guardduty-events.jsonl.gz (decompressed into memory first; the timed loop parses \
            the raw bytes of each event) on one thread, and prints events per second and the \
            pattern-load time. events/s is the median pass, best ev/s the fastest. For N = 1000 it checks every event's matches against \
            matches-*.jsonl and exits 1 on any difference.
            """)

    @Option(help: "The benchmark corpus directory.")
    var corpus: String = "Fixtures/bench"

    @Option(help: "Minimum measuring time per configuration, in seconds.")
    var seconds: Double = 2

    @Option(help: "Minimum number of timed passes over the corpus per configuration.")
    var minRounds: Int = 5

    @Option(help: "Pattern counts to measure (comma-separated).")
    var counts: String = "1,100,1000"

    func run() throws {
        let dir = URL(fileURLWithPath: corpus)
        let events = try EventCorpus(dir.appendingPathComponent("guardduty-events.jsonl.gz"))
        print("corpus: \(events.lines.count) events, \(events.totalBytes / events.lines.count) bytes on average")
        print("workload  patterns  load-ms   states   events/s  best ev/s     MB/s   matches")

        var failed = false
        for workload in ["exact", "mixed"] {
            let patternLines = try String(contentsOf: dir.appendingPathComponent("patterns-\(workload).jsonl"), encoding: .utf8)
                .split(separator: "\n").map(String.init)
            for n in counts.split(separator: ",").compactMap({ Int($0) }) {
                let results = try measure(workload, n, patterns: patternLines, events)
                if n == 1000, try !Self.verify(results, against: dir.appendingPathComponent("matches-\(workload).jsonl"), workload: workload) {
                    failed = true
                }
            }
        }
        if failed { throw ExitCode(1) }
    }

    /// Measures one configuration (the workload's first `n` patterns) and prints its line;
    /// answers each event's matches.
    private func measure(_ workload: String, _ n: Int, patterns: [String], _ events: EventCorpus) throws -> [[Int]] {
        let clock = ContinuousClock()
        let loadStart = clock.now
        let set = PatternSet(try patterns.prefix(n).map { try EventPattern(text: $0) })
        let load = clock.now - loadStart
        var matcher = set.makeMatcher()
        // Correctness pass (untimed) and match count.
        var results: [[Int]] = []
        results.reserveCapacity(events.lines.count)
        try events.forEach { results.append(try matcher.matches($0)) }
        let matchCount = results.reduce(0) { $0 + $1.count }
        // Warm-up pass, then timed passes.
        var sink = 0
        try events.forEach { sink &+= try matcher.matches($0).count }
        var roundTimes = try timedRounds(&matcher, events, sink: &sink)
        roundTimes.sort()
        let median = roundTimes[roundTimes.count / 2]
        let best = roundTimes[0]
        let eventsPerSecond = Double(events.lines.count) / median
        let bestEventsPerSecond = Double(events.lines.count) / best
        let mbPerSecond = Double(events.totalBytes) / median / 1e6
        let loadMs = load.seconds * 1000
        print(
            workload.padding(toLength: 9, withPad: " ", startingAt: 0)
                + pad(n, 9) + pad(String(format: "%.1f", loadMs), 9) + pad(set.stateCount, 9)
                + pad(String(format: "%.0f", eventsPerSecond), 11) + pad(String(format: "%.0f", bestEventsPerSecond), 11)
                + pad(String(format: "%.0f", mbPerSecond), 9)
                + pad(matchCount, 10) + (sink < 0 ? " " : ""))
        return results
    }

    /// The seconds of each timed round. Each round is one pass over the corpus; the figure
    /// reported is the median round (the machine is shared, so single rounds vary), with
    /// the best beside it.
    private func timedRounds(_ matcher: inout PatternMatcher, _ events: EventCorpus, sink: inout Int) throws -> [Double] {
        let clock = ContinuousClock()
        var roundTimes: [Double] = []
        var elapsed = 0.0
        try events.bytes.withUnsafeBytes { buffer in
            while elapsed < seconds || roundTimes.count < minRounds {
                let t = try clock.measure {
                    for line in events.lines {
                        sink &+= try matcher.matches(UnsafeRawBufferPointer(rebasing: buffer[line])).count
                    }
                }
                let s = t.seconds
                roundTimes.append(s)
                elapsed += s
            }
        }
        return roundTimes
    }

    /// Compares every event's matches with the expected ones (one JSON array per line) and
    /// prints the differences; false when there are any.
    private static func verify(_ results: [[Int]], against file: URL, workload: String) throws -> Bool {
        let expected = try String(contentsOf: file, encoding: .utf8).split(separator: "\n")
        var differences = 0
        for (i, line) in expected.enumerated() {
            let want = (try JSONParser.parse(String(line)).arrayValue?.compactMap { $0.numberValue?.intValue } ?? []).sorted()
            if i >= results.count || results[i] != want {
                differences += 1
                if differences <= 5 {
                    print("  MISMATCH event \(i): expected \(want), got \(i < results.count ? results[i] : [])")
                }
            }
        }
        if expected.count != results.count {
            print("  MISMATCH: \(expected.count) expected lines, \(results.count) events")
            differences += 1
        }
        if differences > 0 {
            print("  \(differences) events differ from matches-\(workload).jsonl")
            return false
        }
        print("  verified: all \(results.count) events match matches-\(workload).jsonl")
        return true
    }

    private func pad(_ value: some CustomStringConvertible, _ width: Int) -> String {
        let s = value.description
        return String(repeating: " ", count: max(0, width - s.count)) + s
    }
}

/// The match benchmark's events: the decompressed corpus in memory and each non-empty
/// line's range in it (the timed loop matches the raw bytes of each).
struct EventCorpus {
    let bytes: [UInt8]
    let lines: [Range<Int>]
    let totalBytes: Int

    init(_ gzipFile: URL) throws {
        bytes = try Gzip.decompress(Array(Data(contentsOf: gzipFile)))
        var lines: [Range<Int>] = []
        var start = 0
        for (i, b) in bytes.enumerated() where b == UInt8(ascii: "\n") {
            if i > start { lines.append(start..<i) }
            start = i + 1
        }
        if start < bytes.count { lines.append(start..<bytes.count) }
        self.lines = lines
        totalBytes = lines.reduce(0) { $0 + $1.count }
    }

    /// Calls `body` with each event's raw bytes, in order.
    func forEach(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try bytes.withUnsafeBytes { buffer in
            for line in lines { try body(UnsafeRawBufferPointer(rebasing: buffer[line])) }
        }
    }
}
