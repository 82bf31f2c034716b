import Foundation
import Testing

@testable import CordonCore

/// The 649 EventBridge conformance cases from Fixtures/conformance/event-patterns.json.
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
        let url = TestPaths.fixtures.appendingPathComponent("conformance/event-patterns.json")
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

/// The cases of Fixtures/conformance/event-ruler-parity.json: where EventBridge's answer
/// is not obvious (IP addresses, numbers no double holds, case folding beyond ASCII,
/// reserved words), each computed by running aws/event-ruler 2.x. Cordon matches and
/// refuses exactly as it does.
@Suite struct EventRulerParityTests {
    static func load() throws -> JSONValue {
        try JSONParser.parse(try readBytes(TestPaths.fixtures.appendingPathComponent("conformance/event-ruler-parity.json")))
    }

    @Test func everyCaseMatchesAsEventRulerDoes() throws {
        let root = try Self.load()
        let cases = root["matches"]?.arrayValue ?? []
        #expect(cases.count >= 50)
        var failures: [String] = []
        for c in cases {
            let name = c["name"]?.stringValue ?? "?"
            guard let pattern = c["pattern"], let event = c["event"], let expected = c["matches"]?.boolValue else {
                failures.append("\(name): malformed case")
                continue
            }
            do {
                var matcher = PatternSet([try EventPattern(json: pattern)]).makeMatcher()
                // The event's bytes as written in the file (numbers keep their text).
                let got = try matcher.matches(JSONWriter.bytes(event)) == [0]
                if got != expected { failures.append("\(name): expected \(expected), got \(got): \(JSONWriter.string(pattern)) \(JSONWriter.string(event))") }
            } catch {
                failures.append("\(name): refused: \(error)")
            }
        }
        #expect(failures.isEmpty, Comment(rawValue: failures.joined(separator: "\n")))
    }

    @Test func everyRefusedPatternIsRefused() throws {
        let root = try Self.load()
        let cases = root["refused"]?.arrayValue ?? []
        #expect(cases.count >= 15)
        for c in cases {
            let name = c["name"]?.stringValue ?? "?"
            guard let pattern = c["pattern"] else {
                Issue.record("\(name): malformed case")
                continue
            }
            #expect(throws: PatternError.self, "\(name)") { try EventPattern(json: pattern) }
        }
    }
}
