import Foundation
import Testing

@testable import CordonCore

/// The benchmark corpus's expected answers (Fixtures/bench): every one of the 5,000
/// events against the 1,000 patterns of each workload, compiled into one set.
@Suite struct BenchCorpusTests {
    static func events() throws -> [[UInt8]] {
        let gz = try readBytes(TestPaths.fixtures.appendingPathComponent("bench/guardduty-events.jsonl.gz"))
        let bytes = try Gzip.decompress(gz)
        return bytes.split(separator: UInt8(ascii: "\n")).map(Array.init)
    }

    @Test(arguments: ["exact", "mixed"])
    func thousandPatternsGiveTheExpectedMatches(workload: String) throws {
        let bench = TestPaths.fixtures.appendingPathComponent("bench")
        let patterns = try String(contentsOf: bench.appendingPathComponent("patterns-\(workload).jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try EventPattern(text: String($0)) }
        #expect(patterns.count == 1000)
        let expected = try String(contentsOf: bench.appendingPathComponent("matches-\(workload).jsonl"), encoding: .utf8)
            .split(separator: "\n").map { line in
                (try JSONParser.parse(String(line))).arrayValue!.map { $0.numberValue!.intValue! }.sorted()
            }
        let events = try Self.events()
        #expect(events.count == 5000)
        #expect(expected.count == events.count)
        var matcher = PatternSet(patterns).makeMatcher()
        var differences: [String] = []
        var total = 0
        for (i, event) in events.enumerated() {
            let got = try matcher.matches(event)
            total += got.count
            if got != expected[i] { differences.append("event \(i): expected \(expected[i]), got \(got)") }
        }
        #expect(differences.isEmpty, Comment(rawValue: differences.prefix(10).joined(separator: "\n")))
        #expect(total > 0)
    }
}
