import CordonCloud
import CordonCore

/// EC2 over the query API (version 2016-11-15).
public struct AWSEC2: EC2API {
    public let client: AWSServiceClient
    /// Pages followed at most, so a misbehaving endpoint cannot loop forever.
    static let maxPages = 1000

    public init(client: AWSServiceClient) { self.client = client }

    /// Calls `action` until `nextToken` is empty, collecting the `item`s under `listPath`.
    func paged(_ action: String, _ params: QueryParams, listPath: [String]) async throws(ActionError) -> [XMLTree] {
        var items: [XMLTree] = []
        var token: String?
        for _ in 0..<Self.maxPages {
            var p = params
            p.add("NextToken", token)
            let tree = try await client.query(action, p.pairs)
            var node: XMLTree? = tree
            for name in listPath { node = node?.child(name) }
            items += node?.children.filter { $0.name == "item" } ?? []
            token = tree.nonEmpty("nextToken")
            if token == nil { break }
        }
        return items
    }

    public func describeInstance(_ instanceId: String) async throws(ActionError) -> EC2Instance {
        var p = QueryParams()
        p.addList("InstanceId", [instanceId])
        let reservations = try await paged("DescribeInstances", p, listPath: ["reservationSet"])
        for reservation in reservations {
            for item in reservation.items("instancesSet") where item.string("instanceId") == instanceId {
                return Self.instance(item)
            }
        }
        throw .permanent("InvalidInstanceID.NotFound", "The instance ID '\(instanceId)' does not exist")
    }

    static func tags(_ node: XMLTree) -> [Tag] {
        node.items("tagSet").compactMap { item in
            guard let key = item.string("key") else { return nil }
            return Tag(key, item.string("value") ?? "")
        }
    }

    static func groups(_ node: XMLTree?) -> [GroupRef] {
        guard let node else { return [] }
        return node.children.filter { $0.name == "item" }.compactMap { g in
            guard let id = g.nonEmpty("groupId") else { return nil }
            return GroupRef(id: id, name: g.nonEmpty("groupName"))
        }
    }

    static func instance(_ item: XMLTree) -> EC2Instance {
        let interfaces = item.items("networkInterfaceSet").compactMap { n -> NetworkInterface? in
            guard let id = n.nonEmpty("networkInterfaceId") else { return nil }
            return NetworkInterface(
                id: id, groups: groups(n.child("groupSet")), privateIp: n.nonEmpty("privateIpAddress"), publicIp: n.nonEmpty("association", "publicIp"),
                subnetId: n.nonEmpty("subnetId"), vpcId: n.nonEmpty("vpcId"), macAddress: n.nonEmpty("macAddress"),
                attachmentDeviceIndex: n.int("attachment", "deviceIndex"))
        }
        let devices = item.items("blockDeviceMapping").compactMap { d -> BlockDevice? in
            guard let volume = d.nonEmpty("ebs", "volumeId") else { return nil }
            return BlockDevice(deviceName: d.string("deviceName") ?? "", volumeId: volume)
        }
        return EC2Instance(
            id: item.string("instanceId") ?? "", state: item.string("instanceState", "name") ?? "unknown", instanceType: item.nonEmpty("instanceType"),
            imageId: item.nonEmpty("imageId"), vpcId: item.nonEmpty("vpcId"), subnetId: item.nonEmpty("subnetId"),
            privateIp: item.nonEmpty("privateIpAddress"), publicIp: item.nonEmpty("ipAddress"), launchTime: item.nonEmpty("launchTime"),
            iamInstanceProfileArn: item.nonEmpty("iamInstanceProfile", "arn"), tags: tags(item), securityGroups: groups(item.child("groupSet")),
            networkInterfaces: interfaces, blockDevices: devices)
    }

    package static func permissions(_ node: XMLTree?) -> [IpPermission] {
        guard let node else { return [] }
        return node.children.filter { $0.name == "item" }.map { p in
            IpPermission(
                ipProtocol: p.string("ipProtocol") ?? "-1", fromPort: p.int("fromPort"), toPort: p.int("toPort"),
                ipv4Ranges: p.items("ipRanges").compactMap { $0.nonEmpty("cidrIp") },
                ipv6Ranges: p.items("ipv6Ranges").compactMap { $0.nonEmpty("cidrIpv6") },
                groupIds: p.items("groups").compactMap { $0.nonEmpty("groupId") },
                prefixListIds: p.items("prefixListIds").compactMap { $0.nonEmpty("prefixListId") })
        }
    }

    static func securityGroup(_ item: XMLTree) -> SecurityGroup {
        SecurityGroup(
            id: item.string("groupId") ?? "", name: item.string("groupName") ?? "", description: item.string("groupDescription") ?? "",
            vpcId: item.nonEmpty("vpcId"), ingress: permissions(item.child("ipPermissions")), egress: permissions(item.child("ipPermissionsEgress")),
            tags: tags(item))
    }

    public func describeSecurityGroups(ids: [String]) async throws(ActionError) -> [SecurityGroup] {
        if ids.isEmpty { return [] }
        var p = QueryParams()
        p.addList("GroupId", ids)
        return try await paged("DescribeSecurityGroups", p, listPath: ["securityGroupInfo"]).map(Self.securityGroup)
    }

    public func findSecurityGroup(name: String, vpcId: String?) async throws(ActionError) -> SecurityGroup? {
        var p = QueryParams()
        var filters = [("group-name", [name])]
        if let vpcId { filters.append(("vpc-id", [vpcId])) }
        p.addFilters(filters)
        let groups = try await paged("DescribeSecurityGroups", p, listPath: ["securityGroupInfo"]).map(Self.securityGroup)
        return groups.first { $0.name == name && (vpcId == nil || $0.vpcId == vpcId) }
    }

    public func createSecurityGroup(name: String, description: String, vpcId: String?, tags: [Tag]) async throws(ActionError) -> String {
        var p = QueryParams()
        p.add("GroupName", name)
        p.add("GroupDescription", description)
        p.add("VpcId", vpcId)
        if !tags.isEmpty {
            p.add("TagSpecification.1.ResourceType", "security-group")
            p.addTags("TagSpecification.1.Tag", tags)
        }
        let tree = try await client.query("CreateSecurityGroup", p.pairs)
        guard let id = tree.nonEmpty("groupId") else {
            throw .permanent("InvalidResponse", "CreateSecurityGroup answered without a groupId")
        }
        return id
    }

    package static func encode(_ permissions: [IpPermission], into p: inout QueryParams) {
        for (i, perm) in permissions.enumerated() {
            let base = "IpPermissions.\(i + 1)"
            p.add("\(base).IpProtocol", perm.ipProtocol)
            p.add("\(base).FromPort", perm.fromPort.map(String.init))
            p.add("\(base).ToPort", perm.toPort.map(String.init))
            for (j, cidr) in perm.ipv4Ranges.enumerated() { p.add("\(base).IpRanges.\(j + 1).CidrIp", cidr) }
            for (j, cidr) in perm.ipv6Ranges.enumerated() { p.add("\(base).Ipv6Ranges.\(j + 1).CidrIpv6", cidr) }
            for (j, group) in perm.groupIds.enumerated() { p.add("\(base).Groups.\(j + 1).GroupId", group) }
            for (j, list) in perm.prefixListIds.enumerated() { p.add("\(base).PrefixListIds.\(j + 1).PrefixListId", list) }
        }
    }

    func permissionCall(_ action: String, groupId: String, _ permissions: [IpPermission]) async throws(ActionError) {
        if permissions.isEmpty { return }
        var p = QueryParams()
        p.add("GroupId", groupId)
        Self.encode(permissions, into: &p)
        _ = try await client.query(action, p.pairs)
    }

    public func authorizeIngress(groupId: String, permissions: [IpPermission]) async throws(ActionError) {
        try await permissionCall("AuthorizeSecurityGroupIngress", groupId: groupId, permissions)
    }

    public func revokeIngress(groupId: String, permissions: [IpPermission]) async throws(ActionError) {
        try await permissionCall("RevokeSecurityGroupIngress", groupId: groupId, permissions)
    }

    public func revokeIngress(groupId: String, ruleIds: [String]) async throws(ActionError) {
        if ruleIds.isEmpty { return }
        var p = QueryParams()
        p.add("GroupId", groupId)
        p.addList("SecurityGroupRuleId", ruleIds)
        _ = try await client.query("RevokeSecurityGroupIngress", p.pairs)
    }

    public func authorizeEgress(groupId: String, permissions: [IpPermission]) async throws(ActionError) {
        try await permissionCall("AuthorizeSecurityGroupEgress", groupId: groupId, permissions)
    }

    public func revokeEgress(groupId: String, permissions: [IpPermission]) async throws(ActionError) {
        try await permissionCall("RevokeSecurityGroupEgress", groupId: groupId, permissions)
    }

    public func describeSecurityGroupRules(groupId: String) async throws(ActionError) -> [SecurityGroupRule] {
        var p = QueryParams()
        p.addFilters([("group-id", [groupId])])
        return try await paged("DescribeSecurityGroupRules", p, listPath: ["securityGroupRuleSet"]).map { r in
            SecurityGroupRule(
                id: r.string("securityGroupRuleId") ?? "", groupId: r.string("groupId") ?? groupId, isEgress: r.bool("isEgress") ?? false,
                ipProtocol: r.string("ipProtocol") ?? "-1", fromPort: r.int("fromPort"), toPort: r.int("toPort"), cidrIpv4: r.nonEmpty("cidrIpv4"),
                cidrIpv6: r.nonEmpty("cidrIpv6"), referencedGroupId: r.nonEmpty("referencedGroupInfo", "groupId"), prefixListId: r.nonEmpty("prefixListId"),
                description: r.nonEmpty("description"))
        }
    }

    public func setNetworkInterfaceGroups(_ interfaceId: String, groupIds: [String]) async throws(ActionError) {
        var p = QueryParams()
        p.add("NetworkInterfaceId", interfaceId)
        p.addList("SecurityGroupId", groupIds)
        _ = try await client.query("ModifyNetworkInterfaceAttribute", p.pairs)
    }

    public func terminationProtection(_ instanceId: String) async throws(ActionError) -> Bool {
        let tree = try await client.query("DescribeInstanceAttribute", [("InstanceId", instanceId), ("Attribute", "disableApiTermination")])
        return tree.bool("disableApiTermination", "value") ?? false
    }

    public func setTerminationProtection(_ instanceId: String, _ enabled: Bool) async throws(ActionError) {
        _ = try await client.query("ModifyInstanceAttribute", [("InstanceId", instanceId), ("DisableApiTermination.Value", enabled ? "true" : "false")])
    }

    public func createTags(resourceIds: [String], tags: [Tag]) async throws(ActionError) {
        if resourceIds.isEmpty || tags.isEmpty { return }
        var p = QueryParams()
        p.addList("ResourceId", resourceIds)
        p.addTags("Tag", tags)
        _ = try await client.query("CreateTags", p.pairs)
    }

    public func describeVolumes(ids: [String]) async throws(ActionError) -> [Volume] {
        if ids.isEmpty { return [] }
        var p = QueryParams()
        p.addList("VolumeId", ids)
        return try await paged("DescribeVolumes", p, listPath: ["volumeSet"]).map { v in
            Volume(
                id: v.string("volumeId") ?? "", sizeGiB: v.int("size") ?? 0, state: v.string("status") ?? "unknown",
                availabilityZone: v.nonEmpty("availabilityZone"), encrypted: v.bool("encrypted") ?? false, volumeType: v.nonEmpty("volumeType"),
                attachedTo: v.items("attachmentSet").compactMap { $0.nonEmpty("instanceId") }, tags: Self.tags(v))
        }
    }

    static func snapshot(_ s: XMLTree) -> Snapshot {
        Snapshot(
            id: s.string("snapshotId") ?? "", volumeId: s.string("volumeId") ?? "", state: s.string("status") ?? "unknown",
            description: s.nonEmpty("description"), startTime: s.nonEmpty("startTime"), tags: tags(s))
    }

    public func describeSnapshots(tagKey: String, tagValue: String) async throws(ActionError) -> [Snapshot] {
        var p = QueryParams()
        p.addList("Owner", ["self"])
        p.addFilters([("tag:\(tagKey)", [tagValue])])
        return try await paged("DescribeSnapshots", p, listPath: ["snapshotSet"]).map(Self.snapshot)
    }

    public func createSnapshot(volumeId: String, description: String, tags: [Tag]) async throws(ActionError) -> Snapshot {
        var p = QueryParams()
        p.add("VolumeId", volumeId)
        p.add("Description", description)
        if !tags.isEmpty {
            p.add("TagSpecification.1.ResourceType", "snapshot")
            p.addTags("TagSpecification.1.Tag", tags)
        }
        let tree = try await client.query("CreateSnapshot", p.pairs)
        var snap = Self.snapshot(tree)
        guard !snap.id.isEmpty else { throw .permanent("InvalidResponse", "CreateSnapshot answered without a snapshotId") }
        if snap.volumeId.isEmpty { snap.volumeId = volumeId }
        if snap.tags.isEmpty { snap.tags = tags }
        return snap
    }
}
