import CordonCore

/// `aws.ec2.isolate_instance`: moves every network interface of an instance into an
/// isolation security group with no rules, connection-tracking aware (the method of the
/// AWS Security Incident Response Guide):
///
/// 1. find or create the isolation group (in the instance's VPC, every rule removed);
/// 2. tag the instance with the incident and, before anything moves, with the groups
///    each interface has (`cordon:pre-isolation-groups`), so that a crash between the
///    change and the journal never loses the pre-state;
/// 3. move every interface to `<isolation>-untrack`, a group that allows all traffic
///    both ways: tracked connections become untracked…
/// 4. …then to the isolation group alone, which cuts them;
/// 5. turn on termination protection; verify.
///
/// Rollback puts back each interface's previous groups and the previous termination
/// protection. The isolation groups and the tags stay (other instances may use the
/// groups; the tags are the audit trail).
public struct IsolateInstanceAction: ReversibleAction {
    public static let name = "aws.ec2.isolate_instance"
    static let isolatedByTag = "cordon:isolated-by"
    static let previousGroupsTag = "cordon:pre-isolation-groups"
    static let previousProtectionTag = "cordon:pre-isolation-termination-protection"
    let env: AWSActionEnvironment

    public init(_ env: AWSActionEnvironment) { self.env = env }

    public var checkable: Bool { true }

    /// What rollback needs.
    struct PreState: Codable, Equatable {
        struct Interface: Codable, Equatable {
            var id: String
            var groups: [String]
        }
        var instanceId: String
        /// nil in the pre-state captured before the step (the group may not exist yet).
        var isolationGroupId: String?
        var interfaces: [Interface]
        /// nil when the step did not manage termination protection.
        var terminationProtection: Bool?
    }

    struct Inputs {
        var instanceId: String
        var isolationName: String
        var protect: Bool
        var untrackName: String { isolationName + "-untrack" }

        init(_ request: ActionRequest) throws(ActionError) {
            instanceId = try request.required("instance_id")
            isolationName = request.text("isolation_group") ?? "cordon-quarantine"
            protect = request.inputs["termination_protection"]?.boolValue ?? true
        }
    }

    // MARK: - Capture

    /// Every interface's groups and (when the step manages it) termination protection,
    /// read before anything changes. On an instance Cordon isolated earlier, the groups
    /// its tags recorded before that isolation.
    public func capturePreState(_ request: ActionRequest) async throws(ActionError) -> JSONValue {
        let inputs = try Inputs(request)
        let scope = try env.scope(request)
        let ec2 = try await env.cloud.ec2(scope)
        let instance = try await ec2.describeInstance(inputs.instanceId)
        let protection = inputs.protect ? try await ec2.terminationProtection(inputs.instanceId) : nil
        var pre = PreState(
            instanceId: inputs.instanceId, isolationGroupId: nil, interfaces: instance.networkInterfaces.map { .init(id: $0.id, groups: $0.groups.map(\.id)) },
            terminationProtection: protection)
        if let tagged = Self.recorded(instance, isolationId: "", untrackId: nil, protect: inputs.protect),
            instance.tags.contains(where: { $0.key == Self.isolatedByTag })
        {
            pre.interfaces = tagged.interfaces
            pre.terminationProtection = tagged.terminationProtection ?? protection
        }
        return scope.preState(pre)
    }

    // MARK: - Check

    public func check(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome? {
        let inputs = try Inputs(request)
        let scope = try env.scope(request)
        let ec2 = try await env.cloud.ec2(scope)
        let instance = try await ec2.describeInstance(inputs.instanceId)
        guard let iso = try await ec2.findSecurityGroup(name: inputs.isolationName, vpcId: Self.vpc(instance)),
            Self.isolated(instance, iso.id)
        else { return nil }
        if inputs.protect, !(try await ec2.terminationProtection(inputs.instanceId)) { return nil }
        let pre = Self.recorded(instance, isolationId: iso.id, untrackId: nil, protect: inputs.protect)
        return outcome(inputs, scope, isolationId: iso.id, untrackId: nil, pre: pre, alreadyDone: true, evidence: [])
    }

    // MARK: - Run

    public func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        let inputs = try Inputs(request)
        let scope = try env.scope(request)
        let ec2 = try await env.cloud.ec2(scope)
        let before = try await ec2.describeInstance(inputs.instanceId)
        guard before.state != "terminated", before.state != "shutting-down" else {
            throw .permanent("IncorrectInstanceState", "instance \(inputs.instanceId) is \(before.state): there is nothing to isolate")
        }
        guard !before.networkInterfaces.isEmpty else {
            throw .permanent("NoNetworkInterfaces", "instance \(inputs.instanceId) has no network interface to isolate")
        }
        let vpc = Self.vpc(before)
        let isolationId = try await isolationGroup(ec2, inputs, vpc: vpc, incident: request.incidentId)
        let existingUntrack = try await ec2.findSecurityGroup(name: inputs.untrackName, vpcId: vpc)?.id
        let protectionBefore = try await ec2.terminationProtection(inputs.instanceId)
        var changed = false
        var untrackId = existingUntrack
        let pre: PreState
        if Self.isolated(before, isolationId) {
            // Already isolated (a retry, a restart or another incident): the pre-state is
            // what the tags recorded before the first move.
            pre = Self.recorded(before, isolationId: isolationId, untrackId: existingUntrack, protect: inputs.protect)
                ?? PreState(instanceId: inputs.instanceId, isolationGroupId: isolationId, interfaces: [], terminationProtection: nil)
        } else {
            pre = Self.preState(before, inputs, isolationId: isolationId, existingUntrack: existingUntrack, protectionBefore: protectionBefore)
            untrackId = try await isolate(before, ec2, inputs, pre: pre, isolationId: isolationId, vpc: vpc, existingUntrack: existingUntrack, incident: request.incidentId)
            changed = true
        }
        if inputs.protect, !protectionBefore {
            try await ec2.setTerminationProtection(inputs.instanceId, true)
            changed = true
        }
        if !before.tags.contains(where: { $0.key == Self.isolatedByTag }) && !changed {
            try await ec2.createTags(resourceIds: [inputs.instanceId], tags: [Tag(Self.isolatedByTag, request.incidentId)])
        }
        let after = try await verify(ec2, inputs, isolationId: isolationId)
        let document: JSONValue = [
            "kind": "cordon.ec2.isolation", "time": .string(AWSTime.iso8601Millis(env.now())), "scope": scope.json, "incident": .string(request.incidentId),
            "isolation_group_id": .string(isolationId), "untrack_group_id": untrackId.map(JSONValue.string) ?? .null,
            "before": JSONBridge.value(before), "termination_protection_before": .bool(protectionBefore), "after": JSONBridge.value(after),
        ]
        let ref = try request.storeEvidence(document, name: "ec2-isolation-\(inputs.instanceId).json")
        return outcome(inputs, scope, isolationId: isolationId, untrackId: untrackId, pre: pre.interfaces.isEmpty ? nil : pre, alreadyDone: !changed, evidence: [ref])
    }

    /// The pre-state of an instance not yet isolated: each interface's groups, except an
    /// interface an interrupted run already moved into our groups, whose groups the tags
    /// recorded.
    static func preState(_ before: EC2Instance, _ inputs: Inputs, isolationId: String, existingUntrack: String?, protectionBefore: Bool) -> PreState {
        let tagged = recorded(before, isolationId: isolationId, untrackId: existingUntrack, protect: inputs.protect)
        var interfaces: [PreState.Interface] = []
        for eni in before.networkInterfaces {
            let groups = eni.groups.map(\.id)
            let ours = Set([isolationId] + (existingUntrack.map { [$0] } ?? []))
            if Set(groups).isSubset(of: ours), let known = tagged?.interfaces.first(where: { $0.id == eni.id }) {
                interfaces.append(known)  // moved by an interrupted run
            } else {
                interfaces.append(.init(id: eni.id, groups: groups))
            }
        }
        return PreState(
            instanceId: inputs.instanceId, isolationGroupId: isolationId, interfaces: interfaces,
            terminationProtection: inputs.protect ? (tagged?.terminationProtection ?? protectionBefore) : nil)
    }

    /// Records `pre` in the instance's tags, then moves every interface through the
    /// untrack group into the isolation group; answers the untrack group's id.
    func isolate(
        _ before: EC2Instance, _ ec2: any EC2API, _ inputs: Inputs, pre: PreState, isolationId: String, vpc: String?, existingUntrack: String?, incident: String
    ) async throws(ActionError) -> String {
        // Record the pre-state on the instance before anything moves.
        var tags = [Tag(Self.isolatedByTag, incident)]
        let encoded = pre.interfaces.map { "\($0.id)=\($0.groups.joined(separator: "+"))" }.joined(separator: " ")
        if encoded.count <= 256 { tags.append(Tag(Self.previousGroupsTag, encoded)) }
        if let tp = pre.terminationProtection { tags.append(Tag(Self.previousProtectionTag, tp ? "true" : "false")) }
        try await ec2.createTags(resourceIds: [inputs.instanceId], tags: tags)
        // Connection tracking: all-open first, so tracked connections become untracked…
        let untrack = try await untrackGroup(ec2, inputs, vpc: vpc, existing: existingUntrack)
        let toMove = before.networkInterfaces.filter { $0.groups.map(\.id) != [isolationId] }
        for eni in toMove where eni.groups.map(\.id) != [untrack] {
            try await ec2.setNetworkInterfaceGroups(eni.id, groupIds: [untrack])
        }
        // …then the isolation group alone, which cuts them.
        for eni in toMove {
            try await ec2.setNetworkInterfaceGroups(eni.id, groupIds: [isolationId])
        }
        return untrack
    }

    /// Reads the instance back: every interface in the isolation group alone, and
    /// termination protection on when the step manages it; answers what was read.
    func verify(_ ec2: any EC2API, _ inputs: Inputs, isolationId: String) async throws(ActionError) -> EC2Instance {
        let after = try await ec2.describeInstance(inputs.instanceId)
        guard Self.isolated(after, isolationId) else {
            let where_ = after.networkInterfaces.filter { $0.groups.map(\.id) != [isolationId] }.map { "\($0.id) has \($0.groups.map(\.id).joined(separator: ", "))" }
            throw .retryable("IsolationNotVerified", "after the change, not every interface has only \(isolationId): \(where_.joined(separator: "; "))")
        }
        if inputs.protect, !(try await ec2.terminationProtection(inputs.instanceId)) {
            throw .retryable("IsolationNotVerified", "termination protection of \(inputs.instanceId) is still off")
        }
        return after
    }

    func outcome(_ inputs: Inputs, _ scope: CloudScope, isolationId: String, untrackId: String?, pre: PreState?, alreadyDone: Bool, evidence: [JSONValue]) -> ActionOutcome {
        var previous = JSONObject()
        for i in pre?.interfaces ?? [] { previous[i.id] = .array(i.groups.map(JSONValue.string)) }
        var outputs: JSONObject = ["isolation_group_id": .string(isolationId), "previous_groups": .object(previous)]
        if let untrackId { outputs["untrack_group_id"] = .string(untrackId) }
        if let tp = pre?.terminationProtection { outputs["termination_protection_before"] = .bool(tp) }
        return ActionOutcome(outputs: outputs, target: inputs.instanceId, evidence: evidence, preState: pre.map(scope.preState), alreadyDone: alreadyDone)
    }

    // MARK: - Groups

    static func vpc(_ instance: EC2Instance) -> String? { instance.vpcId ?? instance.networkInterfaces.first?.vpcId }

    static func isolated(_ instance: EC2Instance, _ isolationId: String) -> Bool {
        !instance.networkInterfaces.isEmpty && instance.networkInterfaces.allSatisfy { $0.groups.map(\.id) == [isolationId] }
    }

    /// The pre-state recorded in the instance's tags, when every interface is in one of
    /// our groups and the tags cover them all.
    static func recorded(_ instance: EC2Instance, isolationId: String, untrackId: String?, protect: Bool) -> PreState? {
        guard let text = instance.tags.first(where: { $0.key == previousGroupsTag })?.value else { return nil }
        var interfaces: [PreState.Interface] = []
        for part in text.split(separator: " ") {
            let pieces = part.split(separator: "=", maxSplits: 1)
            guard pieces.count == 2 else { return nil }
            interfaces.append(.init(id: String(pieces[0]), groups: pieces[1].split(separator: "+").map(String.init)))
        }
        guard instance.networkInterfaces.allSatisfy({ eni in interfaces.contains { $0.id == eni.id } }) else { return nil }
        let tp = instance.tags.first(where: { $0.key == previousProtectionTag }).map { $0.value == "true" }
        return PreState(instanceId: instance.id, isolationGroupId: isolationId, interfaces: interfaces, terminationProtection: protect ? tp : nil)
    }

    /// The isolation group, found or created, with every rule removed and that verified.
    ///
    /// Many isolations in one VPC (an outbreak) prepare the same group at once: one
    /// creates it and the others find it ("already exists" is success), and each removes
    /// the rules it sees, the default egress rule of a new group among them. A rule
    /// another isolation removed first is "already gone", also success; what counts is
    /// the group's state read back afterwards, which must have no rule left.
    func isolationGroup(_ ec2: any EC2API, _ inputs: Inputs, vpc: String?, incident: String) async throws(ActionError) -> String {
        var id = try await ec2.findSecurityGroup(name: inputs.isolationName, vpcId: vpc)?.id
        if id == nil {
            do throws(ActionError) {
                id = try await ec2.createSecurityGroup(
                    name: inputs.isolationName,
                    description: "Cordon isolation group: no inbound or outbound rules. Created by Cordon (incident \(incident)); do not add rules.",
                    vpcId: vpc, tags: [Tag("cordon:managed", "true"), Tag("cordon:purpose", "isolation")])
            } catch where error.code == "InvalidGroup.Duplicate" {
                id = try await ec2.findSecurityGroup(name: inputs.isolationName, vpcId: vpc)?.id
            }
        }
        guard let id else { throw .retryable("IsolationGroupNotVisible", "the isolation group \(inputs.isolationName) was created but cannot be found yet") }
        for _ in 0..<Self.ruleRemovalRounds {
            guard let group = try await ec2.describeSecurityGroups(ids: [id]).first else {
                throw .retryable("IsolationGroupNotVisible", "the isolation group \(id) (\(inputs.isolationName)) cannot be described yet")
            }
            if group.egress.isEmpty && group.ingress.isEmpty { return id }
            try await Self.removeRules(group.egress, egress: true, from: id, ec2)
            try await Self.removeRules(group.ingress, egress: false, from: id, ec2)
        }
        throw .retryable("IsolationGroupNotEmpty", "rules keep appearing in the isolation group \(id) (\(inputs.isolationName)): someone is adding them while Cordon removes them")
    }

    /// How often the isolation group's rules are read and removed before giving up (a
    /// retryable failure: the step's retries try again).
    static let ruleRemovalRounds = 5

    /// Revokes rules of a group; a rule already gone (revoked by a concurrent isolation)
    /// counts as revoked. A batch refused because one of its rules is gone is retried
    /// rule by rule.
    static func removeRules(_ permissions: [IpPermission], egress: Bool, from id: String, _ ec2: any EC2API) async throws(ActionError) {
        guard !permissions.isEmpty else { return }
        func revoke(_ batch: [IpPermission]) async throws(ActionError) {
            if egress { try await ec2.revokeEgress(groupId: id, permissions: batch) } else { try await ec2.revokeIngress(groupId: id, permissions: batch) }
        }
        do throws(ActionError) {
            try await revoke(permissions)
        } catch where error.code == "InvalidPermission.NotFound" {
            for permission in permissions {
                do throws(ActionError) { try await revoke([permission]) } catch where error.code == "InvalidPermission.NotFound" {}
            }
        }
    }

    static let allTraffic = [
        IpPermission(ipProtocol: "-1", ipv4Ranges: ["0.0.0.0/0"]), IpPermission(ipProtocol: "-1", ipv6Ranges: ["::/0"]),
    ]

    /// The all-open group (`<isolation>-untrack`), found or created, allowing all traffic
    /// in and out over IPv4 and IPv6.
    func untrackGroup(_ ec2: any EC2API, _ inputs: Inputs, vpc: String?, existing: String?) async throws(ActionError) -> String {
        var id = existing
        if id == nil {
            do throws(ActionError) {
                id = try await ec2.createSecurityGroup(
                    name: inputs.untrackName,
                    description: "Cordon: allows all traffic for a moment so that tracked connections become untracked before isolation. Attach to nothing.",
                    vpcId: vpc, tags: [Tag("cordon:managed", "true"), Tag("cordon:purpose", "untrack")])
            } catch where error.code == "InvalidGroup.Duplicate" {
                id = try await ec2.findSecurityGroup(name: inputs.untrackName, vpcId: vpc)?.id
            }
        }
        guard let id else { throw .retryable("IsolationGroupNotVisible", "the group \(inputs.untrackName) was created but cannot be found yet") }
        let rules = try await ec2.describeSecurityGroupRules(groupId: id)
        for egress in [false, true] {
            let missing = Self.allTraffic.filter { p in
                !p.expanded(groupId: id, isEgress: egress).allSatisfy { want in rules.contains { $0.sameEffect(as: want) } }
            }
            if missing.isEmpty { continue }
            do throws(ActionError) {
                if egress { try await ec2.authorizeEgress(groupId: id, permissions: missing) } else { try await ec2.authorizeIngress(groupId: id, permissions: missing) }
            } catch where error.code == "InvalidPermission.Duplicate" {}
        }
        return id
    }

    // MARK: - Rollback

    public func rollback(_ request: ActionRequest, preState: JSONValue) async throws(ActionError) -> ActionOutcome {
        guard let pre = JSONBridge.decode(PreState.self, from: preState) else {
            throw .permanent("InvalidPreState", "the recorded pre-state of \(Self.name) cannot be read: \(JSONWriter.string(preState))")
        }
        let ec2 = try await env.cloud.ec2(try env.scope(request, preState: preState))
        let instance = try await ec2.describeInstance(pre.instanceId)
        var restored: JSONObject = [:]
        for iface in pre.interfaces {
            guard let eni = instance.networkInterfaces.first(where: { $0.id == iface.id }) else {
                throw .permanent("InvalidNetworkInterfaceID.NotFound", "interface \(iface.id) is no longer attached to \(pre.instanceId); restore its groups (\(iface.groups.joined(separator: ", "))) by hand")
            }
            if Set(eni.groups.map(\.id)) != Set(iface.groups) {
                try await ec2.setNetworkInterfaceGroups(iface.id, groupIds: iface.groups)
                restored[iface.id] = .array(iface.groups.map(JSONValue.string))
            }
        }
        var protectionRestored = false
        if let tp = pre.terminationProtection, try await ec2.terminationProtection(pre.instanceId) != tp {
            try await ec2.setTerminationProtection(pre.instanceId, tp)
            protectionRestored = true
        }
        // Verify.
        let after = try await ec2.describeInstance(pre.instanceId)
        for iface in pre.interfaces {
            let groups = after.networkInterfaces.first { $0.id == iface.id }?.groups.map(\.id) ?? []
            guard Set(groups) == Set(iface.groups) else {
                throw .retryable("RollbackNotVerified", "interface \(iface.id) has \(groups.joined(separator: ", ")), not \(iface.groups.joined(separator: ", "))")
            }
        }
        var outputs: JSONObject = ["restored_groups": .object(restored)]
        if protectionRestored, let tp = pre.terminationProtection { outputs["termination_protection"] = .bool(tp) }
        return ActionOutcome(outputs: outputs, target: pre.instanceId, alreadyDone: restored.isEmpty && !protectionRestored)
    }
}

extension IsolateInstanceAction {
    /// What `aws.ec2.isolate_instance` takes, gives and needs (`cordon validate`, the JSON Schema, `cordon iam-policy`, the docs).
    public static let spec = ActionSpec(
        name: "aws.ec2.isolate_instance",
        summary: "Replace the security groups of every interface with an isolation group (connection-tracking aware), turn on termination protection, tag the instance",
        kind: .containment,
        inputs: [
            InputSpec("instance_id", .string, required: true, "EC2 instance id (i-…)"),
            InputSpec("isolation_group", .string, default: "cordon-quarantine", "name of the isolation security group (created without rules in the instance's VPC if missing)"),
            InputSpec("termination_protection", .boolean, default: true, "turn on termination protection"),
            AWSActions.region, AWSActions.account,
        ],
        outputs: [
            OutputSpec("isolation_group_id", "the isolation security group"),
            OutputSpec("previous_groups", "the groups each interface had before (for rollback)"),
        ],
        iamActions: [
            "ec2:DescribeInstances", "ec2:DescribeSecurityGroups", "ec2:DescribeSecurityGroupRules",
            "ec2:DescribeInstanceAttribute", "ec2:CreateSecurityGroup", "ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress",
            "ec2:AuthorizeSecurityGroupEgress", "ec2:AuthorizeSecurityGroupIngress", "ec2:ModifyNetworkInterfaceAttribute",
            "ec2:ModifyInstanceAttribute", "ec2:CreateTags",
        ],
        reversible: true)
}
