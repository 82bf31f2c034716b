import CordonCore

/// `aws.ec2.snapshot_volumes`: one snapshot per attached EBS volume, tagged
/// `cordon:incident=<incident>` and `cordon:volume=<volume>`. The tagged snapshot is
/// looked up first, so a retry, a restart or a second finding on the same incident
/// never makes a second one.
public struct SnapshotVolumesAction: Action {
    public static let name = "aws.ec2.snapshot_volumes"
    static let incidentTag = "cordon:incident"
    static let volumeTag = "cordon:volume"
    let env: AWSActionEnvironment

    public init(_ env: AWSActionEnvironment) { self.env = env }

    public var checkable: Bool { true }

    struct State {
        var instance: EC2Instance
        /// Per block device: the existing tagged snapshot, if any.
        var existing: [(BlockDevice, Snapshot?)]
    }

    func read(_ request: ActionRequest, _ ec2: any EC2API, _ instanceId: String) async throws(ActionError) -> State {
        let instance = try await ec2.describeInstance(instanceId)
        let tagged = try await ec2.describeSnapshots(tagKey: Self.incidentTag, tagValue: request.incidentId)
        return State(
            instance: instance,
            existing: instance.blockDevices.map { device in
                (device, tagged.first { $0.volumeId == device.volumeId && $0.state != "error" && $0.tags.contains(Tag(Self.volumeTag, device.volumeId)) })
            })
    }

    func outcome(_ request: ActionRequest, _ instanceId: String, _ rows: [(BlockDevice, Snapshot, Bool)], alreadyDone: Bool, evidence: [JSONValue]) -> ActionOutcome {
        ActionOutcome(
            outputs: [
                "snapshot_ids": .array(rows.map { .string($0.1.id) }),
                "snapshots": .array(
                    rows.map { ["device": .string($0.0.deviceName), "volume_id": .string($0.0.volumeId), "snapshot_id": .string($0.1.id), "created": .bool($0.2)] }),
            ],
            target: instanceId, evidence: evidence, alreadyDone: alreadyDone)
    }

    public func check(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome? {
        let instanceId = try request.required("instance_id")
        let ec2 = try await env.cloud.ec2(try env.scope(request))
        let state = try await read(request, ec2, instanceId)
        var rows: [(BlockDevice, Snapshot, Bool)] = []
        for (device, snapshot) in state.existing {
            guard let snapshot else { return nil }
            rows.append((device, snapshot, false))
        }
        return outcome(request, instanceId, rows, alreadyDone: true, evidence: [])
    }

    public func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        let instanceId = try request.required("instance_id")
        let scope = try env.scope(request)
        let ec2 = try await env.cloud.ec2(scope)
        let state = try await read(request, ec2, instanceId)
        let incident = request.incidentId
        var rows: [(BlockDevice, Snapshot, Bool)] = []
        for (device, existing) in state.existing {
            if let existing {
                rows.append((device, existing, false))
                continue
            }
            let description = request.text("description") ?? "Cordon incident \(incident): \(device.volumeId) (\(device.deviceName)) of \(instanceId)"
            let snapshot = try await ec2.createSnapshot(
                volumeId: device.volumeId, description: String(description.prefix(255)),
                tags: [Tag(Self.incidentTag, incident), Tag(Self.volumeTag, device.volumeId), Tag("cordon:instance", instanceId)])
            rows.append((device, snapshot, true))
        }
        // Verify: every volume now has its tagged snapshot.
        let after = try await read(request, ec2, instanceId)
        let missing = after.existing.filter { device, snapshot in snapshot == nil && state.instance.blockDevices.contains(device) }.map { $0.0.volumeId }
        if !missing.isEmpty {
            throw .retryable("SnapshotNotVisible", "the snapshots of \(missing.joined(separator: ", ")) do not show up yet; the retry finds them by their tag")
        }
        let created = rows.contains { $0.2 }
        let document: JSONValue = [
            "kind": "cordon.ec2.snapshots", "time": .string(AWSTime.iso8601Millis(env.now())), "scope": scope.json, "incident": .string(incident),
            "instance_id": .string(instanceId), "snapshots": JSONBridge.value(rows.map(\.1)),
        ]
        let ref = try request.storeEvidence(document, name: "ec2-snapshots-\(instanceId).json")
        return outcome(request, instanceId, rows, alreadyDone: !created, evidence: [ref])
    }
}

extension SnapshotVolumesAction {
    /// What `aws.ec2.snapshot_volumes` takes, gives and needs (`cordon validate`, the JSON Schema, `cordon iam-policy`, the docs).
    public static let spec = ActionSpec(
        name: "aws.ec2.snapshot_volumes",
        summary: "Snapshot every attached EBS volume once, tagged with the incident id (a retry finds the tagged snapshot)",
        kind: .evidence,
        inputs: [
            InputSpec("instance_id", .string, required: true, "EC2 instance id (i-…)"), AWSActions.region, AWSActions.account,
            InputSpec("description", .string, "snapshot description; default names the incident"),
        ],
        outputs: [OutputSpec("snapshot_ids", "one snapshot id per volume")],
        iamActions: ["ec2:DescribeInstances", "ec2:DescribeSnapshots", "ec2:CreateSnapshot", "ec2:CreateTags"])
}
