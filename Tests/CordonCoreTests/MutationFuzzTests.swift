import Foundation
import Testing

@testable import CordonCore

/// Mangled input must give an error or an answer, never a crash or a hang: random byte
/// flips, insertions, deletions and truncations of real findings, through the strict
/// parser, the matcher's flattener and the intake decoder.
@Suite struct MutationFuzzTests {
    @Test func mangledFindingsNeverCrash() throws {
        let seeds = try [
            "guardduty/ec2-ssh-brute-force.json", "cloudtrail/log-file.json", "securityhub/asff-batch.json",
        ].map { try readBytes(TestPaths.fixtures.appendingPathComponent("findings/" + $0)) }
        let patterns = try [
            #"{"detail": {"severity": [{"numeric": [">", 5]}], "resource": {"instanceDetails": {"tags": {"key": ["env"], "value": [{"anything-but": "dev"}]}}}}}"#,
            #"{"detail": {"service": {"action": {"networkConnectionAction": {"remoteIpDetails": {"ipAddressV4": [{"cidr": "198.51.100.0/24"}]}}}}}}"#,
            #"{"Records": {"eventName": [{"wildcard": "*Key*"}], "userIdentity": {"type": [{"exists": true}]}}}"#,
            #"{"Findings": {"Resources": {"Type": [{"prefix": "Aws"}]}}}"#,
        ].map { try EventPattern(text: $0) }
        var matcher = PatternSet(patterns).makeMatcher()
        let decoder = FindingDecoder()
        var rng = DifferentialTests.RNG(state: 42)
        let alphabet = Array(#"{}[]",:\\u0"#.utf8) + [0x00, 0x1F, 0x7F, 0xC3, 0xFF, UInt8(ascii: "e"), UInt8(ascii: "-")]
        var parsed = 0
        var rejected = 0
        for round in 0..<6_000 {
            var bytes = seeds[round % seeds.count]
            for _ in 0..<(1 + rng.int(4)) {
                guard !bytes.isEmpty else { break }
                let at = rng.int(bytes.count)
                switch rng.int(4) {
                case 0: bytes[at] = rng.pick(alphabet)
                case 1: bytes.insert(rng.pick(alphabet), at: at)
                case 2: bytes.remove(at: at)
                default: bytes.removeLast(rng.int(bytes.count - at + 1))
                }
            }
            if (try? JSONParser.parse(bytes)) != nil { parsed += 1 } else { rejected += 1 }
            _ = try? matcher.matches(bytes)
            _ = decoder.decode(bytes, source: "fuzz")
        }
        // Both outcomes occur, so both code paths were exercised.
        #expect(parsed > 100)
        #expect(rejected > 100)
    }
}
