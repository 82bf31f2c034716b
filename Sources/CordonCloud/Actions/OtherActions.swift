import CordonCore

/// `aws.s3.block_public_access`: all four Block Public Access settings on, for a bucket.
/// Rollback puts the previous configuration back, or deletes the configuration when the
/// bucket had none.
public struct BlockPublicAccessAction: ReversibleAction {
    public static let name = "aws.s3.block_public_access"
    let env: AWSActionEnvironment

    public init(_ env: AWSActionEnvironment) { self.env = env }

    public var checkable: Bool { true }

    struct PreState: Codable {
        var bucket: String
        /// nil: the bucket had no configuration.
        var previous: PublicAccessBlock?
    }

    /// The bucket's configuration before the step (none: nil).
    public func capturePreState(_ request: ActionRequest) async throws(ActionError) -> JSONValue {
        let bucket = try request.required("bucket")
        let scope = try env.scope(request, global: true)
        let s3 = try await env.cloud.s3(scope)
        return scope.preState(PreState(bucket: bucket, previous: try await s3.publicAccessBlock(bucket: bucket)))
    }

    public func check(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome? {
        let bucket = try request.required("bucket")
        let s3 = try await env.cloud.s3(try env.scope(request, global: true))
        guard try await s3.publicAccessBlock(bucket: bucket) == .allBlocked else { return nil }
        return ActionOutcome(outputs: [:], target: bucket, alreadyDone: true)
    }

    public func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        let bucket = try request.required("bucket")
        let scope = try env.scope(request, global: true)
        let s3 = try await env.cloud.s3(scope)
        let previous = try await s3.publicAccessBlock(bucket: bucket)
        let previousJSON = previous.map(JSONBridge.value) ?? .null
        if previous == .allBlocked {
            return ActionOutcome(outputs: ["previous": previousJSON], target: bucket, alreadyDone: true)
        }
        try await s3.putPublicAccessBlock(bucket: bucket, .allBlocked)
        guard try await s3.publicAccessBlock(bucket: bucket) == .allBlocked else {
            throw .retryable("BlockNotVerified", "Block Public Access of \(bucket) does not read back as all on yet")
        }
        let ref = try request.storeEvidence(
            [
                "kind": "cordon.s3.block-public-access", "time": .string(AWSTime.iso8601Millis(env.now())), "scope": scope.json,
                "incident": .string(request.incidentId), "bucket": .string(bucket), "before": previousJSON, "after": JSONBridge.value(PublicAccessBlock.allBlocked),
            ], name: "s3-public-access-block-\(bucket).json")
        return ActionOutcome(outputs: ["previous": previousJSON], target: bucket, evidence: [ref], preState: scope.preState(PreState(bucket: bucket, previous: previous)))
    }

    public func rollback(_ request: ActionRequest, preState: JSONValue) async throws(ActionError) -> ActionOutcome {
        guard let pre = JSONBridge.decode(PreState.self, from: preState) else {
            throw .permanent("InvalidPreState", "the recorded pre-state of \(Self.name) cannot be read: \(JSONWriter.string(preState))")
        }
        let s3 = try await env.cloud.s3(try env.scope(request, preState: preState, global: true))
        let current = try await s3.publicAccessBlock(bucket: pre.bucket)
        if current == pre.previous {
            return ActionOutcome(outputs: ["restored": pre.previous.map(JSONBridge.value) ?? .null], target: pre.bucket, alreadyDone: true)
        }
        if let previous = pre.previous {
            try await s3.putPublicAccessBlock(bucket: pre.bucket, previous)
        } else {
            try await s3.deletePublicAccessBlock(bucket: pre.bucket)
        }
        guard try await s3.publicAccessBlock(bucket: pre.bucket) == pre.previous else {
            throw .retryable("RollbackNotVerified", "Block Public Access of \(pre.bucket) is not back to its previous state yet")
        }
        return ActionOutcome(outputs: ["restored": pre.previous.map(JSONBridge.value) ?? .null], target: pre.bucket)
    }
}

/// `aws.cloudtrail.start_logging`: starts logging on a trail (by name or ARN; an ARN
/// also gives the region and account). Not reversible: Cordon never stops a trail.
public struct StartLoggingAction: Action {
    public static let name = "aws.cloudtrail.start_logging"
    let env: AWSActionEnvironment

    public init(_ env: AWSActionEnvironment) { self.env = env }

    public var checkable: Bool { true }

    /// Where to call, and the trail as that region knows it: an ARN gives its home region
    /// and account, where the trail's name names it (moto answers 500 to an ARN).
    func locate(_ request: ActionRequest) throws(ActionError) -> (CloudScope, String) {
        let trail = try request.required("trail")
        let arn = ARN(trail).flatMap { $0.service == "cloudtrail" ? $0 : nil }
        let scope = try env.scope(request, regionHint: arn?.region, accountHint: arn?.account)
        if let arn, arn.region == scope.region, scope.account == nil || scope.account == arn.account, arn.resource.hasPrefix("trail/") {
            return (scope, String(arn.resource.dropFirst("trail/".count)))
        }
        return (scope, trail)
    }

    public func check(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome? {
        let trail = try request.required("trail")
        let (scope, name) = try locate(request)
        let cloudTrail = try await env.cloud.cloudTrail(scope)
        guard try await cloudTrail.isLogging(trail: name) else { return nil }
        return ActionOutcome(outputs: ["logging": true], target: trail, alreadyDone: true)
    }

    public func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        let trail = try request.required("trail")
        let (scope, name) = try locate(request)
        let cloudTrail = try await env.cloud.cloudTrail(scope)
        if try await cloudTrail.isLogging(trail: name) {
            return ActionOutcome(outputs: ["was_logging": true, "logging": true], target: trail, alreadyDone: true)
        }
        try await cloudTrail.startLogging(trail: name)
        guard try await cloudTrail.isLogging(trail: name) else {
            throw .retryable("LoggingNotVerified", "trail \(trail) does not report logging yet")
        }
        return ActionOutcome(outputs: ["was_logging": false, "logging": true], target: trail)
    }
}

/// `aws.sns.publish`: publishes a message to a topic (the ARN gives the region and the
/// account). Its effect cannot be read back, so it is not checkable: the engine's
/// idempotency key keeps a journaled success from being published twice.
public struct SNSPublishAction: Action {
    public static let name = "aws.sns.publish"
    let env: AWSActionEnvironment

    public init(_ env: AWSActionEnvironment) { self.env = env }

    public func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        let topic = try request.required("topic_arn")
        let message = try request.required("message")
        guard let arn = ARN(topic), arn.service == "sns", !arn.resource.isEmpty else {
            throw .permanent("InvalidInput", "\(Self.name): `topic_arn` must be an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME), not \"\(topic)\"")
        }
        let subject = request.text("subject")
        if let subject {
            guard subject.count <= 100 else {
                throw .permanent("InvalidInput", "\(Self.name): `subject` has \(subject.count) characters; SNS allows at most 100")
            }
            guard subject.unicodeScalars.allSatisfy({ $0.isASCII && $0.value >= 32 && $0.value < 127 }) else {
                throw .permanent("InvalidInput", "\(Self.name): `subject` must be printable ASCII on one line (SNS rejects line breaks and other characters)")
            }
        }
        guard message.utf8.count <= 262_144 else {
            throw .permanent("InvalidInput", "\(Self.name): `message` is \(message.utf8.count) bytes; SNS allows at most 262144")
        }
        // The topic's ARN says where it lives; it wins over the finding's region.
        let base = try env.scope(request, regionHint: arn.region.isEmpty ? nil : arn.region, accountHint: arn.account.isEmpty ? nil : arn.account)
        let scope = CloudScope(account: arn.account.isEmpty ? base.account : arn.account, region: arn.region.isEmpty ? base.region : arn.region)
        let sns = try await env.cloud.sns(scope)
        let id = try await sns.publish(topicArn: topic, message: message, subject: subject)
        return ActionOutcome(outputs: ["message_id": .string(id)], target: topic)
    }
}

extension BlockPublicAccessAction {
    /// What `aws.s3.block_public_access` takes, gives and needs (`cordon validate`, the JSON Schema, `cordon iam-policy`, the docs).
    public static let spec = ActionSpec(
        name: "aws.s3.block_public_access",
        summary: "Turn on all four S3 Block Public Access settings for a bucket",
        kind: .containment,
        inputs: [InputSpec("bucket", .string, required: true, "bucket name"), AWSActions.account],
        outputs: [OutputSpec("previous", "the bucket's previous Block Public Access settings")],
        iamActions: ["s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock"],
        reversible: true)
}

extension StartLoggingAction {
    /// What `aws.cloudtrail.start_logging` takes, gives and needs (`cordon validate`, the JSON Schema, `cordon iam-policy`, the docs).
    public static let spec = ActionSpec(
        name: "aws.cloudtrail.start_logging",
        summary: "Restart logging on a trail that was stopped",
        kind: .containment,
        inputs: [InputSpec("trail", .string, required: true, "trail name or ARN"), AWSActions.region, AWSActions.account],
        outputs: [OutputSpec("was_logging", "whether the trail was logging before")],
        iamActions: ["cloudtrail:GetTrailStatus", "cloudtrail:StartLogging"])
}

extension SNSPublishAction {
    /// What `aws.sns.publish` takes, gives and needs (`cordon validate`, the JSON Schema, `cordon iam-policy`, the docs).
    public static let spec = ActionSpec(
        name: "aws.sns.publish",
        summary: "Publish a message to an SNS topic",
        kind: .notification,
        inputs: [
            InputSpec("topic_arn", .string, required: true, "topic ARN"),
            InputSpec("message", .string, required: true, "message text"),
            InputSpec("subject", .string, "subject (email subscribers), at most 100 characters"),
            AWSActions.region,
        ],
        outputs: [OutputSpec("message_id", "the SNS message id")],
        iamActions: ["sns:Publish"])
}
