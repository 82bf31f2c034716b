/// One finding as Cordon sees it: an EventBridge-shaped event (whatever envelope it
/// arrived in), with where it came from.
public struct Finding: Sendable, Equatable {
    /// The event, in the EventBridge envelope (`version`, `id`, `detail-type`, `source`,
    /// `account`, `time`, `region`, `resources`, `detail`). Playbook triggers match this.
    public var event: JSONValue {
        // The bytes received no longer describe a changed event.
        didSet { raw = nil }
    }
    /// What the input held before it was wrapped.
    public var format: FindingFormat
    public var origin: FindingOrigin
    /// The bytes it arrived as, when the event was the whole input document (or line)
    /// unchanged: kept as the finding's evidence, exactly as received. Cleared when
    /// `event` is changed.
    public private(set) var raw: [UInt8]?

    public init(event: JSONValue, format: FindingFormat, origin: FindingOrigin, raw: [UInt8]? = nil) {
        self.event = event
        self.format = format
        self.origin = origin
        self.raw = raw
    }

    public static func == (a: Finding, b: Finding) -> Bool {
        a.event == b.event && a.format == b.format && a.origin == b.origin
    }

    /// The event's `id`.
    public var id: String? { event["id"]?.stringValue }
    public var source: String? { event["source"]?.stringValue }
    public var detailType: String? { event["detail-type"]?.stringValue }
}

/// The shape a finding arrived in.
public enum FindingFormat: String, Sendable, Equatable, CaseIterable {
    /// Already an EventBridge event.
    case eventBridge = "eventbridge"
    /// A CloudTrail record (from a log file, or bare), wrapped as a CloudTrail event.
    case cloudTrailRecord = "cloudtrail-record"
    /// A GuardDuty finding as the GuardDuty API or CLI returns it, wrapped as `GuardDuty Finding`.
    case guardDutyFinding = "guardduty-finding"
    /// A Security Hub finding in ASFF, wrapped as `Security Hub Findings - Imported`.
    case securityHubFinding = "securityhub-asff"
}

/// Where a finding or a decoding problem sits in the input: the source (usually a file
/// name), the line, the byte offset, and the path inside the record (array indexes,
/// `Records[3]`, an SNS `Message`…). Inside an envelope (an SNS message, an SQS body:
/// JSON carried in a string) the line and byte are those of the envelope's string in
/// the outer input, and the path goes on inside it. In a gzip input, the line and byte
/// are in the decompressed text, and a problem with the compression itself gives the
/// byte of the compressed stream where it was found.
public struct FindingOrigin: Sendable, Equatable, CustomStringConvertible {
    public var source: String
    public var line: Int?
    public var byteOffset: Int?
    public var path: [String]
    /// Which stream `byteOffset` counts in.
    public var stream: Stream = .plain

    public enum Stream: Sendable, Equatable {
        /// The input as it is.
        case plain
        /// The compressed bytes of a gzip input.
        case compressed
        /// The text a gzip input decompressed to.
        case decompressed
    }

    /// The way to the value from the input's top (for locating it once a problem is
    /// found); `.embedded` is the string of an envelope, after which the steps are inside
    /// the text it carries.
    enum Step: Sendable, Equatable {
        case index(Int)
        case key(String)
        case embedded
    }
    var steps: [Step] = []

    public init(source: String, line: Int? = nil, byteOffset: Int? = nil, path: [String] = []) {
        self.source = source
        self.line = line
        self.byteOffset = byteOffset
        self.path = path
    }

    func appending(_ component: String, _ steps: Step...) -> FindingOrigin {
        var copy = self
        copy.path.append(component)
        copy.steps += steps
        return copy
    }

    public static func == (a: FindingOrigin, b: FindingOrigin) -> Bool {
        a.source == b.source && a.line == b.line && a.byteOffset == b.byteOffset && a.path == b.path && a.stream == b.stream
    }

    public var description: String {
        var s = source
        if let line { s += ":\(line)" }
        if let byteOffset {
            switch stream {
            case .plain: s += " (byte \(byteOffset))"
            case .compressed: s += " (byte \(byteOffset) of the gzip stream)"
            case .decompressed: s += " (byte \(byteOffset) decompressed)"
            }
        }
        if !path.isEmpty { s += " " + path.joined(separator: " › ") }
        return s
    }
}

/// A record that could not be decoded; the others in the same input are kept.
public struct DecodeIssue: Error, Sendable, Equatable, CustomStringConvertible {
    public var origin: FindingOrigin
    public var message: String

    /// `ORIGIN: message`, on one line (a control character quoted from the input is
    /// written as an escape).
    public var description: String { Diagnostic.oneLine("\(origin): \(message)") }
}

/// What one input decoded into.
public struct DecodeResult: Sendable {
    public var findings: [Finding] = []
    public var issues: [DecodeIssue] = []

    public init(findings: [Finding] = [], issues: [DecodeIssue] = []) {
        self.findings = findings
        self.issues = issues
    }

    public mutating func append(_ other: DecodeResult) {
        findings += other.findings
        issues += other.issues
    }
}
