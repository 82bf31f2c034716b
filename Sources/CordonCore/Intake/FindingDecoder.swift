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
        func issue(_ message: String) { result.issues.append(DecodeIssue(origin: origin, message: message)) }

        // An EventBridge event.
        if o["detail-type"] != nil || (o["source"] != nil && o["detail"] != nil) {
            if let problem = Self.eventBridgeProblem(o) { issue(problem); return }
            result.findings.append(Finding(event: .object(o), format: .eventBridge, origin: origin, raw: raw))
            return
        }
        // SNS: a notification (HTTP delivery, or the body an SNS→SQS subscription delivers).
        if let type = o["Type"]?.stringValue, o["TopicArn"] != nil || o["MessageId"] != nil {
            switch type {
            case "Notification":
                guard case .string(let message)? = o["Message"] else { issue("SNS notification without a Message string"); return }
                unwrapEmbedded(message, what: "SNS Message", origin: origin.appending("SNS Message", .key("Message"), .embedded), depth: depth, into: &result)
            case "SubscriptionConfirmation", "UnsubscribeConfirmation":
                issue("SNS \(type) message, not a finding (confirm subscriptions with `cordon run --listen`)")
            default:
                issue("SNS message of unknown Type \"\(type)\"")
            }
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
            guard case .array(let elements) = records else { issue("\"Records\" must be an array, found \(records.typeName)"); return }
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
            return
        }
        // GuardDuty or Security Hub findings lists.
        for key in ["Findings", "findings"] {
            if let list = o[key] {
                guard case .array(let elements) = list else { issue("\"\(key)\" must be an array, found \(list.typeName)"); return }
                if elements.isEmpty { issue("\"\(key)\" is empty: no findings") }
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
                return
            }
        }
        if Self.isCloudTrailRecord(o) {
            appendCloudTrail(o, origin: origin, into: &result)
            return
        }
        if appendBareFinding(o, origin: origin, into: &result) { return }
        issue(
            "not a recognised finding: expected an EventBridge event (source, detail-type, detail), a CloudTrail "
                + "record or log file, a GuardDuty or Security Hub (ASFF) finding, or an SNS/SQS message carrying one")
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

    // MARK: - CloudTrail

    static func isCloudTrailRecord(_ o: JSONObject) -> Bool {
        o["eventSource"]?.stringValue != nil && o["eventName"]?.stringValue != nil && o["eventTime"] != nil
    }

    private func appendCloudTrail(_ record: JSONObject, origin: FindingOrigin, into result: inout DecodeResult) {
        guard let eventSource = record["eventSource"]?.stringValue, let eventTime = record["eventTime"]?.stringValue else {
            result.issues.append(DecodeIssue(origin: origin, message: "CloudTrail record with a non-string eventSource or eventTime"))
            return
        }
        let service = eventSource.hasSuffix(".amazonaws.com") ? String(eventSource.dropLast(".amazonaws.com".count)) : eventSource
        let detailType: String
        switch record["eventType"]?.stringValue {
        case "AwsConsoleSignIn"?: detailType = "AWS Console Sign In via CloudTrail"
        case "AwsServiceEvent"?: detailType = "AWS Service Event via CloudTrail"
        case "AwsCloudTrailInsight"?: detailType = "AWS Insight via CloudTrail"
        default: detailType = "AWS API Call via CloudTrail"
        }
        let account = record["recipientAccountId"]?.stringValue ?? record["userIdentity"]?["accountId"]?.stringValue
        var event = JSONObject()
        event["version"] = "0"
        event["id"] = .string(record["eventID"]?.stringValue ?? "cloudtrail-\(eventSource)-\(eventTime)")
        event["detail-type"] = .string(detailType)
        event["source"] = .string("aws." + service)
        event["account"] = account.map(JSONValue.string) ?? .null
        event["time"] = .string(eventTime)
        event["region"] = record["awsRegion"] ?? .null
        event["resources"] = .array([])
        event["detail"] = .object(record)
        result.findings.append(Finding(event: .object(event), format: .cloudTrailRecord, origin: origin))
    }

    // MARK: - GuardDuty and Security Hub

    /// Wraps a bare GuardDuty or ASFF finding; false when it is neither.
    private func appendBareFinding(_ o: JSONObject, origin: FindingOrigin, into result: inout DecodeResult) -> Bool {
        if o["ProductArn"] != nil, o["AwsAccountId"] != nil, o["SchemaVersion"] != nil {
            result.findings.append(Finding(event: Self.wrapSecurityHub(o), format: .securityHubFinding, origin: origin))
            return true
        }
        if o["schemaVersion"] != nil, o["type"] != nil, o["accountId"] != nil, o["resource"] != nil {
            result.findings.append(Finding(event: Self.wrapGuardDuty(o), format: .guardDutyFinding, origin: origin))
            return true
        }
        if o["SchemaVersion"] != nil, o["Type"] != nil, o["AccountId"] != nil, o["Resource"] != nil {
            // The AWS CLI prints GuardDuty findings with PascalCase keys; EventBridge (and
            // so every playbook) uses the API's camelCase.
            guard case .object(let camel) = Self.camelCased(.object(o)) else { return false }
            result.findings.append(Finding(event: Self.wrapGuardDuty(camel), format: .guardDutyFinding, origin: origin))
            return true
        }
        return false
    }

    static func wrapGuardDuty(_ finding: JSONObject) -> JSONValue {
        var event = JSONObject()
        event["version"] = "0"
        event["id"] = finding["id"] ?? .null
        event["detail-type"] = "GuardDuty Finding"
        event["source"] = "aws.guardduty"
        event["account"] = finding["accountId"] ?? .null
        event["time"] = finding["updatedAt"] ?? finding["createdAt"] ?? .null
        event["region"] = finding["region"] ?? .null
        event["resources"] = .array([])
        event["detail"] = .object(finding)
        return .object(event)
    }

    static func wrapSecurityHub(_ finding: JSONObject) -> JSONValue {
        var event = JSONObject()
        event["version"] = "0"
        event["id"] = finding["Id"] ?? .null
        event["detail-type"] = "Security Hub Findings - Imported"
        event["source"] = "aws.securityhub"
        event["account"] = finding["AwsAccountId"] ?? .null
        event["time"] = finding["UpdatedAt"] ?? .null
        var region = finding["Region"]
        if region == nil, let arn = finding["ProductArn"]?.stringValue {
            let parts = arn.split(separator: ":", omittingEmptySubsequences: false)
            if parts.count > 3, !parts[3].isEmpty { region = .string(String(parts[3])) }
        }
        event["region"] = region ?? .null
        event["resources"] = finding["Id"].map { .array([$0]) } ?? .array([])
        event["detail"] = .object(["findings": .array([.object(finding)])])
        return .object(event)
    }

    /// Lower-cases the first letter of every key, recursively.
    static func camelCased(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let o):
            var out = JSONObject()
            for (key, member) in o {
                let camel = key.isEmpty ? key : key.prefix(1).lowercased() + key.dropFirst()
                out[camel] = camelCased(member)
            }
            return .object(out)
        case .array(let elements):
            return .array(elements.map(camelCased))
        default:
            return value
        }
    }

    // MARK: - Locating problems

    /// Gives each issue that has no byte offset yet the offset (and, for a whole
    /// document, the line) of the value its steps lead to in `bytes`: the record itself,
    /// or the envelope string it came out of.
    static func locate(_ issues: inout ArraySlice<DecodeIssue>, in bytes: ArraySlice<UInt8>, base: Int, countLines: Bool) {
        guard issues.contains(where: { $0.origin.byteOffset == nil }) else { return }
        var locator = JSONLocator(bytes)
        for i in issues.indices where issues[i].origin.byteOffset == nil {
            var steps = issues[i].origin.steps
            if let envelope = steps.firstIndex(of: .embedded) { steps = Array(steps[..<envelope]) }
            let offset = locator.offset(of: steps) ?? bytes.startIndex
            issues[i].origin.byteOffset = base + (offset - bytes.startIndex)
            if countLines { issues[i].origin.line = locator.line(at: offset) }
        }
    }

    static func locate(_ issues: inout [DecodeIssue], in bytes: ArraySlice<UInt8>, base: Int, countLines: Bool) {
        var all = issues[...]
        locate(&all, in: bytes, base: base, countLines: countLines)
        issues = Array(all)
    }
}

/// Finds where a value is in JSON text, following array indexes and object keys, without
/// building the values: the text was parsed already, so it is well-formed. The offsets of
/// a container's elements are found once, so locating many records of one large array
/// reads it once.
struct JSONLocator {
    let bytes: ArraySlice<UInt8>
    /// Container start → the offsets of its elements (arrays) or of its members' values
    /// by key (objects; the last of duplicate keys, the one parsed).
    private var elements: [Int: [Int]] = [:]
    private var members: [Int: [String: Int]] = [:]
    private var lineStarts: [Int]?

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
    }

    /// The index in `bytes` of the first byte of the value at `steps` (`.embedded` steps
    /// are not followed), or nil when the text does not have it.
    mutating func offset(of steps: [FindingOrigin.Step]) -> Int? {
        var i = Self.skipSpace(bytes, bytes.startIndex)
        for step in steps {
            guard i < bytes.endIndex else { return nil }
            switch step {
            case .embedded:
                return i
            case .index(let wanted):
                if elements[i] == nil { elements[i] = Self.elementOffsets(bytes, i) ?? [] }
                guard let list = elements[i], wanted < list.count else { return nil }
                i = list[wanted]
            case .key(let wanted):
                if members[i] == nil { members[i] = Self.memberOffsets(bytes, i) ?? [:] }
                guard let found = members[i]?[wanted] else { return nil }
                i = found
            }
        }
        return i
    }

    /// The line (from 1) of an index.
    mutating func line(at offset: Int) -> Int {
        if lineStarts == nil {
            var starts = [bytes.startIndex]
            for i in bytes.indices where bytes[i] == UInt8(ascii: "\n") { starts.append(i + 1) }
            lineStarts = starts
        }
        let starts = lineStarts ?? [bytes.startIndex]
        // The last line start at or before the offset.
        var low = 0, high = starts.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if starts[mid] <= offset { low = mid } else { high = mid - 1 }
        }
        return low + 1
    }

    static func elementOffsets(_ b: ArraySlice<UInt8>, _ start: Int) -> [Int]? {
        guard start < b.endIndex, b[start] == UInt8(ascii: "[") else { return nil }
        var out: [Int] = []
        var i = skipSpace(b, start + 1)
        while i < b.endIndex, b[i] != UInt8(ascii: "]") {
            out.append(i)
            guard let after = skipValue(b, i) else { return out }
            i = skipSpace(b, after)
            guard i < b.endIndex, b[i] == UInt8(ascii: ",") else { break }
            i = skipSpace(b, i + 1)
        }
        return out
    }

    static func memberOffsets(_ b: ArraySlice<UInt8>, _ start: Int) -> [String: Int]? {
        guard start < b.endIndex, b[start] == UInt8(ascii: "{") else { return nil }
        var out: [String: Int] = [:]
        var i = skipSpace(b, start + 1)
        while i < b.endIndex, b[i] == UInt8(ascii: "\"") {
            guard let keyEnd = skipString(b, i) else { return out }
            let key = decodeKey(b[i..<keyEnd])
            i = skipSpace(b, keyEnd)
            guard i < b.endIndex, b[i] == UInt8(ascii: ":") else { return out }
            i = skipSpace(b, i + 1)
            out[key] = i
            guard let after = skipValue(b, i) else { return out }
            i = skipSpace(b, after)
            guard i < b.endIndex, b[i] == UInt8(ascii: ",") else { break }
            i = skipSpace(b, i + 1)
        }
        return out
    }

    static func skipSpace(_ b: ArraySlice<UInt8>, _ from: Int) -> Int {
        var i = from
        while i < b.endIndex, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0A || b[i] == 0x0D { i += 1 }
        return i
    }

    /// The index after the string that starts at `from` (a quote).
    static func skipString(_ b: ArraySlice<UInt8>, _ from: Int) -> Int? {
        var i = from + 1
        while i < b.endIndex {
            switch b[i] {
            case UInt8(ascii: "\\"): i += 2
            case UInt8(ascii: "\""): return i + 1
            default: i += 1
            }
        }
        return nil
    }

    /// The index after the value that starts at `from`.
    static func skipValue(_ b: ArraySlice<UInt8>, _ from: Int) -> Int? {
        guard from < b.endIndex else { return nil }
        switch b[from] {
        case UInt8(ascii: "\""):
            return skipString(b, from)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            var i = from
            while i < b.endIndex {
                switch b[i] {
                case UInt8(ascii: "\""):
                    guard let after = skipString(b, i) else { return nil }
                    i = after
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { return i + 1 }
                default: break
                }
                i += 1
            }
            return nil
        default:
            var i = from
            while i < b.endIndex, !(b[i] == UInt8(ascii: ",") || b[i] == UInt8(ascii: "}") || b[i] == UInt8(ascii: "]") || b[i] <= 0x20) { i += 1 }
            return i
        }
    }

    /// A key's text: its escapes decoded when it has any.
    static func decodeKey(_ quoted: ArraySlice<UInt8>) -> String {
        let inner = quoted.dropFirst().dropLast()
        if !inner.contains(UInt8(ascii: "\\")) { return String(decoding: inner, as: UTF8.self) }
        return (try? JSONParser.parse(Array(quoted)))?.stringValue ?? String(decoding: inner, as: UTF8.self)
    }
}
