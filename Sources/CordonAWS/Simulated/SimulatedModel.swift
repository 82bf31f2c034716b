import CordonCore

// The state of the simulated cloud: plain Codable values, so that `snapshot()` is a
// faithful, deterministic picture (dictionaries are written with sorted keys).

/// One account: IAM and S3 are global, the rest per region.
struct SimAccount: Codable, Equatable, Sendable {
    var regions: [String: SimRegion] = [:]
    var users: [String: SimUser] = [:]
    var roles: [String: SimRole] = [:]
    var buckets: [String: SimBucket] = [:]
}

struct SimRegion: Codable, Equatable, Sendable {
    var instances: [String: SimInstance] = [:]
    var securityGroups: [String: SimSecurityGroup] = [:]
    var volumes: [String: Volume] = [:]
    var snapshots: [String: Snapshot] = [:]
    var trails: [String: SimTrail] = [:]
    var topics: [String: SimTopic] = [:]

    var isEmpty: Bool { self == SimRegion() }
}

struct SimInstance: Codable, Equatable, Sendable {
    var id: String
    var state: String
    var instanceType: String?
    var imageId: String?
    var vpcId: String?
    var subnetId: String?
    var privateIp: String?
    var publicIp: String?
    var launchTime: String?
    var iamInstanceProfileArn: String?
    var tags: [Tag]
    var networkInterfaces: [SimInterface]
    var blockDevices: [BlockDevice]
    var terminationProtection: Bool
}

struct SimInterface: Codable, Equatable, Sendable {
    var id: String
    var groupIds: [String]
    var privateIp: String?
    var publicIp: String?
    var subnetId: String?
    var vpcId: String?
    var macAddress: String?
    var deviceIndex: Int
}

struct SimSecurityGroup: Codable, Equatable, Sendable {
    var id: String
    var name: String
    var description: String
    var vpcId: String?
    /// One rule per source, in the order they were added.
    var rules: [SecurityGroupRule]
    var tags: [Tag]
}

struct SimUser: Codable, Equatable, Sendable {
    var name: String
    var accessKeys: [AccessKey]
    var loginProfile: LoginProfile?
    /// Policy name → document (JSON text).
    var inlinePolicies: [String: String]
}

struct SimRole: Codable, Equatable, Sendable {
    var name: String
    var inlinePolicies: [String: String]
}

struct SimBucket: Codable, Equatable, Sendable {
    var name: String
    var publicAccessBlock: PublicAccessBlock?
}

struct SimTrail: Codable, Equatable, Sendable {
    var name: String
    var arn: String
    var isLogging: Bool
}

struct SimTopic: Codable, Equatable, Sendable {
    var name: String
    var arn: String
    var messages: [PublishedMessage]
}

/// A message published to a simulated SNS topic, kept for inspection.
public struct PublishedMessage: Codable, Equatable, Sendable {
    public var messageId: String
    public var subject: String?
    public var message: String
    public var time: String
}

/// The whole simulated world.
struct SimWorld: Codable, Equatable, Sendable {
    var accounts: [String: SimAccount] = [:]
}

extension SimSecurityGroup {
    var model: SecurityGroup {
        SecurityGroup(
            id: id, name: name, description: description, vpcId: vpcId,
            ingress: IpPermission.grouping(rules.filter { !$0.isEgress }),
            egress: IpPermission.grouping(rules.filter { $0.isEgress }), tags: tags)
    }
}

extension SimInstance {
    func model(groups: [String: SimSecurityGroup]) -> EC2Instance {
        func refs(_ ids: [String]) -> [GroupRef] { ids.map { GroupRef(id: $0, name: groups[$0]?.name) } }
        var all: [String] = []
        for eni in networkInterfaces { for g in eni.groupIds where !all.contains(g) { all.append(g) } }
        return EC2Instance(
            id: id, state: state, instanceType: instanceType, imageId: imageId, vpcId: vpcId, subnetId: subnetId, privateIp: privateIp,
            publicIp: publicIp, launchTime: launchTime, iamInstanceProfileArn: iamInstanceProfileArn, tags: tags, securityGroups: refs(all),
            networkInterfaces: networkInterfaces.map {
                NetworkInterface(
                    id: $0.id, groups: refs($0.groupIds), privateIp: $0.privateIp, publicIp: $0.publicIp, subnetId: $0.subnetId ?? subnetId,
                    vpcId: $0.vpcId ?? vpcId, macAddress: $0.macAddress, attachmentDeviceIndex: $0.deviceIndex)
            },
            blockDevices: blockDevices)
    }
}

// MARK: - Rules and permissions

extension IpPermission {
    /// The protocol as EC2 reports it: names for tcp, udp, icmp and icmpv6 (numbers as
    /// given are accepted), "-1" for all.
    static func normalizedProtocol(_ p: String) -> String {
        switch p.lowercased() {
        case "6", "tcp": return "tcp"
        case "17", "udp": return "udp"
        case "1", "icmp": return "icmp"
        case "58", "icmpv6": return "icmpv6"
        case "-1", "all": return "-1"
        default: return p.lowercased()
        }
    }

    /// One rule per source (as `DescribeSecurityGroupRules` lists them), without ids.
    func expanded(groupId: String, isEgress: Bool) -> [SecurityGroupRule] {
        let proto = Self.normalizedProtocol(ipProtocol)
        let from = proto == "-1" ? nil : fromPort
        let to = proto == "-1" ? nil : toPort
        func rule() -> SecurityGroupRule { SecurityGroupRule(id: "", groupId: groupId, isEgress: isEgress, ipProtocol: proto, fromPort: from, toPort: to) }
        var out: [SecurityGroupRule] = []
        for c in ipv4Ranges {
            var r = rule()
            r.cidrIpv4 = c
            out.append(r)
        }
        for c in ipv6Ranges {
            var r = rule()
            r.cidrIpv6 = c
            out.append(r)
        }
        for g in groupIds {
            var r = rule()
            r.referencedGroupId = g
            out.append(r)
        }
        for p in prefixListIds {
            var r = rule()
            r.prefixListId = p
            out.append(r)
        }
        return out
    }

    /// Rules back into permissions, one per protocol and port range, in first-seen order.
    static func grouping(_ rules: [SecurityGroupRule]) -> [IpPermission] {
        var out: [IpPermission] = []
        for r in rules {
            let i: Int
            if let found = out.firstIndex(where: { $0.ipProtocol == r.ipProtocol && $0.fromPort == r.fromPort && $0.toPort == r.toPort }) {
                i = found
            } else {
                out.append(IpPermission(ipProtocol: r.ipProtocol, fromPort: r.fromPort, toPort: r.toPort))
                i = out.count - 1
            }
            if let c = r.cidrIpv4 { out[i].ipv4Ranges.append(c) }
            if let c = r.cidrIpv6 { out[i].ipv6Ranges.append(c) }
            if let g = r.referencedGroupId { out[i].groupIds.append(g) }
            if let p = r.prefixListId { out[i].prefixListIds.append(p) }
        }
        return out
    }
}

extension SecurityGroupRule {
    /// Same protocol, ports, direction and source (ids and descriptions aside).
    func sameEffect(as other: SecurityGroupRule) -> Bool {
        isEgress == other.isEgress && IpPermission.normalizedProtocol(ipProtocol) == IpPermission.normalizedProtocol(other.ipProtocol)
            && (ipProtocol == "-1" || (fromPort == other.fromPort && toPort == other.toPort)) && cidrIpv4 == other.cidrIpv4
            && cidrIpv6 == other.cidrIpv6 && referencedGroupId == other.referencedGroupId && prefixListId == other.prefixListId
    }

    /// The rule as a permission (for re-authorizing it).
    var permission: IpPermission {
        IpPermission(
            ipProtocol: ipProtocol, fromPort: fromPort, toPort: toPort, ipv4Ranges: cidrIpv4.map { [$0] } ?? [],
            ipv6Ranges: cidrIpv6.map { [$0] } ?? [], groupIds: referencedGroupId.map { [$0] } ?? [], prefixListIds: prefixListId.map { [$0] } ?? [])
    }

    /// How EC2 names a rule in its error messages: `peer: 0.0.0.0/0, TCP, from port: 22, to port: 22, ALLOW`.
    var awsDescription: String {
        let peer = cidrIpv4 ?? cidrIpv6 ?? referencedGroupId ?? prefixListId ?? "?"
        let proto = ipProtocol == "-1" ? "ALL" : ipProtocol.uppercased()
        var s = "peer: \(peer), \(proto)"
        if ipProtocol != "-1" { s += ", from port: \(fromPort.map(String.init) ?? "-1"), to port: \(toPort.map(String.init) ?? "-1")" }
        return s + ", ALLOW"
    }
}
