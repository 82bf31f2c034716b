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
