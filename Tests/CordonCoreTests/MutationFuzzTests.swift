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

    /// Every decode error says where: the source, and the line and byte offset (in a gzip
    /// input, of the decompressed text, or of the compressed stream for a problem with
    /// the compression itself), for mangled documents, JSON Lines, envelopes within
    /// envelopes and gzip.
    @Test func everyDecodeErrorSaysWhere() throws {
        let event = #"{"version":"0","id":"e-1","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"1","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":[],"detail":{"id":"f-1","type":"X","severity":5}}"#
        let sns = #"{"Type":"Notification","MessageId":"m-1","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":\#(JSONWriter.string(.string(event)))}"#
        let sqs = #"{"Messages":[{"MessageId":"q-1","ReceiptHandle":"r","Body":\#(JSONWriter.string(.string(sns)))},{"MessageId":"q-2","ReceiptHandle":"r","Body":\#(JSONWriter.string(.string(event)))}]}"#
        let lines = [event, sns, "[" + event + "," + event + "]"].joined(separator: "\n")
        var seeds = try [
            "guardduty/ec2-ssh-brute-force.json", "cloudtrail/log-file.json", "securityhub/asff-batch.json",
        ].map { try readBytes(TestPaths.fixtures.appendingPathComponent("findings/" + $0)) }
        seeds += [Array(sqs.utf8), Array(lines.utf8), Array(("[" + event + "," + sns + "]").utf8)]
        let decoder = FindingDecoder()
        var rng = DifferentialTests.RNG(state: 7)
        let alphabet = Array(#"{}[]",:\u0"#.utf8) + [0x00, 0x0A, 0x1F, 0xC3, 0xFF, UInt8(ascii: "e"), UInt8(ascii: "-"), UInt8(ascii: "s")]
        var issues = 0
        var kinds: Set<String> = []
        for round in 0..<4_000 {
            var bytes = seeds[round % seeds.count]
            let gzipMode = round % 5  // 0: gzip then mangle the compressed bytes; 1: mangle then gzip
            for _ in 0..<(1 + rng.int(3)) where gzipMode != 0 {
                guard !bytes.isEmpty else { break }
                let at = rng.int(bytes.count)
                switch rng.int(5) {
                case 0: bytes[at] = rng.pick(alphabet)
                case 1: bytes.insert(rng.pick(alphabet), at: at)
                case 2: bytes.remove(at: at)
                case 3: bytes.removeLast(rng.int(bytes.count - at + 1))
                default:
                    // Drop a well-known key, so the document parses but is not a finding.
                    let text = String(decoding: bytes, as: UTF8.self)
                    let key = rng.pick(["\"source\"", "\"detail-type\"", "\"Message\"", "\"eventName\"", "\"Body\""])
                    bytes = Array(text.replacingOccurrences(of: key, with: "\"x\(round)\"").utf8)
                }
            }
            if gzipMode <= 1 {
                bytes = try Gzip.compress(bytes)
                if gzipMode == 0 {
                    for _ in 0..<(1 + rng.int(2)) {
                        let at = 10 + rng.int(max(1, bytes.count - 10))
                        if rng.int(3) == 0 { bytes.removeLast(bytes.count - min(at, bytes.count)) } else if at < bytes.count { bytes[at] ^= UInt8(1 + rng.int(255)) }
                    }
                }
            }
            for issue in decoder.decode(bytes, source: "fuzz").issues {
                issues += 1
                let origin = issue.origin
                #expect(origin.source == "fuzz")
                #expect(origin.byteOffset != nil, "no byte offset: \(issue)")
                #expect(origin.line != nil || origin.stream == .compressed, "no line: \(issue)")
                if origin.stream == .plain { #expect((origin.byteOffset ?? 0) <= bytes.count, "\(issue)") }
                if origin.stream == .compressed { #expect((origin.byteOffset ?? 0) <= bytes.count, "\(issue)") }
                #expect(issue.description.hasPrefix("fuzz:") || issue.description.hasPrefix("fuzz (byte "), "\(issue)")
                #expect(!issue.description.contains("\n"), "one line: \(issue)")
                if origin.stream == .compressed { kinds.insert("gzip") }
                if origin.path.contains(where: { $0.contains("Message") || $0.contains("Body") }) { kinds.insert("envelope") }
                if origin.path.isEmpty && origin.stream != .compressed { kinds.insert("document") }
                if issue.message.contains("without a") { kinds.insert("shape") }
            }
        }
        #expect(issues > 1_000)
        #expect(kinds == ["gzip", "envelope", "document", "shape"], "every kind of error was made: \(kinds)")
    }
}
