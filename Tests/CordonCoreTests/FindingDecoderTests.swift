import Foundation
import Testing

@testable import CordonCore

@Suite struct FindingDecoderTests {
    let decoder = FindingDecoder()

    func decode(_ text: String, source: String = "test") -> DecodeResult {
        decoder.decode(Array(text.utf8), source: source)
    }

    func fixture(_ path: String) -> String { TestPaths.fixtures.appendingPathComponent("findings/" + path).path }

    @Test func everyFixtureDecodesWithoutIssues() throws {
        let root = TestPaths.fixtures.appendingPathComponent("findings")
        let files = try FileManager.default.subpathsOfDirectory(atPath: root.path).filter { $0.hasSuffix(".json") }
        #expect(files.count >= 25)
        var guardDutyTypes: Set<String> = []
        for file in files {
            let result = decoder.decode(fileAtPath: root.appendingPathComponent(file).path)
            #expect(result.issues.isEmpty, "\(file): \(result.issues)")
            #expect(!result.findings.isEmpty, "\(file)")
            for finding in result.findings {
                #expect(finding.source?.hasPrefix("aws.") == true, "\(file)")
                #expect(finding.detailType != nil, "\(file)")
                #expect(finding.event["detail"]?.objectValue != nil, "\(file)")
                if finding.detailType == "GuardDuty Finding", let type = finding.event["detail"]?["type"]?.stringValue {
                    guardDutyTypes.insert(type)
                }
            }
        }
        #expect(guardDutyTypes.count >= 10)
        for family in ["EC2/", "IAMUser/", "S3/", "Kubernetes/"] {
            #expect(guardDutyTypes.contains { $0.contains(family) }, "no \(family) finding")
        }
    }

    @Test func guardDutyCLIOutputBecomesCamelCaseEvents() throws {
        let result = decoder.decode(fileAtPath: fixture("guardduty/get-findings-output.json"))
        #expect(result.issues.isEmpty)
        #expect(result.findings.count == 2)
        let first = try #require(result.findings.first)
        #expect(first.format == .guardDutyFinding)
        #expect(first.detailType == "GuardDuty Finding")
        #expect(first.source == "aws.guardduty")
        #expect(first.event["detail"]?["resource"]?["resourceType"] != nil)
        #expect(first.event["detail"]?["Resource"] == nil)
        #expect(first.id == first.event["detail"]?["id"]?.stringValue)
        #expect(first.event["account"] == first.event["detail"]?["accountId"])
        #expect(first.origin.path == ["Findings[0]"])
    }

    @Test func guardDutyAPIResponseDecodes() {
        let result = decoder.decode(fileAtPath: fixture("guardduty/get-findings-api-response.json"))
        #expect(result.issues.isEmpty)
        #expect(result.findings.count >= 1)
        #expect(result.findings.allSatisfy { $0.format == .guardDutyFinding && $0.detailType == "GuardDuty Finding" })
    }

    @Test func cloudTrailLogFileRecordsBecomeEvents() throws {
        let result = decoder.decode(fileAtPath: fixture("cloudtrail/log-file.json"))
        #expect(result.issues.isEmpty)
        #expect(result.findings.count == 3)
        for (i, finding) in result.findings.enumerated() {
            #expect(finding.format == .cloudTrailRecord)
            #expect(finding.detailType == "AWS API Call via CloudTrail")
            let eventSource = try #require(finding.event["detail"]?["eventSource"]?.stringValue)
            #expect(finding.source == "aws." + eventSource.replacingOccurrences(of: ".amazonaws.com", with: ""))
            #expect(finding.id == finding.event["detail"]?["eventID"]?.stringValue)
            #expect(finding.event["region"] == finding.event["detail"]?["awsRegion"])
            #expect(finding.origin.path == ["Records[\(i)]"])
        }
    }

    @Test func bareCloudTrailConsoleSignInGetsItsDetailType() throws {
        let record = #"{"eventVersion":"1.08","userIdentity":{"type":"Root","accountId":"111122223333"},"eventTime":"2026-03-01T10:00:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","eventID":"e1","eventType":"AwsConsoleSignIn","recipientAccountId":"111122223333"}"#
        let result = decode(record)
        let finding = try #require(result.findings.first)
        #expect(finding.detailType == "AWS Console Sign In via CloudTrail")
        #expect(finding.source == "aws.signin")
        #expect(finding.event["account"] == "111122223333")
    }

    @Test func securityHubBatchWrapsEachFinding() throws {
        let result = decoder.decode(fileAtPath: fixture("securityhub/asff-batch.json"))
        #expect(result.issues.isEmpty)
        #expect(result.findings.count == 2)
        for finding in result.findings {
            #expect(finding.format == .securityHubFinding)
            #expect(finding.detailType == "Security Hub Findings - Imported")
            #expect(finding.source == "aws.securityhub")
            #expect(finding.event["detail"]?["findings"]?[0]?["ProductArn"] != nil)
            #expect(finding.event["region"]?.stringValue?.isEmpty == false)
        }
    }

    @Test func jsonLinesKeepGoodRecordsAroundABadOne() throws {
        let text = """
            {"source":"aws.guardduty","detail-type":"GuardDuty Finding","id":"a","detail":{}}
            {"source":"aws.guardduty","detail-type":"GuardDuty Finding","id":"b","detail":{
            
            {"source":"aws.guardduty","detail-type":"GuardDuty Finding","id":"c","detail":{}}
            "just a string"
            """
        let result = decode(text, source: "in.jsonl")
        #expect(result.findings.map(\.id) == ["a", "c"])
        #expect(result.findings.map(\.origin.line) == [1, 4])
        #expect(result.issues.count == 2)
        let bad = try #require(result.issues.first)
        #expect(bad.origin.line == 2)
        // The error is at the end of line 2: its offset counts from the start of the file.
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let endOfLineTwo = lines[0].utf8.count + 1 + lines[1].utf8.count
        #expect(bad.origin.byteOffset == endOfLineTwo)
        #expect(bad.description.hasPrefix("in.jsonl:2 (byte \(endOfLineTwo)): invalid JSON"))
        #expect(result.issues[1].origin.line == 5)
        #expect(result.issues[1].message.contains("found string"))
    }

    @Test func gzippedJSONLinesDecode() throws {
        let text = (0..<50).map { #"{"source":"aws.guardduty","detail-type":"GuardDuty Finding","id":"f\#($0)","detail":{"n":\#($0)}}"# }
            .joined(separator: "\n") + "\n"
        let gz = try Gzip.compress(Array(text.utf8))
        #expect(Gzip.isGzip(gz))
        let result = decoder.decode(gz, source: "x.jsonl.gz")
        #expect(result.issues.isEmpty)
        #expect(result.findings.count == 50)
        #expect(result.findings.last?.event["detail"]?["n"] == 49)
        // Two gzip members back to back (cat a.gz b.gz) are one stream.
        let twice = decoder.decode(gz + gz, source: "x2.gz")
        #expect(twice.findings.count == 100)
    }

    @Test func corruptAndOversizedGzipAreIssues() throws {
        let gz = try Gzip.compress(Array(String(repeating: "{}", count: 1000).utf8))
        let truncated = decoder.decode(Array(gz.prefix(gz.count / 2)), source: "t.gz")
        #expect(truncated.findings.isEmpty)
        #expect(truncated.issues.first?.message.contains("truncated") == true)
        var corrupt = gz
        corrupt[12] ^= 0xFF
        corrupt[13] ^= 0xFF
        #expect(decoder.decode(corrupt, source: "c.gz").issues.first?.message.contains("gzip") == true)
        // A gzip bomb: 64 MiB of zeros compresses to ~64 KiB.
        let bomb = try Gzip.compress([UInt8](repeating: 0x20, count: 64 << 20), level: 9)
        var small = FindingDecoder()
        small.maxDecompressedBytes = 1 << 20
        let result = small.decode(bomb, source: "bomb.gz")
        #expect(result.issues.first?.message.contains("exceeds the limit") == true)
    }

    @Test func jsonArraysOfEventsDecodeElementByElement() {
        let text = #"[{"source":"aws.ec2","detail-type":"X","detail":{}}, 42, {"source":"aws.ec2","detail-type":"Y","detail":{}}]"#
        let result = decode(text)
        #expect(result.findings.map(\.detailType) == ["X", "Y"])
        #expect(result.issues.map(\.origin.path) == [["[1]"]])
    }

    @Test func snsAndSQSEnvelopesAreUnwrapped() throws {
        let event = #"{"source":"aws.guardduty","detail-type":"GuardDuty Finding","id":"inner","detail":{"severity":8}}"#
        let sns = JSONValue.object([
            "Type": "Notification", "MessageId": "m1", "TopicArn": "arn:aws:sns:us-east-1:111122223333:findings",
            "Message": .string(event),
        ])
        let sqs = JSONValue.object(["MessageId": "q1", "ReceiptHandle": "rh", "Body": .string(JSONWriter.string(sns))])
        let receive = JSONValue.object(["Messages": .array([sqs, sqs])])
        let result = decode(JSONWriter.string(receive))
        #expect(result.issues.isEmpty)
        #expect(result.findings.count == 2)
        #expect(result.findings[0].id == "inner")
        #expect(result.findings[1].origin.path == ["Messages[1]", "SQS Body", "SNS Message"])
        let lambda = JSONValue.object([
            "Records": .array([
                .object(["messageId": "1", "eventSource": "aws:sqs", "body": .string(event)]),
                .object(["EventSource": "aws:sns", "Sns": .object(["Message": .string(event)])]),
            ])
        ])
        #expect(decode(JSONWriter.string(lambda)).findings.count == 2)
        let bad = JSONValue.object(["Type": "Notification", "MessageId": "m", "Message": "not json"])
        #expect(decode(JSONWriter.string(bad)).issues.first?.message.contains("SNS Message is not valid JSON") == true)
        let confirmation = JSONValue.object(["Type": "SubscriptionConfirmation", "MessageId": "m", "TopicArn": "t"])
        #expect(decode(JSONWriter.string(confirmation)).issues.first?.message.contains("not a finding") == true)
    }

    @Test func unrecognisedShapesSayWhatWasExpected() {
        let result = decode(#"{"hello": "world"}"#, source: "x.json")
        #expect(result.findings.isEmpty)
        #expect(result.issues.first?.description.hasPrefix("x.json:1 (byte 0): not a recognised finding") == true, "\(result.issues)")
        #expect(decode(#"{"source": 5, "detail-type": "x", "detail": {}}"#).issues.first?.message.contains("source") == true)
        #expect(decode(#"{"source": "a", "detail-type": "x", "detail": []}"#).issues.first?.message.contains("detail") == true)
        #expect(decode("not json at all").issues.first?.message.contains("invalid JSON") == true)
        #expect(decode(#"{"Records": {}}"#).issues.first?.message.contains("must be an array") == true)
    }

    @Test func largeIntegersSurviveDecoding() throws {
        let result = decode(#"{"source":"s","detail-type":"d","detail":{"count":123456789012345678901234567890}}"#)
        #expect(result.findings.first?.event["detail"]?["count"]?.numberValue?.literal == "123456789012345678901234567890")
    }

    @Test func missingAndUnreadableFilesAreIssues() {
        let missing = decoder.decode(fileAtPath: "/nonexistent/cordon/file.json")
        #expect(missing.issues.first?.message.contains("cannot read") == true)
        let directory = decoder.decode(fileAtPath: TestPaths.fixtures.path)
        #expect(directory.issues.first?.message.contains("directory") == true)
    }

    /// A finding that was a document of its own keeps the bytes it arrived as (its
    /// evidence); a wrapped one, or one whose event is changed, does not.
    @Test func keepsTheBytesReceivedOnlyForUnchangedDocuments() throws {
        let text = #"{"version":"0", "id":"e1","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"1","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":[],"detail":{"id":"f1"}}"#
        var finding = try #require(decode(text).findings.first)
        #expect(finding.raw == Array(text.utf8))
        let lines = decode(text + "\n" + text.replacingOccurrences(of: "\"e1\"", with: "\"e2\""))
        #expect(lines.findings.count == 2)
        #expect(lines.findings[1].raw == Array(text.replacingOccurrences(of: "\"e1\"", with: "\"e2\"").utf8))
        let wrapped = decode("[" + text + "]")
        #expect(wrapped.findings.first?.raw == nil)
        finding.event = ["id": "changed"]
        #expect(finding.raw == nil)
    }
}
