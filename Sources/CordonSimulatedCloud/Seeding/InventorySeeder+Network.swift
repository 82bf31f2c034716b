import CordonAWS
import CordonCloud
import CordonCore
import Foundation

// The EC2 part of seeding: VPCs and subnets around the instances' addresses, security
// groups and their rules, and the instances with their interfaces and volumes.
extension InventorySeeder.Run {
    mutating func seedNetwork(_ region: String, _ r: SimRegion, _ ec2: AWSServiceClient) async throws(InventorySeeder.Failure) {
        let layout = NetworkLayout(region: region, r)
        var image = ""
        if !r.instances.isEmpty { image = try await launchImage(region, ec2) }
        let vpcCidr = try await createVpcs(layout, region, ec2)
        let subnetCidr = try await createSubnets(layout, vpcCidr: vpcCidr, region, ec2)

        // Security groups, then their rules (a rule may refer to any group).
        let created = try await createSecurityGroups(r, region, ec2)
        var groups: [String: String] = [:]
        for (group, id) in created { groups[group.id] = id }
        for (group, id) in created {
            try await seedRules(of: group, id: id, groups: groups, region, ec2)
        }

        for instance in r.instances.values.sorted(by: { $0.id < $1.id }) {
            try await seedInstance(region, instance, r, ec2, image: image, groups: groups, subnetCidr: subnetCidr)
        }
    }

    /// The image instances are launched from: the first one Amazon owns.
    func launchImage(_ region: String, _ ec2: AWSServiceClient) async throws(InventorySeeder.Failure) -> String {
        let images = try await query(ec2, "DescribeImages", [("Owner.1", "amazon")], for: "an image to launch instances from in \(region)")
        guard let first = images.items("imagesSet").first?.nonEmpty("imageId") else {
            throw failure("an image to launch instances from in \(region)", .permanent("NoImage", "DescribeImages (owner amazon) listed no image"))
        }
        return first
    }

    /// Creates every VPC, a /16 around its first address (or a spare 10.x/16 when it has
    /// none); answers each VPC's block.
    mutating func createVpcs(_ layout: NetworkLayout, _ region: String, _ ec2: AWSServiceClient) async throws(InventorySeeder.Failure) -> [String: IPv4Block] {
        var vpcCidr: [String: IPv4Block] = [:]
        var spare = 200
        for vpc in layout.vpcs.sorted() {
            let block: IPv4Block
            if let ip = layout.vpcIps[vpc]?.first.flatMap(IPv4Block.address) {
                block = IPv4Block(address: ip, bits: 16)
            } else {
                spare += 1
                block = IPv4Block(address: (10 << 24) | (UInt32(spare % 256) << 16), bits: 16)
            }
            let what = "VPC \(vpc) (\(block)) in \(region)"
            let made = try await query(ec2, "CreateVpc", [("CidrBlock", block.description)], for: what)
            guard let id = made.nonEmpty("vpc", "vpcId") else { throw failure(what, .permanent("InvalidResponse", "CreateVpc answered without a vpcId")) }
            ids[vpc] = id
            vpcCidr[vpc] = block
            count("vpc")
        }
        return vpcCidr
    }

    /// Creates every subnet, a /24 around its first address (or from the top of its VPC's
    /// range when it has none); answers each subnet's block.
    mutating func createSubnets(
        _ layout: NetworkLayout, vpcCidr: [String: IPv4Block], _ region: String, _ ec2: AWSServiceClient
    ) async throws(InventorySeeder.Failure) -> [String: IPv4Block] {
        var subnetCidr: [String: IPv4Block] = [:]
        var spareSubnet: [String: UInt32] = [:]
        for subnet in layout.subnetVpc.keys.sorted() {
            guard let vpc = layout.subnetVpc[subnet] ?? nil, let vpcId = ids[vpc], let vpcBlock = vpcCidr[vpc] else {
                throw failure("subnet \(subnet) in \(region)", .permanent("NoVpc", "the inventory gives no VPC for the instances in subnet \(subnet): give them `vpc`"))
            }
            let block: IPv4Block
            if let ip = layout.subnetIps[subnet]?.first.flatMap(IPv4Block.address) {
                block = IPv4Block(address: ip, bits: 24)
            } else {
                // No address in it: a /24 from the top of its VPC's range.
                let n = spareSubnet[vpc, default: 255]
                guard n > 0 else {
                    throw failure("subnet \(subnet) in \(region)", .permanent("TooManySubnets", "VPC \(vpc) has more than 255 subnets without an address: give its instances `private_ip`"))
                }
                spareSubnet[vpc] = n - 1
                block = IPv4Block(address: vpcBlock.network | (n << 8), bits: 24)
            }
            let what = "subnet \(subnet) (\(block)) in \(region)"
            let made = try await query(
                ec2, "CreateSubnet", [("VpcId", vpcId), ("CidrBlock", block.description), ("AvailabilityZone", layout.subnetZone[subnet] ?? region + "a")], for: what)
            guard let id = made.nonEmpty("subnet", "subnetId") else { throw failure(what, .permanent("InvalidResponse", "CreateSubnet answered without a subnetId")) }
            ids[subnet] = id
            subnetCidr[subnet] = block
            count("subnet")
        }
        return subnetCidr
    }

    /// Creates the region's security groups (without their rules), in id order; answers
    /// each with the endpoint's id for it.
    mutating func createSecurityGroups(
        _ r: SimRegion, _ region: String, _ ec2: AWSServiceClient
    ) async throws(InventorySeeder.Failure) -> [(group: SimSecurityGroup, id: String)] {
        var created: [(group: SimSecurityGroup, id: String)] = []
        for g in r.securityGroups.values.sorted(by: { $0.id < $1.id }) {
            let what = "security group \(g.id) (\(g.name)) in \(region)"
            var p = QueryParams()
            p.add("GroupName", g.name)
            p.add("GroupDescription", g.description)
            p.add("VpcId", g.vpcId.flatMap { ids[$0] })
            if !g.tags.isEmpty {
                p.add("TagSpecification.1.ResourceType", "security-group")
                p.addTags("TagSpecification.1.Tag", g.tags)
            }
            let made = try await query(ec2, "CreateSecurityGroup", p.pairs, for: what)
            guard let id = made.nonEmpty("groupId") else { throw failure(what, .permanent("InvalidResponse", "CreateSecurityGroup answered without a groupId")) }
            created.append((g, id))
            ids[g.id] = id
            count("security group")
        }
        return created
    }

    /// Gives a created group exactly the inventory's rules. `groups`: inventory id →
    /// endpoint id of every group of the region, for rules that refer to a group.
    mutating func seedRules(
        of g: SimSecurityGroup, id gid: String, groups: [String: String], _ region: String, _ ec2: AWSServiceClient
    ) async throws(InventorySeeder.Failure) {
        let what = "the rules of security group \(g.id) (\(g.name)) in \(region)"
        // AWS gives a new group an allow-all egress rule; the inventory lists every rule.
        var d = QueryParams()
        d.addList("GroupId", [gid])
        let described = try await query(ec2, "DescribeSecurityGroups", d.pairs, for: what)
        let defaults = AWSEC2.permissions(described.items("securityGroupInfo").first?.child("ipPermissionsEgress"))
        if !defaults.isEmpty {
            var p = QueryParams()
            p.add("GroupId", gid)
            AWSEC2.encode(defaults, into: &p)
            _ = try await query(ec2, "RevokeSecurityGroupEgress", p.pairs, for: "the default egress rule of security group \(g.id) in \(region)")
        }
        for rule in g.rules {
            let ruleWhat = "rule \(rule.id) (\(rule.isEgress ? "egress" : "ingress") \(rule.awsDescription)) of security group \(g.id) in \(region)"
            let p = try ruleParams(rule, groupId: gid, groups: groups, what: ruleWhat, region)
            let made = try await query(ec2, rule.isEgress ? "AuthorizeSecurityGroupEgress" : "AuthorizeSecurityGroupIngress", p.pairs, for: ruleWhat)
            if !rule.id.isEmpty, let ruleId = made.items("securityGroupRuleSet").first?.nonEmpty("securityGroupRuleId") { ids[rule.id] = ruleId }
            count("security group rule")
        }
    }

    /// The parameters of the Authorize call that creates one rule.
    func ruleParams(
        _ rule: SecurityGroupRule, groupId gid: String, groups: [String: String], what ruleWhat: String, _ region: String
    ) throws(InventorySeeder.Failure) -> QueryParams {
        var p = QueryParams()
        p.add("GroupId", gid)
        p.add("IpPermissions.1.IpProtocol", rule.ipProtocol)
        p.add("IpPermissions.1.FromPort", rule.fromPort.map(String.init))
        p.add("IpPermissions.1.ToPort", rule.toPort.map(String.init))
        if let c = rule.cidrIpv4 {
            p.add("IpPermissions.1.IpRanges.1.CidrIp", c)
            p.add("IpPermissions.1.IpRanges.1.Description", rule.description)
        }
        if let c = rule.cidrIpv6 {
            p.add("IpPermissions.1.Ipv6Ranges.1.CidrIpv6", c)
            p.add("IpPermissions.1.Ipv6Ranges.1.Description", rule.description)
        }
        if let ref = rule.referencedGroupId {
            guard let refId = groups[ref] else {
                throw failure(ruleWhat, .permanent("UnknownGroup", "the rule refers to security group \(ref), which the inventory does not declare in \(region)"))
            }
            p.add("IpPermissions.1.Groups.1.GroupId", refId)
            p.add("IpPermissions.1.Groups.1.Description", rule.description)
        }
        if let list = rule.prefixListId {
            p.add("IpPermissions.1.PrefixListIds.1.PrefixListId", list)
            p.add("IpPermissions.1.PrefixListIds.1.Description", rule.description)
        }
        return p
    }

    // MARK: - Instances

    mutating func seedInstance(
        _ region: String, _ inst: SimInstance, _ r: SimRegion, _ ec2: AWSServiceClient, image: String, groups: [String: String], subnetCidr: [String: IPv4Block]
    ) async throws(InventorySeeder.Failure) {
        let what = "instance \(inst.id)\(inst.tags.first { $0.key == "Name" }.map { " (\($0.value))" } ?? "") in \(region)"
        let enis = inst.networkInterfaces.sorted(by: { $0.deviceIndex < $1.deviceIndex })
        let launch = launchParams(inst, r, image: image, first: enis.first)
        let run = try await query(ec2, "RunInstances", launch.pairs, for: what)
        guard let made = run.items("instancesSet").first, let instanceId = made.nonEmpty("instanceId") else {
            throw failure(what, .permanent("InvalidResponse", "RunInstances answered without an instanceId"))
        }
        ids[inst.id] = instanceId
        count("instance")
        // Groups go on the interface, not in RunInstances: moto adds an instance's
        // launch groups to every interface it describes, even after they change.
        if let first = enis.first, let primary = made.items("networkInterfaceSet").first?.nonEmpty("networkInterfaceId") {
            var g = QueryParams()
            g.add("NetworkInterfaceId", primary)
            g.addList("SecurityGroupId", try groupIds(first, groups: groups, what: what, region))
            _ = try await query(ec2, "ModifyNetworkInterfaceAttribute", g.pairs, for: "the security groups of interface \(first.id) of \(what)")
        }
        for eni in enis.dropFirst() {
            try await attach(eni, to: inst, instanceId: instanceId, ec2, groups: groups, subnetCidr: subnetCidr, what: what, region)
        }
        try await recordDeviceIds(inst, instanceId: instanceId, enis: enis, ec2, what: what)
        if inst.state == "stopped" || inst.state == "stopping" {
            _ = try await query(ec2, "StopInstances", [("InstanceId.1", instanceId)], for: "stopping \(what)")
        }
    }

    /// The endpoint's ids of an interface's security groups.
    func groupIds(_ eni: SimInterface, groups: [String: String], what: String, _ region: String) throws(InventorySeeder.Failure) -> [String] {
        try eni.groupIds.map { (g: String) throws(InventorySeeder.Failure) -> String in
            guard let id = groups[g] else { throw failure(what, .permanent("UnknownGroup", "interface \(eni.id) is in security group \(g), which the inventory does not declare in \(region)")) }
            return id
        }
    }

    /// The parameters of RunInstances: type, the first interface's subnet and address,
    /// termination protection, tags and block devices.
    func launchParams(_ inst: SimInstance, _ r: SimRegion, image: String, first: SimInterface?) -> QueryParams {
        var p = QueryParams()
        p.add("ImageId", image)
        p.add("MinCount", "1")
        p.add("MaxCount", "1")
        p.add("InstanceType", inst.instanceType ?? "t3.micro")
        if let subnet = first?.subnetId ?? inst.subnetId { p.add("SubnetId", ids[subnet]) }
        p.add("DisableApiTermination", inst.terminationProtection ? "true" : "false")
        p.add("PrivateIpAddress", first?.privateIp)
        if !inst.tags.isEmpty {
            p.add("TagSpecification.1.ResourceType", "instance")
            p.addTags("TagSpecification.1.Tag", inst.tags)
        }
        for (i, device) in inst.blockDevices.enumerated() {
            let v = r.volumes[device.volumeId]
            let base = "BlockDeviceMapping.\(i + 1)"
            p.add("\(base).DeviceName", device.deviceName)
            p.add("\(base).Ebs.VolumeSize", String(v?.sizeGiB ?? 8))
            p.add("\(base).Ebs.DeleteOnTermination", "true")
            p.add("\(base).Ebs.VolumeType", v?.volumeType)
            if v?.encrypted == true { p.add("\(base).Ebs.Encrypted", "true") }
        }
        return p
    }

    /// Creates a further interface of an instance and attaches it at its device index.
    mutating func attach(
        _ eni: SimInterface, to inst: SimInstance, instanceId: String, _ ec2: AWSServiceClient, groups: [String: String], subnetCidr: [String: IPv4Block],
        what: String, _ region: String
    ) async throws(InventorySeeder.Failure) {
        let eniWhat = "interface \(eni.id) of \(what)"
        guard let subnet = eni.subnetId ?? inst.subnetId, let subnetId = ids[subnet] else {
            throw failure(eniWhat, .permanent("NoSubnet", "the inventory gives no subnet for interface \(eni.id)"))
        }
        var c = QueryParams()
        c.add("SubnetId", subnetId)
        c.addList("SecurityGroupId", try groupIds(eni, groups: groups, what: what, region))
        if let ip = eni.privateIp, let a = IPv4Block.address(ip), subnetCidr[subnet]?.contains(a) == true { c.add("PrivateIpAddress", ip) }
        let createdEni = try await query(ec2, "CreateNetworkInterface", c.pairs, for: eniWhat)
        guard let eniId = createdEni.nonEmpty("networkInterface", "networkInterfaceId") else {
            throw failure(eniWhat, .permanent("InvalidResponse", "CreateNetworkInterface answered without a networkInterfaceId"))
        }
        _ = try await query(
            ec2, "AttachNetworkInterface", [("NetworkInterfaceId", eniId), ("InstanceId", instanceId), ("DeviceIndex", String(eni.deviceIndex))], for: eniWhat)
        count("network interface")
    }

    /// Notes the ids the endpoint gave the instance's interfaces and volumes.
    mutating func recordDeviceIds(
        _ inst: SimInstance, instanceId: String, enis: [SimInterface], _ ec2: AWSServiceClient, what: String
    ) async throws(InventorySeeder.Failure) {
        let described = try await query(ec2, "DescribeInstances", [("InstanceId.1", instanceId)], for: what)
        let item = described.items("reservationSet").flatMap { $0.items("instancesSet") }.first { $0.string("instanceId") == instanceId }
        for e in item?.items("networkInterfaceSet") ?? [] {
            guard let index = e.int("attachment", "deviceIndex"), let id = e.nonEmpty("networkInterfaceId") else { continue }
            for want in enis where want.deviceIndex == index { ids[want.id] = id }
        }
        for m in item?.items("blockDeviceMapping") ?? [] {
            guard let volume = m.nonEmpty("ebs", "volumeId") else { continue }
            for device in inst.blockDevices where device.deviceName == m.string("deviceName") {
                ids[device.volumeId] = volume
                count("volume")
            }
        }
    }
}

/// Where a region's instances put their addresses: the addresses each VPC and subnet
/// must hold, each subnet's VPC and zone, and every VPC to create.
struct NetworkLayout {
    var vpcIps: [String: [String]] = [:]
    var subnetIps: [String: [String]] = [:]
    var subnetVpc: [String: String?] = [:]
    var subnetZone: [String: String] = [:]
    /// The VPCs of interfaces, subnets and security groups.
    var vpcs: Set<String> = []

    init(region: String, _ r: SimRegion) {
        for instance in r.instances.values.sorted(by: { $0.id < $1.id }) {
            var zone: String? = nil
            for device in instance.blockDevices { zone = r.volumes[device.volumeId]?.availabilityZone ?? zone }
            for eni in instance.networkInterfaces.sorted(by: { $0.deviceIndex < $1.deviceIndex }) {
                let vpc = eni.vpcId ?? instance.vpcId
                let subnet = eni.subnetId ?? instance.subnetId
                if let vpc, let ip = eni.privateIp { vpcIps[vpc, default: []].append(ip) }
                if let subnet {
                    subnetVpc[subnet] = vpc
                    subnetZone[subnet] = zone ?? region + "a"
                    if let ip = eni.privateIp { subnetIps[subnet, default: []].append(ip) }
                }
            }
        }
        vpcs = Set(vpcIps.keys)
        for group in r.securityGroups.values { if let v = group.vpcId { vpcs.insert(v) } }
        for case let v? in subnetVpc.values { vpcs.insert(v) }
    }
}
