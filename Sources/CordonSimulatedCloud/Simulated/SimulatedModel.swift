import CordonAWS
import CordonCloud
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

