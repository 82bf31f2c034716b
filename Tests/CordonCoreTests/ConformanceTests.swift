import Foundation
import Testing

@testable import CordonCore

/// The 649 EventBridge conformance cases from ../shared/conformance/event-patterns.json.
@Suite struct ConformanceTests {
    struct Case: CustomStringConvertible {
        var index: Int
        var part: String
        var pattern: JSONValue
        var event: JSONValue
        var matches: Bool
        var description: String { "\(part)[\(index)]" }
    }

    static func loadCases() throws -> [Case] {
        let url = TestPaths.shared.appendingPathComponent("conformance/event-patterns.json")
        let root = try JSONParser.parse(try readBytes(url))
        var cases: [Case] = []
        for part in ["asserted", "ruler_correctness"] {
            for (i, item) in (root[part]?.arrayValue ?? []).enumerated() {
                cases.append(
                    Case(
                        index: i, part: part, pattern: item["pattern"]!, event: item["event"]!,
                        matches: item["matches"]!.boolValue!))
            }
        }
        return cases
    }

    @Test func allCasesPassOneByOne() throws {
        let cases = try Self.loadCases()
        #expect(cases.count == 649)
        var failures: [String] = []
        for c in cases {
            do {
                let pattern = try EventPattern(json: c.pattern)
                var matcher = PatternSet([pattern]).makeMatcher()
                let got = try matcher.matches(JSONWriter.bytes(c.event)) == [0]
                if got != c.matches {
                    failures.append("\(c): expected \(c.matches), got \(got)\n  pattern \(c.pattern)\n  event \(c.event)")
                }
            } catch {
                failures.append("\(c): threw \(error)\n  pattern \(c.pattern)")
            }
        }
        #expect(failures.isEmpty, Comment(rawValue: "\(failures.count) failures:\n" + failures.prefix(30).joined(separator: "\n")))
    }

    /// The same cases with every pattern compiled into one set: sharing states must not
    /// change any answer.
    @Test func allCasesPassInOneSharedSet() throws {
        let cases = try Self.loadCases()
        let patterns = try cases.map { try EventPattern(json: $0.pattern) }
        let set = PatternSet(patterns)
        var matcher = set.makeMatcher()
        var failures: [String] = []
        for (i, c) in cases.enumerated() {
            let result = try matcher.matches(JSONWriter.bytes(c.event))
            // Which of the patterns that are textually identical to this case's pattern matched?
            let got = result.contains(i)
            if got != c.matches { failures.append("\(c): expected \(c.matches), got \(got)") }
        }
        #expect(failures.isEmpty, Comment(rawValue: "\(failures.count) failures:\n" + failures.prefix(30).joined(separator: "\n")))
    }
}
