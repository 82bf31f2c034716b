import CordonAWS
import CordonCloud
import CordonCore

/// EC2 in one account and region of the simulated cloud.
struct SimulatedEC2: EC2API {
    let cloud: SimulatedCloud
    let account: String
    let region: String

    private func call<T: Sendable>(_ name: String, iam: String? = nil, _ body: (inout SimRegion, inout SimulatedCloud.Context) throws(ActionError) -> T)
        async throws(ActionError) -> T
    {
        let region = self.region
        return try await cloud.perform(SimOperation("ec2", name, iam: iam), account: account, region: region) { (a, c) throws(ActionError) -> T in
            var r = a.regions[region] ?? SimRegion()
            let value = try body(&r, &c)
            a.regions[region] = r
            return value
        }
    }

    // MARK: Errors as EC2 words them

    static func instanceNotFound(_ id: String) -> ActionError { .permanent("InvalidInstanceID.NotFound", "The instance ID '\(id)' does not exist") }
    static func groupNotFound(_ id: String) -> ActionError { .permanent("InvalidGroup.NotFound", "The security group '\(id)' does not exist") }

    static func checkId(_ id: String, prefix: String, code: String) throws(ActionError) {
        guard id.hasPrefix(prefix + "-"), id.count > prefix.count + 1 else {
            throw .permanent(code, "Invalid id: \"\(id)\" (expecting \"\(prefix)-...\")")
        }
    }

    static func instance(_ r: SimRegion, _ id: String) throws(ActionError) -> SimInstance {
        try checkId(id, prefix: "i", code: "InvalidInstanceID.Malformed")
        guard let i = r.instances[id] else { throw instanceNotFound(id) }
        return i
    }

    static func group(_ r: SimRegion, _ id: String) throws(ActionError) -> SimSecurityGroup {
        try checkId(id, prefix: "sg", code: "InvalidGroupId.Malformed")
        guard let g = r.securityGroups[id] else { throw groupNotFound(id) }
        return g
    }

    // MARK: Instances

    func describeInstance(_ instanceId: String) async throws(ActionError) -> EC2Instance {
        try await call("DescribeInstances") { (r, _) throws(ActionError) in try Self.instance(r, instanceId).model(groups: r.securityGroups) }
    }

    func terminationProtection(_ instanceId: String) async throws(ActionError) -> Bool {
        try await call("DescribeInstanceAttribute") { (r, _) throws(ActionError) in try Self.instance(r, instanceId).terminationProtection }
    }

    func setTerminationProtection(_ instanceId: String, _ enabled: Bool) async throws(ActionError) {
        try await call("ModifyInstanceAttribute") { (r, _) throws(ActionError) in
            _ = try Self.instance(r, instanceId)
            r.instances[instanceId]?.terminationProtection = enabled
        }
    }

    func setNetworkInterfaceGroups(_ interfaceId: String, groupIds: [String]) async throws(ActionError) {
        try await call("ModifyNetworkInterfaceAttribute") { (r, _) throws(ActionError) in
            try Self.checkId(interfaceId, prefix: "eni", code: "InvalidNetworkInterfaceId.Malformed")
            guard let (instanceId, index) = r.instances.values.sorted(by: { $0.id < $1.id }).lazy.compactMap({ i in
                i.networkInterfaces.firstIndex { $0.id == interfaceId }.map { (i.id, $0) }
            }).first, let instance = r.instances[instanceId]
            else { throw .permanent("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '\(interfaceId)' does not exist") }
            guard !groupIds.isEmpty else { throw .permanent("MissingParameter", "The request must contain the parameter groupId") }
            guard groupIds.count <= 5 else {
                throw .permanent("SecurityGroupsPerInterfaceLimitExceeded", "The maximum number of security groups per interface has been reached.")
            }
            let eniVpc = instance.networkInterfaces[index].vpcId ?? instance.vpcId
            for id in groupIds {
                let g = try Self.group(r, id)
                if let eniVpc, let vpc = g.vpcId, vpc != eniVpc {
                    throw .permanent("InvalidParameterValue", "Security group \(id) and interface \(interfaceId) belong to different networks.")
                }
            }
            var unique: [String] = []
            for id in groupIds where !unique.contains(id) { unique.append(id) }
            r.instances[instanceId]?.networkInterfaces[index].groupIds = unique
        }
    }

    func createTags(resourceIds: [String], tags: [Tag]) async throws(ActionError) {
        try await call("CreateTags") { (r, _) throws(ActionError) in
            func merge(_ existing: inout [Tag]) {
                for tag in tags {
                    if let i = existing.firstIndex(where: { $0.key == tag.key }) { existing[i].value = tag.value } else { existing.append(tag) }
                }
            }
            for tag in tags where tag.key.isEmpty || tag.key.count > 128 || tag.value.count > 256 || tag.key.lowercased().hasPrefix("aws:") {
                throw .permanent("InvalidParameterValue", "Tag key \"\(tag.key)\" or its value is not valid (keys 1-128 characters, not starting with aws:, values up to 256)")
            }
            // Validate every id first: the call is atomic.
            for id in resourceIds {
                switch id.split(separator: "-").first.map(String.init) {
                case "i": _ = try Self.instance(r, id)
                case "sg": _ = try Self.group(r, id)
                case "vol": guard r.volumes[id] != nil else { throw .permanent("InvalidVolume.NotFound", "The volume '\(id)' does not exist.") }
                case "snap": guard r.snapshots[id] != nil else { throw .permanent("InvalidSnapshot.NotFound", "The snapshot '\(id)' does not exist.") }
                default: throw .permanent("InvalidID", "The ID '\(id)' is not valid")
                }
            }
            for id in resourceIds {
                if r.instances[id] != nil { merge(&r.instances[id, default: Self.placeholder].tags) }
                if r.securityGroups[id] != nil { merge(&r.securityGroups[id, default: Self.placeholderGroup].tags) }
                if r.volumes[id] != nil { merge(&r.volumes[id, default: Volume(id: id, sizeGiB: 0, state: "")].tags) }
                if r.snapshots[id] != nil { merge(&r.snapshots[id, default: Snapshot(id: id, volumeId: "", state: "")].tags) }
            }
        }
    }

    private static let placeholder = SimInstance(
        id: "", state: "", tags: [], networkInterfaces: [], blockDevices: [], terminationProtection: false)
    private static let placeholderGroup = SimSecurityGroup(id: "", name: "", description: "", rules: [], tags: [])

    // MARK: Security groups

    func describeSecurityGroups(ids: [String]) async throws(ActionError) -> [SecurityGroup] {
        try await call("DescribeSecurityGroups") { (r, _) throws(ActionError) in
            if ids.isEmpty { return r.securityGroups.values.sorted { $0.id < $1.id }.map(\.model) }
            var out: [SecurityGroup] = []
            for id in ids { out.append(try Self.group(r, id).model) }
            return out
        }
    }

    func findSecurityGroup(name: String, vpcId: String?) async throws(ActionError) -> SecurityGroup? {
        try await call("DescribeSecurityGroups") { (r, _) throws(ActionError) in
            r.securityGroups.values.sorted { $0.id < $1.id }.first { $0.name == name && $0.vpcId == vpcId }?.model
        }
    }

    func createSecurityGroup(name: String, description: String, vpcId: String?, tags: [Tag]) async throws(ActionError) -> String {
        try await call("CreateSecurityGroup") { (r, c) throws(ActionError) in
            guard !name.isEmpty, name.count <= 255 else { throw .permanent("InvalidParameterValue", "Invalid value '\(name)' for groupName") }
            guard !name.lowercased().hasPrefix("sg-") else { throw .permanent("InvalidParameterValue", "Group names may not be in the format sg-*") }
            guard !description.isEmpty, description.count <= 255 else {
                throw .permanent("InvalidParameterValue", "Invalid value for GroupDescription: it must be 1 to 255 characters")
            }
            if r.securityGroups.values.contains(where: { $0.name == name && $0.vpcId == vpcId }) {
                throw .permanent("InvalidGroup.Duplicate", "The security group '\(name)' already exists for VPC '\(vpcId ?? "default")'")
            }
            let id = c.nextId("sg")
            let egress = SecurityGroupRule(id: c.nextId("sgr"), groupId: id, isEgress: true, ipProtocol: "-1", cidrIpv4: "0.0.0.0/0")
            r.securityGroups[id] = SimSecurityGroup(id: id, name: name, description: description, vpcId: vpcId, rules: [egress], tags: tags)
            return id
        }
    }

    func authorizeIngress(groupId: String, permissions: [IpPermission]) async throws(ActionError) {
        try await call("AuthorizeSecurityGroupIngress") { (r, c) throws(ActionError) in try Self.authorize(&r, &c, groupId, permissions, egress: false) }
    }

    func authorizeEgress(groupId: String, permissions: [IpPermission]) async throws(ActionError) {
        try await call("AuthorizeSecurityGroupEgress") { (r, c) throws(ActionError) in try Self.authorize(&r, &c, groupId, permissions, egress: true) }
    }

    func revokeIngress(groupId: String, permissions: [IpPermission]) async throws(ActionError) {
        try await call("RevokeSecurityGroupIngress") { (r, _) throws(ActionError) in try Self.revoke(&r, groupId, permissions, egress: false) }
    }

    func revokeEgress(groupId: String, permissions: [IpPermission]) async throws(ActionError) {
        try await call("RevokeSecurityGroupEgress") { (r, _) throws(ActionError) in try Self.revoke(&r, groupId, permissions, egress: true) }
    }

    func revokeIngress(groupId: String, ruleIds: [String]) async throws(ActionError) {
        try await call("RevokeSecurityGroupIngress") { (r, _) throws(ActionError) in
            let g = try Self.group(r, groupId)
            for id in ruleIds where !g.rules.contains(where: { $0.id == id && !$0.isEgress }) {
                throw .permanent("InvalidSecurityGroupRuleId.NotFound", "The security group rule ID '\(id)' does not exist")
            }
            r.securityGroups[groupId]?.rules.removeAll { ruleIds.contains($0.id) }
        }
    }

    func describeSecurityGroupRules(groupId: String) async throws(ActionError) -> [SecurityGroupRule] {
        try await call("DescribeSecurityGroupRules") { (r, _) throws(ActionError) in try Self.group(r, groupId).rules }
    }

    static func authorize(_ r: inout SimRegion, _ c: inout SimulatedCloud.Context, _ groupId: String, _ permissions: [IpPermission], egress: Bool) throws(ActionError) {
        let g = try group(r, groupId)
        var new: [SecurityGroupRule] = []
        for p in permissions {
            let proto = IpPermission.normalizedProtocol(p.ipProtocol)
            guard ["tcp", "udp", "icmp", "icmpv6", "-1"].contains(proto) || Int(proto) != nil else {
                throw .permanent("InvalidParameterValue", "Invalid value '\(p.ipProtocol)' for IP protocol. Unknown protocol.")
            }
            if proto == "tcp" || proto == "udp" {
                guard let from = p.fromPort, let to = p.toPort, (0...65535).contains(from), (0...65535).contains(to), from <= to else {
                    throw .permanent("InvalidParameterValue", "Invalid port range \(p.fromPort.map(String.init) ?? "none")-\(p.toPort.map(String.init) ?? "none") for \(proto)")
                }
            }
            for ref in p.groupIds { _ = try group(r, ref) }
            let rules = p.expanded(groupId: groupId, isEgress: egress)
            if rules.isEmpty { throw .permanent("MissingParameter", "No source or destination given for the \(proto) permission") }
            for rule in rules {
                if g.rules.contains(where: { $0.sameEffect(as: rule) }) || new.contains(where: { $0.sameEffect(as: rule) }) {
                    throw .permanent("InvalidPermission.Duplicate", "the specified rule \"\(rule.awsDescription)\" already exists")
                }
                var added = rule
                added.id = c.nextId("sgr")
                new.append(added)
            }
        }
        r.securityGroups[groupId]?.rules.append(contentsOf: new)
    }

    static func revoke(_ r: inout SimRegion, _ groupId: String, _ permissions: [IpPermission], egress: Bool) throws(ActionError) {
        let g = try group(r, groupId)
        var remove: [String] = []
        for p in permissions {
            for rule in p.expanded(groupId: groupId, isEgress: egress) {
                guard let existing = g.rules.first(where: { $0.sameEffect(as: rule) }) else {
                    throw .permanent("InvalidPermission.NotFound", "The specified rule does not exist in this security group.")
                }
                remove.append(existing.id)
            }
        }
        r.securityGroups[groupId]?.rules.removeAll { remove.contains($0.id) }
    }

    // MARK: Volumes and snapshots

    func describeVolumes(ids: [String]) async throws(ActionError) -> [Volume] {
        try await call("DescribeVolumes") { (r, _) throws(ActionError) in
            var out: [Volume] = []
            for id in ids {
                guard let v = r.volumes[id] else { throw .permanent("InvalidVolume.NotFound", "The volume '\(id)' does not exist.") }
                out.append(v)
            }
            return out
        }
    }

    func describeSnapshots(tagKey: String, tagValue: String) async throws(ActionError) -> [Snapshot] {
        try await call("DescribeSnapshots") { (r, _) throws(ActionError) in
            r.snapshots.values.filter { $0.tags.contains(Tag(tagKey, tagValue)) }.sorted { $0.id < $1.id }
        }
    }

    func createSnapshot(volumeId: String, description: String, tags: [Tag]) async throws(ActionError) -> Snapshot {
        try await call("CreateSnapshot") { (r, c) throws(ActionError) in
            try Self.checkId(volumeId, prefix: "vol", code: "InvalidVolumeID.Malformed")
            guard r.volumes[volumeId] != nil else { throw .permanent("InvalidVolume.NotFound", "The volume '\(volumeId)' does not exist.") }
            guard description.count <= 255 else { throw .permanent("InvalidParameterValue", "The snapshot description must be at most 255 characters") }
            let snapshot = Snapshot(
                id: c.nextId("snap"), volumeId: volumeId, state: "completed", description: description, startTime: AWSTime.iso8601Millis(c.now), tags: tags)
            r.snapshots[snapshot.id] = snapshot
            return snapshot
        }
    }
}
