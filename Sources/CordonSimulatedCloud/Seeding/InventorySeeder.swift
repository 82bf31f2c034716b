import CordonAWS
import CordonCloud
import CordonCore
import Foundation

/// Creates the resources of an inventory (the simulated cloud's initial state) on an
/// endpoint that speaks AWS's APIs — moto_server, for drills and tests — through the
/// same signed clients Cordon's actions use, and answers which id the endpoint gave
/// each of them (it makes its own: `i-0a1b…` in the inventory is `i-5f3c…` there).
///
/// What is created: VPCs (a /16 around their interfaces' addresses) and subnets (a /24),
/// security groups with exactly the inventory's rules (the allow-all egress rule a new
/// group gets is revoked first), instances through RunInstances (type, first interface's
/// subnet and address, tags, termination protection, block devices with size, type and
/// encryption; groups set on each interface; further interfaces created and attached;
/// stopped instances stopped), trails (logging to a bucket of their own, started when
/// the inventory says they log), SNS topics, IAM users with their access keys (and
/// status), login profiles and inline policies, roles with theirs, and S3 buckets with
/// their Block Public Access settings.
///
/// Only for endpoints that are not a real account: it creates resources and never
/// deletes any. The seeding-only calls live here, not in the `Cloud` protocol the
/// actions use.
public struct InventorySeeder: Sendable {
    public let cloud: AWSCloud

    public init(cloud: AWSCloud) { self.cloud = cloud }

    /// What the seeding made.
    public struct Seeded: Sendable {
        /// Inventory id → the endpoint's id (instances, interfaces, volumes, VPCs,
        /// subnets, security groups, rules, access keys; the account when the
        /// inventory's differs from the endpoint's).
        public var ids: [String: String]
        /// The endpoint's account (from `sts:GetCallerIdentity`), which was seeded.
        public var account: String
        /// The inventory account seeded into it.
        public var inventoryAccount: String
        /// Accounts of the inventory that were not seeded: the endpoint's credentials
        /// reach one account.
        public var unseededAccounts: [String]
        /// Resources created, by kind (`instance`, `security group`…).
        public var created: [String: Int]
    }

    /// A seeding call that failed: what was being created and what the endpoint said.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var endpoint: String
        /// e.g. `security group sg-0aa1… (bastion-prod-sg) in us-east-1`.
        public var resource: String
        public var error: ActionError
        /// True when the endpoint could not be reached at all.
        public var unreachable: Bool

        public var description: String {
            if unreachable {
                return "cannot reach the AWS endpoint \(endpoint) (\(error.code): \(error.message)); is moto_server running there?"
            }
            return "seeding \(endpoint) failed while creating \(resource): \(error.code): \(error.message)"
        }
    }

    static let transportCodes: Set<String> = ["ConnectionRefused", "ConnectionError", "ConnectTimeout", "ConnectionClosed", "RequestTimeout", "InvalidEndpoint"]

    /// The trust policy of seeded roles.
    static let trustPolicy =
        #"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}"#
    /// The password of seeded login profiles (moto checks none; AWS's default policy accepts it).
    static let seedPassword = "Seed-Password-1!"

    /// Seeds the endpoint; `inventory`'s account that matches the endpoint's (else its
    /// default account) is created there.
    public func seed(_ inventory: Inventory) async throws(Failure) -> Seeded {
        var run = Run(cloud: cloud, endpoint: (try? cloud.config.endpoint(.ec2, region: "us-east-1").url) ?? "?")
        return try await run.seed(inventory)
    }

    /// One seeding: the id map so far and the counts.
    struct Run {
        let cloud: AWSCloud
        let endpoint: String
        var ids: [String: String] = [:]
        var created: [String: Int] = [:]

        init(cloud: AWSCloud, endpoint: String) {
            self.cloud = cloud
            self.endpoint = endpoint
        }

        func failure(_ resource: String, _ error: ActionError) -> Failure {
            Failure(endpoint: endpoint, resource: resource, error: error, unreachable: InventorySeeder.transportCodes.contains(error.code))
        }

        func client(_ service: AWSService, _ region: String, for resource: String) async throws(Failure) -> AWSServiceClient {
            do {
                return try await cloud.client(service, CloudScope(region: region))
            } catch {
                throw failure(resource, error)
            }
        }

        /// A query call made for `resource`.
        func query(_ client: AWSServiceClient, _ action: String, _ params: [(String, String)], for resource: String) async throws(Failure) -> XMLTree {
            do {
                return try await client.query(action, params)
            } catch {
                throw failure(resource, error)
            }
        }

        mutating func count(_ kind: String) { created[kind, default: 0] += 1 }

        mutating func seed(_ inventory: Inventory) async throws(Failure) -> Seeded {
            // Who the credentials are: also tells an endpoint that is down at once.
            let sts = try await client(.sts, "us-east-1", for: "the caller identity")
            let identity: CallerIdentity
            do {
                identity = try await AWSSTS(client: sts).getCallerIdentity()
            } catch {
                throw failure("the caller identity (sts:GetCallerIdentity)", error)
            }
            let source = inventory.world.accounts[identity.account] != nil ? identity.account : inventory.defaultAccount
            let account = inventory.world.accounts[source] ?? SimAccount()
            if source != identity.account { ids[source] = identity.account }
            for (region, r) in account.regions.sorted(by: { $0.key < $1.key }) where !r.isEmpty {
                try await seedRegion(region, r)
            }
            try await seedIAM(account)
            try await seedBuckets(account)
            return Seeded(
                ids: ids, account: identity.account, inventoryAccount: source, unseededAccounts: inventory.accounts.filter { $0 != source },
                created: created)
        }

        // MARK: - EC2

        mutating func seedRegion(_ region: String, _ r: SimRegion) async throws(Failure) {
            let ec2 = try await client(.ec2, region, for: "EC2 in \(region)")
            if !r.instances.isEmpty || !r.securityGroups.isEmpty {
                try await seedNetwork(region, r, ec2)
            }
            if !r.trails.isEmpty { try await seedTrails(region, r) }
            if !r.topics.isEmpty {
                let sns = try await client(.sns, region, for: "SNS in \(region)")
                for topic in r.topics.values.sorted(by: { $0.name < $1.name }) {
                    _ = try await query(sns, "CreateTopic", [("Name", topic.name)], for: "SNS topic \(topic.name) in \(region)")
                    count("topic")
                }
            }
        }

        mutating func seedNetwork(_ region: String, _ r: SimRegion, _ ec2: AWSServiceClient) async throws(Failure) {
            // The addresses each VPC and subnet must hold, and each subnet's zone.
            var vpcIps: [String: [String]] = [:]
            var subnetIps: [String: [String]] = [:]
            var subnetVpc: [String: String?] = [:]
            var subnetZone: [String: String] = [:]
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
            var vpcs = Set(vpcIps.keys)
            for group in r.securityGroups.values { if let v = group.vpcId { vpcs.insert(v) } }
            for case let v? in subnetVpc.values { vpcs.insert(v) }

            var image = ""
            if !r.instances.isEmpty {
                let images = try await query(ec2, "DescribeImages", [("Owner.1", "amazon")], for: "an image to launch instances from in \(region)")
                guard let first = images.items("imagesSet").first?.nonEmpty("imageId") else {
                    throw failure("an image to launch instances from in \(region)", .permanent("NoImage", "DescribeImages (owner amazon) listed no image"))
                }
                image = first
            }

            var vpcCidr: [String: IPv4Block] = [:]
            var spare = 200
            for vpc in vpcs.sorted() {
                let block: IPv4Block
                if let ip = vpcIps[vpc]?.first.flatMap(IPv4Block.address) {
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
            var subnetCidr: [String: IPv4Block] = [:]
            var spareSubnet: [String: UInt32] = [:]
            for subnet in subnetVpc.keys.sorted() {
                guard let vpc = subnetVpc[subnet] ?? nil, let vpcId = ids[vpc], let vpcBlock = vpcCidr[vpc] else {
                    throw failure("subnet \(subnet) in \(region)", .permanent("NoVpc", "the inventory gives no VPC for the instances in subnet \(subnet): give them `vpc`"))
                }
                let block: IPv4Block
                if let ip = subnetIps[subnet]?.first.flatMap(IPv4Block.address) {
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
                    ec2, "CreateSubnet", [("VpcId", vpcId), ("CidrBlock", block.description), ("AvailabilityZone", subnetZone[subnet] ?? region + "a")], for: what)
                guard let id = made.nonEmpty("subnet", "subnetId") else { throw failure(what, .permanent("InvalidResponse", "CreateSubnet answered without a subnetId")) }
                ids[subnet] = id
                subnetCidr[subnet] = block
                count("subnet")
            }

            // Security groups, then their rules (a rule may refer to any group).
            var groups: [String: String] = [:]
            let sortedGroups = r.securityGroups.values.sorted(by: { $0.id < $1.id })
            for g in sortedGroups {
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
                groups[g.id] = id
                ids[g.id] = id
                count("security group")
            }
            for g in sortedGroups {
                let gid = groups[g.id]!
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
                    let made = try await query(ec2, rule.isEgress ? "AuthorizeSecurityGroupEgress" : "AuthorizeSecurityGroupIngress", p.pairs, for: ruleWhat)
                    if !rule.id.isEmpty, let ruleId = made.items("securityGroupRuleSet").first?.nonEmpty("securityGroupRuleId") { ids[rule.id] = ruleId }
                    count("security group rule")
                }
            }

            for instance in r.instances.values.sorted(by: { $0.id < $1.id }) {
                try await seedInstance(region, instance, r, ec2, image: image, groups: groups, subnetCidr: subnetCidr)
            }
        }

        mutating func seedInstance(
            _ region: String, _ inst: SimInstance, _ r: SimRegion, _ ec2: AWSServiceClient, image: String, groups: [String: String], subnetCidr: [String: IPv4Block]
        ) async throws(Failure) {
            let what = "instance \(inst.id)\(inst.tags.first { $0.key == "Name" }.map { " (\($0.value))" } ?? "") in \(region)"
            let enis = inst.networkInterfaces.sorted(by: { $0.deviceIndex < $1.deviceIndex })
            func groupIds(_ eni: SimInterface) throws(Failure) -> [String] {
                try eni.groupIds.map { (g: String) throws(Failure) -> String in
                    guard let id = groups[g] else { throw failure(what, .permanent("UnknownGroup", "interface \(eni.id) is in security group \(g), which the inventory does not declare in \(region)")) }
                    return id
                }
            }
            var p = QueryParams()
            p.add("ImageId", image)
            p.add("MinCount", "1")
            p.add("MaxCount", "1")
            p.add("InstanceType", inst.instanceType ?? "t3.micro")
            let first = enis.first
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
            let run = try await query(ec2, "RunInstances", p.pairs, for: what)
            guard let made = run.items("instancesSet").first, let instanceId = made.nonEmpty("instanceId") else {
                throw failure(what, .permanent("InvalidResponse", "RunInstances answered without an instanceId"))
            }
            ids[inst.id] = instanceId
            count("instance")
            // Groups go on the interface, not in RunInstances: moto adds an instance's
            // launch groups to every interface it describes, even after they change.
            if let first, let primary = made.items("networkInterfaceSet").first?.nonEmpty("networkInterfaceId") {
                var g = QueryParams()
                g.add("NetworkInterfaceId", primary)
                g.addList("SecurityGroupId", try groupIds(first))
                _ = try await query(ec2, "ModifyNetworkInterfaceAttribute", g.pairs, for: "the security groups of interface \(first.id) of \(what)")
            }
            for eni in enis.dropFirst() {
                let eniWhat = "interface \(eni.id) of \(what)"
                guard let subnet = eni.subnetId ?? inst.subnetId, let subnetId = ids[subnet] else {
                    throw failure(eniWhat, .permanent("NoSubnet", "the inventory gives no subnet for interface \(eni.id)"))
                }
                var c = QueryParams()
                c.add("SubnetId", subnetId)
                c.addList("SecurityGroupId", try groupIds(eni))
                if let ip = eni.privateIp, let a = IPv4Block.address(ip), subnetCidr[subnet]?.contains(a) == true { c.add("PrivateIpAddress", ip) }
                let createdEni = try await query(ec2, "CreateNetworkInterface", c.pairs, for: eniWhat)
                guard let eniId = createdEni.nonEmpty("networkInterface", "networkInterfaceId") else {
                    throw failure(eniWhat, .permanent("InvalidResponse", "CreateNetworkInterface answered without a networkInterfaceId"))
                }
                _ = try await query(
                    ec2, "AttachNetworkInterface", [("NetworkInterfaceId", eniId), ("InstanceId", instanceId), ("DeviceIndex", String(eni.deviceIndex))], for: eniWhat)
                count("network interface")
            }
            // The ids the endpoint gave the interfaces and volumes.
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
            if inst.state == "stopped" || inst.state == "stopping" {
                _ = try await query(ec2, "StopInstances", [("InstanceId.1", instanceId)], for: "stopping \(what)")
            }
        }

        // MARK: - CloudTrail, S3, IAM

        mutating func seedTrails(_ region: String, _ r: SimRegion) async throws(Failure) {
            let bucket = "cordon-seed-trail-logs-" + region
            try await createBucket(bucket, region: region, for: "the log bucket \(bucket) of the trails in \(region)")
            let ct = try await client(.cloudtrail, region, for: "CloudTrail in \(region)")
            for trail in r.trails.values.sorted(by: { $0.name < $1.name }) {
                let what = "trail \(trail.name) in \(region)"
                do {
                    _ = try await ct.json(targetPrefix: AWSCloudTrail.target, "CreateTrail", ["Name": .string(trail.name), "S3BucketName": .string(bucket)])
                    if trail.isLogging { _ = try await ct.json(targetPrefix: AWSCloudTrail.target, "StartLogging", ["Name": .string(trail.name)]) }
                } catch {
                    throw failure(what, error)
                }
                count("trail")
            }
        }

        func createBucket(_ name: String, region: String, for what: String) async throws(Failure) {
            let s3 = try await client(.s3, region, for: what)
            var body: [UInt8] = []
            var headers: [(name: String, value: String)] = []
            if region != "us-east-1" {
                body = Array(
                    """
                    <CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>\(xmlEscape(region))</LocationConstraint></CreateBucketConfiguration>
                    """.utf8)
                headers.append(("Content-Type", "application/xml"))
            }
            do {
                _ = try await s3.rest("PUT", path: AWSS3.bucketPath(name), headers: headers, body: body, operation: "CreateBucket")
            } catch {
                throw failure(what, error)
            }
        }

        mutating func seedBuckets(_ account: SimAccount) async throws(Failure) {
            for bucket in account.buckets.values.sorted(by: { $0.name < $1.name }) {
                let what = "S3 bucket \(bucket.name)"
                try await createBucket(bucket.name, region: "us-east-1", for: what)
                count("bucket")
                if let block = bucket.publicAccessBlock {
                    do {
                        try await AWSS3(client: try await cloud.client(.s3, CloudScope(region: "us-east-1"))).putPublicAccessBlock(bucket: bucket.name, block)
                    } catch {
                        throw failure("the Block Public Access settings of \(what)", error)
                    }
                }
            }
        }

        mutating func seedIAM(_ account: SimAccount) async throws(Failure) {
            guard !account.users.isEmpty || !account.roles.isEmpty else { return }
            let iam = try await client(.iam, "us-east-1", for: "IAM")
            for user in account.users.values.sorted(by: { $0.name < $1.name }) {
                let what = "IAM user \(user.name)"
                _ = try await query(iam, "CreateUser", [("UserName", user.name)], for: what)
                count("user")
                for key in user.accessKeys {
                    let keyWhat = "access key \(key.id) of \(what)"
                    let made = try await query(iam, "CreateAccessKey", [("UserName", user.name)], for: keyWhat)
                    guard let id = made.descendant("AccessKeyId").map({ $0.text.trimmingCharacters(in: .whitespacesAndNewlines) }), !id.isEmpty else {
                        throw failure(keyWhat, .permanent("InvalidResponse", "CreateAccessKey answered without an AccessKeyId"))
                    }
                    ids[key.id] = id
                    count("access key")
                    if key.status != "Active" {
                        _ = try await query(iam, "UpdateAccessKey", [("UserName", user.name), ("AccessKeyId", id), ("Status", key.status)], for: "the status (\(key.status)) of \(keyWhat)")
                    }
                }
                if let profile = user.loginProfile {
                    var p = [("UserName", user.name), ("Password", InventorySeeder.seedPassword)]
                    if profile.passwordResetRequired { p.append(("PasswordResetRequired", "true")) }
                    _ = try await query(iam, "CreateLoginProfile", p, for: "the login profile of \(what)")
                }
                for (name, document) in user.inlinePolicies.sorted(by: { $0.key < $1.key }) {
                    _ = try await query(
                        iam, "PutUserPolicy", [("UserName", user.name), ("PolicyName", name), ("PolicyDocument", document)], for: "inline policy \(name) of \(what)")
                }
            }
            for role in account.roles.values.sorted(by: { $0.name < $1.name }) {
                let what = "IAM role \(role.name)"
                _ = try await query(iam, "CreateRole", [("RoleName", role.name), ("AssumeRolePolicyDocument", InventorySeeder.trustPolicy)], for: what)
                count("role")
                for (name, document) in role.inlinePolicies.sorted(by: { $0.key < $1.key }) {
                    _ = try await query(
                        iam, "PutRolePolicy", [("RoleName", role.name), ("PolicyName", name), ("PolicyDocument", document)], for: "inline policy \(name) of \(what)")
                }
            }
        }
    }
}

/// An IPv4 block: a network address and a prefix length.
struct IPv4Block: Sendable, Equatable, CustomStringConvertible {
    var network: UInt32
    var bits: Int

    /// The block of `bits` around `address` (host bits cleared).
    init(address: UInt32, bits: Int) {
        self.bits = bits
        self.network = bits == 0 ? 0 : address & (UInt32.max << UInt32(32 - bits))
    }

    func contains(_ address: UInt32) -> Bool { IPv4Block(address: address, bits: bits).network == network }

    /// `10.20.1.25` as a number; nil when it is not a dotted quad.
    static func address(_ text: String) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var n: UInt32 = 0
        for part in parts {
            guard let octet = UInt8(part) else { return nil }
            n = n << 8 | UInt32(octet)
        }
        return n
    }

    var description: String {
        "\(network >> 24).\(network >> 16 & 0xff).\(network >> 8 & 0xff).\(network & 0xff)/\(bits)"
    }
}
