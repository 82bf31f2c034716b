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
        let compressed = try Array(Data(contentsOf: dir.appendingPathComponent("guardduty-events.jsonl.gz")))
        let corpusBytes = try Gzip.decompress(compressed)
        var lines: [Range<Int>] = []
        var start = 0
        for (i, b) in corpusBytes.enumerated() where b == UInt8(ascii: "\n") {
            if i > start { lines.append(start..<i) }
            start = i + 1
        }
        if start < corpusBytes.count { lines.append(start..<corpusBytes.count) }
        let totalBytes = lines.reduce(0) { $0 + $1.count }
        print("corpus: \(lines.count) events, \(totalBytes / lines.count) bytes on average")
        print("workload  patterns  load-ms   states   events/s  best ev/s     MB/s   matches")

        var failed = false
        for workload in ["exact", "mixed"] {
            let patternLines = try String(contentsOf: dir.appendingPathComponent("patterns-\(workload).jsonl"), encoding: .utf8)
                .split(separator: "\n").map(String.init)
            for n in counts.split(separator: ",").compactMap({ Int($0) }) {
                let clock = ContinuousClock()
                var set: PatternSet! = nil
                let load = try clock.measure {
                    let patterns = try patternLines.prefix(n).map { try EventPattern(text: $0) }
                    set = PatternSet(patterns)
                }
                var matcher = set.makeMatcher()
                // Correctness pass (untimed) and match count.
                var results: [[Int]] = []
                results.reserveCapacity(lines.count)
                try corpusBytes.withUnsafeBytes { buffer in
                    for line in lines {
                        results.append(try matcher.matches(UnsafeRawBufferPointer(rebasing: buffer[line])))
                    }
                }
                let matchCount = results.reduce(0) { $0 + $1.count }
                // Warm-up pass, then timed passes.
                var sink = 0
                try corpusBytes.withUnsafeBytes { buffer in
                    for line in lines { sink &+= try matcher.matches(UnsafeRawBufferPointer(rebasing: buffer[line])).count }
                }
                // Each round is one pass over the corpus; the figure reported is the median
                // round (the machine is shared, so single rounds vary), with the best beside it.
                var roundTimes: [Double] = []
                var elapsed = 0.0
                try corpusBytes.withUnsafeBytes { buffer in
                    while elapsed < seconds || roundTimes.count < minRounds {
                        let t = try clock.measure {
                            for line in lines {
                                sink &+= try matcher.matches(UnsafeRawBufferPointer(rebasing: buffer[line])).count
                            }
                        }
                        let s = t.seconds
                        roundTimes.append(s)
                        elapsed += s
                    }
                }
                roundTimes.sort()
                let median = roundTimes[roundTimes.count / 2]
                let best = roundTimes[0]
                let eventsPerSecond = Double(lines.count) / median
                let bestEventsPerSecond = Double(lines.count) / best
                let mbPerSecond = Double(totalBytes) / median / 1e6
                let loadMs = load.seconds * 1000
                print(
                    workload.padding(toLength: 9, withPad: " ", startingAt: 0)
                        + pad(n, 9) + pad(String(format: "%.1f", loadMs), 9) + pad(set.stateCount, 9)
                        + pad(String(format: "%.0f", eventsPerSecond), 11) + pad(String(format: "%.0f", bestEventsPerSecond), 11)
                        + pad(String(format: "%.0f", mbPerSecond), 9)
                        + pad(matchCount, 10) + (sink < 0 ? " " : ""))
                if n == 1000 {
                    let expected = try String(contentsOf: dir.appendingPathComponent("matches-\(workload).jsonl"), encoding: .utf8)
                        .split(separator: "\n")
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
                        failed = true
                    } else {
                        print("  verified: all \(results.count) events match matches-\(workload).jsonl")
                    }
                }
            }
        }
        if failed { throw ExitCode(1) }
    }

    private func pad(_ value: some CustomStringConvertible, _ width: Int) -> String {
        let s = value.description
        return String(repeating: " ", count: max(0, width - s.count)) + s
    }
}
