import CordonCore

/// `aws.ec2.capture_instance`: the instance, its security groups (with their rules), its
/// network interfaces, volumes, tags and instance profile, as one evidence document.
/// It only reads, so running it again is harmless (the evidence store dedupes).
public struct CaptureInstanceAction: Action {
    public static let name = "aws.ec2.capture_instance"
    let env: AWSActionEnvironment

    public init(_ env: AWSActionEnvironment) { self.env = env }

    public func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        let instanceId = try request.required("instance_id")
        let scope = try env.scope(request)
        let ec2 = try await env.cloud.ec2(scope)
        let instance = try await ec2.describeInstance(instanceId)
        var groupIds: [String] = []
        for g in instance.securityGroups.map(\.id) + instance.networkInterfaces.flatMap({ $0.groups.map(\.id) }) where !groupIds.contains(g) {
            groupIds.append(g)
        }
        let groups = groupIds.isEmpty ? [] : try await ec2.describeSecurityGroups(ids: groupIds)
        let volumeIds = instance.blockDevices.map(\.volumeId)
        let volumes = volumeIds.isEmpty ? [] : try await ec2.describeVolumes(ids: volumeIds)
        let document: JSONValue = [
            "kind": "cordon.ec2.instance-capture",
            "captured_at": .string(AWSTime.iso8601Millis(env.now())),
            "cloud": .string(env.cloud.kind),
            "scope": scope.json,
            "incident": .string(request.incidentId),
            "instance": JSONBridge.value(instance),
            "tags": JSONBridge.value(instance.tags),
            "instance_profile": instance.iamInstanceProfileArn.map(JSONValue.string) ?? .null,
            "security_groups": JSONBridge.value(groups),
            "network_interfaces": JSONBridge.value(instance.networkInterfaces),
            "volumes": JSONBridge.value(volumes),
        ]
        let ref = try request.storeEvidence(document, name: "ec2-capture-\(instanceId).json")
        return ActionOutcome(
            outputs: [
                "instance": JSONBridge.value(instance), "security_groups": JSONBridge.value(groups),
                "network_interfaces": JSONBridge.value(instance.networkInterfaces), "volumes": JSONBridge.value(volumes),
                "evidence": ref["sha256"] ?? .null,
            ],
            target: instanceId, evidence: [ref])
    }
}

extension CaptureInstanceAction {
    /// What `aws.ec2.capture_instance` takes, gives and needs (`cordon validate`, the JSON Schema, `cordon iam-policy`, the docs).
    public static let spec = ActionSpec(
        name: "aws.ec2.capture_instance",
        summary: "Record an instance's metadata, security groups, network interfaces, volumes, tags and instance profile as evidence",
        kind: .evidence,
        inputs: [InputSpec("instance_id", .string, required: true, "EC2 instance id (i-…)"), AWSActions.region, AWSActions.account],
        outputs: [
            OutputSpec("instance", "DescribeInstances result for the instance"),
            OutputSpec("security_groups", "the security groups attached to its interfaces"),
            OutputSpec("network_interfaces", "its network interfaces"),
            OutputSpec("volumes", "its EBS volumes"),
            OutputSpec("evidence", "hash of the evidence record"),
        ],
        iamActions: [
            "ec2:DescribeInstances", "ec2:DescribeSecurityGroups", "ec2:DescribeVolumes",
        ])
}
