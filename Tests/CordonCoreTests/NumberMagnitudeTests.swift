import Foundation
import Testing

@testable import CordonCore
import CordonIntegrations

/// Numbers of any magnitude, in findings and in patterns, are handled: parsed, compared,
/// canonicalised and matched without a trap and without memory that grows with the
/// exponent. (A finding with `"severity": 8e100000000` used to crash the runner when the
/// shipped playbook canonicalised `incident.severity`, and a pattern with it crashed
/// `cordon match`.)
@Suite struct NumberMagnitudeTests {
    static let huge = ["8e100000000", "-8e100000000", "1e-100000000", "1e999999999999999999999", "-1E+18446744073709551616", "0e99999999999"]

    @Test(arguments: huge)
    func aHugeExponentParsesComparesAndCanonicalises(_ literal: String) throws {
        let value = try JSONParser.parse(#"{"n": \#(literal)}"#)
        let n = try #require(value["n"]?.numberValue)
        #expect(n.literal == literal)
        // intValue never writes out a huge exponent's zeros.
        #expect(n.intValue == (literal.hasPrefix("0e") ? 0 : nil))
        // The ECMAScript form of such a number is that of its double: ±Infinity (null,
        // as JSON.stringify writes it) or 0.
        let canonical = CanonicalJSON.number(n)
        #expect(["null", "0"].contains(canonical), "\(canonical)")
        #expect(n == n)
        _ = n.hashValue
        #expect(JSONNumber(literal: literal) != nil)
    }

    @Test func hugeNumbersCompareByValue() throws {
        func n(_ s: String) -> JSONNumber { JSONNumber(literal: s)! }
        #expect(n("8e100000000") > n("8e99999999"))
        #expect(n("-8e100000000") < n("-8e99999999"))
        #expect(n("1e-100000000") > n("0"))
        #expect(n("1e-100000000") < n("1e-99999999"))
        #expect(n("8e100000000") == n("80e99999999"))
    }

    /// As EventBridge: a number no double holds is refused in `numeric` with a message
    /// that says why, matches as written in an exact value, and an event's never
    /// satisfies a numeric comparison — nothing traps.
    @Test func patternsWithHugeNumbersAreRefusedOrMatchAsWritten() throws {
        #expect {
            try EventPattern(text: #"{"detail": {"severity": [{"numeric": [">", -8e100000000, "<", 8e100000000]}]}}"#)
        } throws: { error in
            (error as? PatternError)?.message.contains("cannot be compared") == true
        }
        let pattern = try EventPattern(text: #"{"detail": {"severity": [{"numeric": [">", -1e300, "<", 1e300]}], "n": [8e100000000]}}"#)
        var matcher = PatternSet([pattern]).makeMatcher()
        let inside = try JSONParser.parse(#"{"detail": {"severity": 5, "n": 8e100000000}}"#)
        let huge = try JSONParser.parse(#"{"detail": {"severity": 8e99999999, "n": 8e100000000}}"#)
        let rewritten = try JSONParser.parse(#"{"detail": {"severity": 5, "n": 80e99999999}}"#)
        #expect(matcher.matches(event: inside) == [0])
        #expect(matcher.matches(event: huge).isEmpty)
        #expect(matcher.matches(event: rewritten).isEmpty)
        // The raw bytes path (the one intake takes) agrees.
        #expect(try matcher.matches(Array(#"{"detail": {"severity": -1e-100000000, "n": 8e100000000}}"#.utf8)).isEmpty)
        #expect(try matcher.matches(Array(#"{"detail": {"severity": -1e-10, "n": 8e100000000}}"#.utf8)) == [0])
    }

    /// Every shipped playbook renders its incident and steps for a finding whose numbers
    /// are out of any double's range.
    @Test func shippedPlaybooksRenderAFindingWithAHugeSeverity() throws {
        let root = TestPaths.packageRoot
        let loaded = ConfigLoader(actions: .builtIn).load([root.appendingPathComponent("Playbooks").path], integrationPaths: [root.appendingPathComponent("Integrations").path])
        let fixture = TestPaths.fixtures.appendingPathComponent("playbooks/guardduty-iam-credential-compromise")
        let file = try #require(try FileManager.default.contentsOfDirectory(atPath: fixture.path).filter { $0.hasPrefix("fires") }.sorted().first)
        var text = try String(contentsOf: fixture.appendingPathComponent(file), encoding: .utf8)
        let severity = try #require(text.range(of: #""severity"\s*:\s*[0-9.]+"#, options: .regularExpression))
        text.replaceSubrange(severity, with: #""severity": 8e100000000"#)
        let event = try JSONParser.parse(text)
        for playbook in loaded.playbooks {
            let root = event.objectValue ?? [:]
            if let severity = try? playbook.incident.severity?.render(TemplateContext(root: root)).value {
                _ = CanonicalJSON.bytes(["severity": severity])
            }
            _ = try? playbook.incident.title?.render(TemplateContext(root: root))
        }
    }
}
