import CordonCore
import Foundation

/// The `aws.*` actions (each with its `spec` beside it), written once against the
/// `Cloud` seam: the same code runs against AWS (`AWSCloud`) and in drills
/// (`SimulatedCloud`).
public enum AWSActions {
    /// Every `aws.*` action's spec, in the catalogue's order.
    public static let specs: [ActionSpec] = [
        CaptureInstanceAction.spec,
        SnapshotVolumesAction.spec,
        IsolateInstanceAction.spec,
        RevokeIngressAction.spec,
        RevokeRoleSessionsAction.spec,
        DeactivateAccessKeysAction.spec,
        AttachDenyAllAction.spec,
        DeleteLoginProfileAction.spec,
        BlockPublicAccessAction.spec,
        StartLoggingAction.spec,
        SNSPublishAction.spec,
    ]

    static let region = InputSpec("region", .string, "AWS region; default: the finding's region, else AWS_REGION")
    static let account = InputSpec(
        "account", .string, "AWS account id to act in (assumes the configured role there); default: the finding's account")

    /// Every `aws.*` action by name.
    /// - Parameters:
    ///   - cloud: where calls go.
    ///   - defaultRegion: the region when neither the step's `region` input nor the
    ///     finding gives one (`AWS_REGION`/`AWS_DEFAULT_REGION`).
    ///   - now: the clock (a virtual one in drills), for timestamps such as the
    ///     `aws:TokenIssueTime` of `aws.iam.revoke_role_sessions`.
    public static func all(cloud: any Cloud, defaultRegion: String?, now: @escaping @Sendable () -> Date = { Date() }) -> [String: any Action] {
        let env = AWSActionEnvironment(cloud: cloud, defaultRegion: defaultRegion, now: now)
        return [
            CaptureInstanceAction.name: CaptureInstanceAction(env),
            SnapshotVolumesAction.name: SnapshotVolumesAction(env),
            IsolateInstanceAction.name: IsolateInstanceAction(env),
            RevokeIngressAction.name: RevokeIngressAction(env),
            RevokeRoleSessionsAction.name: RevokeRoleSessionsAction(env),
            DeactivateAccessKeysAction.name: DeactivateAccessKeysAction(env),
            AttachDenyAllAction.name: AttachDenyAllAction(env),
            DeleteLoginProfileAction.name: DeleteLoginProfileAction(env),
            BlockPublicAccessAction.name: BlockPublicAccessAction(env),
            StartLoggingAction.name: StartLoggingAction(env),
            SNSPublishAction.name: SNSPublishAction(env),
        ]
    }
}

/// What every AWS action is built with.
public struct AWSActionEnvironment: Sendable {
    public var cloud: any Cloud
    public var defaultRegion: String?
    public var now: @Sendable () -> Date

    public init(cloud: any Cloud, defaultRegion: String? = nil, now: @escaping @Sendable () -> Date = { Date() }) {
        self.cloud = cloud
        self.defaultRegion = defaultRegion
        self.now = now
    }

    /// Where a step acts: the `region` input, else `regionHint` (from an ARN), else the
    /// finding's region, else the default region; the `account` input, else
    /// `accountHint`, else the finding's account (nil: the credentials' own).
    /// `global` services (IAM, S3 control) fall back to us-east-1.
    func scope(_ request: ActionRequest, regionHint: String? = nil, accountHint: String? = nil, global: Bool = false) throws(ActionError) -> CloudScope {
        let region = request.text("region") ?? regionHint ?? request.findingField("region") ?? defaultRegion ?? (global ? "us-east-1" : nil)
        guard let region else {
            throw .permanent("MissingRegion", "\(request.action): no region: give the step a `region` input, act on a finding that names one, or set AWS_REGION")
        }
        return CloudScope(account: request.text("account") ?? accountHint ?? request.findingField("account"), region: region)
    }

    /// The scope a rollback acts in: the one recorded in the pre-state, else as for the run.
    func scope(_ request: ActionRequest, preState: JSONValue, global: Bool = false) throws(ActionError) -> CloudScope {
        if let region = preState["scope"]?["region"]?.stringValue {
            return CloudScope(account: preState["scope"]?["account"]?.stringValue, region: region)
        }
        return try scope(request, global: global)
    }
}

extension CloudScope {
    var json: JSONValue { ["account": account.map(JSONValue.string) ?? .null, "region": .string(region)] }

    /// A reversible action's pre-state as the journal keeps it: the model's members and
    /// the scope it was read in (a rollback acts there).
    func preState<T: Encodable>(_ model: T) -> JSONValue {
        guard case .object(var o) = JSONBridge.value(model) else { return .null }
        o["scope"] = json
        return .object(o)
    }
}

extension ActionRequest {
    /// A string input (an empty string counts as absent).
    func text(_ key: String) -> String? {
        guard let s = inputs[key]?.stringValue, !s.isEmpty else { return nil }
        return s
    }

    func required(_ key: String) throws(ActionError) -> String {
        guard let s = text(key) else { throw .permanent("InvalidInput", "\(action) needs `\(key)`, a non-empty string") }
        return s
    }

    /// A field of the finding the incident is about (`account`, `region`), wherever the
    /// incident carries its summary.
    func findingField(_ key: String) -> String? {
        let candidates: [JSONValue?] = [incident["finding"]?[key], incident[key], incident["findings"]?[0]?[key], incident["event"]?[key]]
        for c in candidates {
            if let s = c?.stringValue, !s.isEmpty { return s }
        }
        return nil
    }

    /// The incident id (tags and descriptions name it).
    var incidentId: String {
        if let id = incident["id"]?.stringValue, !id.isEmpty { return id }
        return "step-" + String(idempotencyKey.prefix(16))
    }

    /// When the incident was opened, if known.
    var incidentOpenedAt: Date? { incident["opened_at"]?.stringValue.flatMap(Timestamp.parse) }

    /// Stores a JSON document as evidence and returns its reference.
    func storeEvidence(_ value: JSONValue, name: String) throws(ActionError) -> JSONValue {
        do {
            return try evidence.store(Array(JSONWriter.pretty(value).utf8), name: name, mediaType: "application/json")
        } catch {
            throw .retryable("EvidenceStoreFailed", "cannot store the evidence \(name): \(error)")
        }
    }
}

/// Parts of an ARN (`arn:partition:service:region:account:resource`).
struct ARN {
    var service: String
    var region: String
    var account: String
    var resource: String

    init?(_ text: String) {
        let parts = text.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 6, parts[0] == "arn" else { return nil }
        service = parts[2]
        region = parts[3]
        account = parts[4]
        resource = parts[5]
    }
}
