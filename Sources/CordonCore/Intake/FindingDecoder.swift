import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Turns whatever a finding source delivers into EventBridge-shaped events.
///
/// Auto-detected, in any combination: gzip; one JSON document, a JSON array, or JSON
/// Lines; EventBridge events; CloudTrail log files (`{"Records": [...]}`) and bare
/// CloudTrail records; GuardDuty findings as the API (`{"findings": [...]}`, camelCase)
/// or the CLI (`{"Findings": [...]}`, PascalCase) returns them, or bare; Security Hub
/// findings in ASFF; and SNS notifications, SQS messages (and `ReceiveMessage`
/// responses) and Lambda SQS/SNS event batches that carry any of these.
///
/// One bad record never loses the good ones: it becomes a `DecodeIssue` saying where
/// (file, line, byte offset, path) and what is wrong.
public struct FindingDecoder: Sendable {
    /// The most bytes an input may have (compressed or not).
    public var maxInputBytes: Int = 256 << 20
    /// The most bytes a gzip input may decompress to.
    public var maxDecompressedBytes: Int = 512 << 20
    /// How many envelopes (SNS in SQS in …) may be nested.
    public var maxEnvelopeDepth: Int = 8

    public init() {}

    /// Decodes a file (gzip or not).
    public func decode(fileAtPath path: String) -> DecodeResult {
        let origin = FindingOrigin(source: path)
        switch BoundedFile.read(path, limit: maxInputBytes, what: "a file of findings") {
        case .success(let bytes): return decode(bytes, source: path)
        case .failure(let error): return DecodeResult(issues: [DecodeIssue(origin: origin, message: error.message)])
        }
    }

    /// Decodes bytes that came from `source` (a file name, a queue, an HTTP request).
    public func decode(_ input: [UInt8], source: String) -> DecodeResult {
        var origin = FindingOrigin(source: source)
        guard input.count <= maxInputBytes else {
            origin.byteOffset = maxInputBytes
            return DecodeResult(issues: [
                DecodeIssue(origin: origin, message: "input is \(input.count) bytes, more than the limit of \(maxInputBytes)")
            ])
        }
        var bytes = input
        if Gzip.isGzip(bytes) {
            do {
                bytes = try Gzip.decompress(bytes, limit: maxDecompressedBytes)
            } catch {
                var at = origin
                at.byteOffset = error.compressedOffset ?? 0
                at.stream = .compressed
                let produced = error.decompressedBytes.map { " (\($0) bytes decompressed before it)" } ?? ""
                return DecodeResult(issues: [DecodeIssue(origin: at, message: error.message + produced)])
            }
            origin.stream = .decompressed
        }
        return decodeText(bytes, origin: origin)
    }

    /// Decodes one already-parsed JSON value (e.g. an HTTP body parsed by a server).
    public func decode(value: JSONValue, origin: FindingOrigin) -> DecodeResult {
        var result = DecodeResult()
        unwrap(value, origin: origin, depth: 0, into: &result)
        return result
    }

    // MARK: - Text: one document, an array, or JSON Lines

    private func decodeText(_ bytes: [UInt8], origin: FindingOrigin) -> DecodeResult {
        var result = DecodeResult()
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch let wholeError {
            if let lines = jsonLines(bytes) {
                for line in lines { decodeLine(bytes, line, origin: origin, into: &result) }
                return result
            }
            var at = origin
            at.line = wholeError.line
            at.byteOffset = wholeError.offset
            result.issues.append(DecodeIssue(origin: at, message: "invalid JSON: \(wholeError.message) (column \(wholeError.column))"))
            return result
        }
        unwrap(document, origin: origin, depth: 0, raw: bytes, into: &result)
        Self.locate(&result.issues, in: bytes[...], base: 0, countLines: true)
        return result
    }

    struct Line {
        var number: Int
        var range: Range<Int>
    }

    /// The non-blank lines, when the input looks like JSON Lines: at least two of them,
    /// the first a complete object or array on its own.
    private func jsonLines(_ bytes: [UInt8]) -> [Line]? {
        var lines: [Line] = []
        var start = 0
        var number = 1
        for i in 0...bytes.count {
            if i == bytes.count || bytes[i] == UInt8(ascii: "\n") {
                let range = start..<i
                if bytes[range].contains(where: { !($0 == 0x20 || $0 == 0x09 || $0 == 0x0D) }) {
                    lines.append(Line(number: number, range: range))
                }
                start = i + 1
                number += 1
            }
        }
        guard lines.count >= 2, let first = lines.first else { return nil }
        switch try? JSONParser.parse(Array(bytes[first.range])) {
        case .object?, .array?: return lines
        default: return nil
        }
    }

    private func decodeLine(_ bytes: [UInt8], _ line: Line, origin: FindingOrigin, into result: inout DecodeResult) {
        var at = origin
        at.line = line.number
        do {
            let value = try JSONParser.parse(Array(bytes[line.range]))
            let first = result.issues.count
            unwrap(value, origin: at, depth: 0, raw: Array(bytes[line.range]), into: &result)
            Self.locate(&result.issues[first...], in: bytes[line.range], base: line.range.lowerBound, countLines: false)
        } catch {
            at.byteOffset = line.range.lowerBound + error.offset
            result.issues.append(DecodeIssue(origin: at, message: "invalid JSON: \(error.message) (column \(error.column))"))
        }
    }

    // MARK: - Envelopes and shapes

    private func unwrap(_ value: JSONValue, origin: FindingOrigin, depth: Int, raw: [UInt8]? = nil, into result: inout DecodeResult) {
        guard depth <= maxEnvelopeDepth else {
            result.issues.append(DecodeIssue(origin: origin, message: "envelopes nested deeper than \(maxEnvelopeDepth) levels"))
            return
        }
        switch value {
        case .array(let elements):
            if elements.isEmpty {
                result.issues.append(DecodeIssue(origin: origin, message: "empty array: no findings"))
            }
            for (i, element) in elements.enumerated() {
                unwrap(element, origin: origin.appending("[\(i)]", .index(i)), depth: depth + 1, into: &result)
            }
        case .object(let o):
            unwrapObject(o, origin: origin, depth: depth, raw: raw, into: &result)
        default:
            result.issues.append(
                DecodeIssue(origin: origin, message: "expected a JSON object or array of findings, found \(value.typeName)"))
        }
    }

    private func unwrapObject(_ o: JSONObject, origin: FindingOrigin, depth: Int, raw: [UInt8]? = nil, into result: inout DecodeResult) {
        // An EventBridge event.
        if o["detail-type"] != nil || (o["source"] != nil && o["detail"] != nil) {
            if let problem = Self.eventBridgeProblem(o) {
                result.issues.append(DecodeIssue(origin: origin, message: problem))
            } else {
                result.findings.append(Finding(event: .object(o), format: .eventBridge, origin: origin, raw: raw))
            }
            return
        }
        // SNS: a notification (HTTP delivery, or the body an SNS→SQS subscription delivers).
        if let type = o["Type"]?.stringValue, o["TopicArn"] != nil || o["MessageId"] != nil {
            unwrapSNS(o, type: type, origin: origin, depth: depth, into: &result)
            return
        }
        // SQS: one message (ReceiveMessage element), or a ReceiveMessage response.
        if case .string(let body)? = o["Body"], o["MessageId"] != nil || o["ReceiptHandle"] != nil {
            unwrapEmbedded(body, what: "SQS Body", origin: origin.appending("SQS Body", .key("Body"), .embedded), depth: depth, into: &result)
            return
        }
        if case .array(let messages)? = o["Messages"] {
            for (i, m) in messages.enumerated() {
                unwrap(m, origin: origin.appending("Messages[\(i)]", .key("Messages"), .index(i)), depth: depth + 1, into: &result)
            }
            return
        }
        // {"Records": [...]}: a CloudTrail log file, or a Lambda SQS/SNS batch.
        if let records = o["Records"] {
            unwrapRecords(records, origin: origin, depth: depth, into: &result)
            return
        }
        // GuardDuty or Security Hub findings lists.
        for key in ["Findings", "findings"] {
            if let list = o[key] {
                unwrapFindingList(list, key: key, origin: origin, into: &result)
                return
            }
        }
        if Self.isCloudTrailRecord(o) {
            appendCloudTrail(o, origin: origin, into: &result)
            return
        }
        if appendBareFinding(o, origin: origin, into: &result) { return }
        result.issues.append(
            DecodeIssue(
                origin: origin,
                message: "not a recognised finding: expected an EventBridge event (source, detail-type, detail), a CloudTrail "
                    + "record or log file, a GuardDuty or Security Hub (ASFF) finding, or an SNS/SQS message carrying one"))
    }

    /// An SNS message: a notification's Message is unwrapped; other types are no finding.
    private func unwrapSNS(_ o: JSONObject, type: String, origin: FindingOrigin, depth: Int, into result: inout DecodeResult) {
        switch type {
        case "Notification":
            guard case .string(let message)? = o["Message"] else {
                result.issues.append(DecodeIssue(origin: origin, message: "SNS notification without a Message string"))
                return
            }
            unwrapEmbedded(message, what: "SNS Message", origin: origin.appending("SNS Message", .key("Message"), .embedded), depth: depth, into: &result)
        case "SubscriptionConfirmation", "UnsubscribeConfirmation":
            result.issues.append(DecodeIssue(origin: origin, message: "SNS \(type) message, not a finding (confirm subscriptions with `cordon run --listen`)"))
        default:
            result.issues.append(DecodeIssue(origin: origin, message: "SNS message of unknown Type \"\(type)\""))
        }
    }

    /// The `Records` of a CloudTrail log file or of a Lambda SQS/SNS batch: each record a
    /// CloudTrail record, or an SQS body or SNS message to unwrap.
    private func unwrapRecords(_ records: JSONValue, origin: FindingOrigin, depth: Int, into result: inout DecodeResult) {
        guard case .array(let elements) = records else {
            result.issues.append(DecodeIssue(origin: origin, message: "\"Records\" must be an array, found \(records.typeName)"))
            return
        }
        for (i, element) in elements.enumerated() {
            let at = origin.appending("Records[\(i)]", .key("Records"), .index(i))
            guard case .object(let record) = element else {
                result.issues.append(DecodeIssue(origin: at, message: "a record must be an object, found \(element.typeName)"))
                continue
            }
            if record["eventSource"]?.stringValue == "aws:sqs", case .string(let body)? = record["body"] {
                unwrapEmbedded(body, what: "SQS body", origin: at.appending("body", .key("body"), .embedded), depth: depth + 1, into: &result)
            } else if record["EventSource"]?.stringValue == "aws:sns", case .string(let message)? = record["Sns"]?["Message"] {
                unwrapEmbedded(message, what: "SNS Message", origin: at.appending("Sns.Message", .key("Sns"), .key("Message"), .embedded), depth: depth + 1, into: &result)
            } else if Self.isCloudTrailRecord(record) {
                appendCloudTrail(record, origin: at, into: &result)
            } else {
                result.issues.append(
                    DecodeIssue(origin: at, message: "not a CloudTrail record (needs eventSource, eventName, eventTime)"))
            }
        }
    }

    /// A GuardDuty or Security Hub findings list (`Findings` or `findings`).
    private func unwrapFindingList(_ list: JSONValue, key: String, origin: FindingOrigin, into result: inout DecodeResult) {
        guard case .array(let elements) = list else {
            result.issues.append(DecodeIssue(origin: origin, message: "\"\(key)\" must be an array, found \(list.typeName)"))
            return
        }
        if elements.isEmpty { result.issues.append(DecodeIssue(origin: origin, message: "\"\(key)\" is empty: no findings")) }
        for (i, element) in elements.enumerated() {
            let at = origin.appending("\(key)[\(i)]", .key(key), .index(i))
            guard case .object(let finding) = element else {
                result.issues.append(DecodeIssue(origin: at, message: "a finding must be an object, found \(element.typeName)"))
                continue
            }
            if !appendBareFinding(finding, origin: at, into: &result) {
                result.issues.append(
                    DecodeIssue(origin: at, message: "not a GuardDuty finding or a Security Hub (ASFF) finding"))
            }
        }
    }

    /// A JSON document carried as a string inside an envelope.
    private func unwrapEmbedded(_ text: String, what: String, origin: FindingOrigin, depth: Int, into result: inout DecodeResult) {
        do {
            let value = try JSONParser.parse(text)
            unwrap(value, origin: origin, depth: depth + 1, into: &result)
        } catch {
            result.issues.append(
                DecodeIssue(origin: origin, message: "\(what) is not valid JSON: \(error.message) (at byte \(error.offset) of the \(what))"))
        }
    }

    static func eventBridgeProblem(_ o: JSONObject) -> String? {
        guard case .string(let source)? = o["source"], !source.isEmpty else {
            return "EventBridge event without a \"source\" string"
        }
        guard case .string? = o["detail-type"] else { return "EventBridge event without a \"detail-type\" string" }
        if let detail = o["detail"], detail.objectValue == nil {
            return "EventBridge event's \"detail\" must be an object, found \(detail.typeName)"
        }
        return nil
    }
}
