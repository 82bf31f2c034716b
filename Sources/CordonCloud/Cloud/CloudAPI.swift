import CordonCore

// The cloud as the AWS actions see it: the handful of EC2, IAM, S3, CloudTrail and SNS
// operations containment needs, as typed calls. Two implementations share this seam:
// `AWSCloud` (signed requests to AWS or to any endpoint such as moto_server) and
// `SimulatedCloud` (an in-process model seeded from an inventory file, for drills and
// for running with no account). The actions are written once, against these protocols,
// so that a drill exercises exactly the code that contains a real incident.
//
// Errors are `ActionError`s carrying the provider's code (`InvalidInstanceID.NotFound`,
// `NoSuchEntity`, `AccessDenied`, `Throttling`…) and message; `retryable` is true for
// throttling, 5xx and transport timeouts only.

/// Where a call goes: the account (nil: the credentials' own) and the region.
public struct CloudScope: Hashable, Sendable, CustomStringConvertible {
    public var account: String?
    public var region: String

    public init(account: String? = nil, region: String) {
        self.account = account
        self.region = region
    }

    public var description: String { "\(account ?? "default")/\(region)" }
}

/// A cloud: per-scope handles on each service.
public protocol Cloud: Sendable {
    /// "aws" or "simulated", for the journal and the timeline.
    var kind: String { get }
    func ec2(_ scope: CloudScope) async throws(ActionError) -> any EC2API
    func iam(_ scope: CloudScope) async throws(ActionError) -> any IAMAPI
    func s3(_ scope: CloudScope) async throws(ActionError) -> any S3API
    func cloudTrail(_ scope: CloudScope) async throws(ActionError) -> any CloudTrailAPI
    func sns(_ scope: CloudScope) async throws(ActionError) -> any SNSAPI
}

// MARK: - EC2

public struct Tag: Codable, Hashable, Sendable {
    public var key: String
    public var value: String
    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

public struct GroupRef: Codable, Hashable, Sendable {
    public var id: String
    public var name: String?
    public init(id: String, name: String? = nil) {
        self.id = id
        self.name = name
    }
}

public struct NetworkInterface: Codable, Hashable, Sendable {
    public var id: String
    public var groups: [GroupRef]
    public var privateIp: String?
    public var publicIp: String?
    public var subnetId: String?
    public var vpcId: String?
    public var macAddress: String?
    public var attachmentDeviceIndex: Int?
    public init(
        id: String, groups: [GroupRef], privateIp: String? = nil, publicIp: String? = nil, subnetId: String? = nil, vpcId: String? = nil,
        macAddress: String? = nil, attachmentDeviceIndex: Int? = nil
    ) {
        self.id = id
        self.groups = groups
        self.privateIp = privateIp
        self.publicIp = publicIp
        self.subnetId = subnetId
        self.vpcId = vpcId
        self.macAddress = macAddress
        self.attachmentDeviceIndex = attachmentDeviceIndex
    }
}

public struct BlockDevice: Codable, Hashable, Sendable {
    public var deviceName: String
    public var volumeId: String
    public init(deviceName: String, volumeId: String) {
        self.deviceName = deviceName
        self.volumeId = volumeId
    }
}

public struct EC2Instance: Codable, Hashable, Sendable {
    public var id: String
    /// pending, running, stopping, stopped, shutting-down, terminated
    public var state: String
    public var instanceType: String?
    public var imageId: String?
    public var vpcId: String?
    public var subnetId: String?
    public var privateIp: String?
    public var publicIp: String?
    public var launchTime: String?
    public var iamInstanceProfileArn: String?
    public var tags: [Tag]
    public var securityGroups: [GroupRef]
    public var networkInterfaces: [NetworkInterface]
    public var blockDevices: [BlockDevice]
    public init(
        id: String, state: String, instanceType: String? = nil, imageId: String? = nil, vpcId: String? = nil, subnetId: String? = nil,
        privateIp: String? = nil, publicIp: String? = nil, launchTime: String? = nil, iamInstanceProfileArn: String? = nil, tags: [Tag] = [],
        securityGroups: [GroupRef] = [], networkInterfaces: [NetworkInterface] = [], blockDevices: [BlockDevice] = []
    ) {
        self.id = id
        self.state = state
        self.instanceType = instanceType
        self.imageId = imageId
        self.vpcId = vpcId
        self.subnetId = subnetId
        self.privateIp = privateIp
        self.publicIp = publicIp
        self.launchTime = launchTime
        self.iamInstanceProfileArn = iamInstanceProfileArn
        self.tags = tags
        self.securityGroups = securityGroups
        self.networkInterfaces = networkInterfaces
        self.blockDevices = blockDevices
    }
}

/// One permission of a security group, as in the EC2 API's `IpPermissions`.
public struct IpPermission: Codable, Hashable, Sendable {
    /// "tcp", "udp", "icmp", "icmpv6" or "-1" (all)
    public var ipProtocol: String
    public var fromPort: Int?
    public var toPort: Int?
    public var ipv4Ranges: [String]
    public var ipv6Ranges: [String]
    public var groupIds: [String]
    public var prefixListIds: [String]
    public init(
        ipProtocol: String, fromPort: Int? = nil, toPort: Int? = nil, ipv4Ranges: [String] = [], ipv6Ranges: [String] = [], groupIds: [String] = [],
        prefixListIds: [String] = []
    ) {
        self.ipProtocol = ipProtocol
        self.fromPort = fromPort
        self.toPort = toPort
        self.ipv4Ranges = ipv4Ranges
        self.ipv6Ranges = ipv6Ranges
        self.groupIds = groupIds
        self.prefixListIds = prefixListIds
    }
}

public struct SecurityGroup: Codable, Hashable, Sendable {
    public var id: String
    public var name: String
    public var description: String
    public var vpcId: String?
    public var ingress: [IpPermission]
    public var egress: [IpPermission]
    public var tags: [Tag]
    public init(id: String, name: String, description: String, vpcId: String?, ingress: [IpPermission] = [], egress: [IpPermission] = [], tags: [Tag] = []) {
        self.id = id
        self.name = name
        self.description = description
        self.vpcId = vpcId
        self.ingress = ingress
        self.egress = egress
        self.tags = tags
    }
}

/// One rule of a security group, as `DescribeSecurityGroupRules` lists it: one source each.
public struct SecurityGroupRule: Codable, Hashable, Sendable {
    public var id: String
    public var groupId: String
    public var isEgress: Bool
    public var ipProtocol: String
    public var fromPort: Int?
    public var toPort: Int?
    public var cidrIpv4: String?
    public var cidrIpv6: String?
    public var referencedGroupId: String?
    public var prefixListId: String?
    public var description: String?
    public init(
        id: String, groupId: String, isEgress: Bool, ipProtocol: String, fromPort: Int? = nil, toPort: Int? = nil, cidrIpv4: String? = nil,
        cidrIpv6: String? = nil, referencedGroupId: String? = nil, prefixListId: String? = nil, description: String? = nil
    ) {
        self.id = id
        self.groupId = groupId
        self.isEgress = isEgress
        self.ipProtocol = ipProtocol
        self.fromPort = fromPort
        self.toPort = toPort
        self.cidrIpv4 = cidrIpv4
        self.cidrIpv6 = cidrIpv6
        self.referencedGroupId = referencedGroupId
        self.prefixListId = prefixListId
        self.description = description
    }
}

public struct Volume: Codable, Hashable, Sendable {
    public var id: String
    public var sizeGiB: Int
    public var state: String
    public var availabilityZone: String?
    public var encrypted: Bool
    public var volumeType: String?
    /// Instance ids it is attached to.
    public var attachedTo: [String]
    public var tags: [Tag]
    public init(
        id: String, sizeGiB: Int, state: String, availabilityZone: String? = nil, encrypted: Bool = false, volumeType: String? = nil,
        attachedTo: [String] = [], tags: [Tag] = []
    ) {
        self.id = id
        self.sizeGiB = sizeGiB
        self.state = state
        self.availabilityZone = availabilityZone
        self.encrypted = encrypted
        self.volumeType = volumeType
        self.attachedTo = attachedTo
        self.tags = tags
    }
}

public struct Snapshot: Codable, Hashable, Sendable {
    public var id: String
    public var volumeId: String
    /// pending, completed, error
    public var state: String
    public var description: String?
    public var startTime: String?
    public var tags: [Tag]
    public init(id: String, volumeId: String, state: String, description: String? = nil, startTime: String? = nil, tags: [Tag] = []) {
        self.id = id
        self.volumeId = volumeId
        self.state = state
        self.description = description
        self.startTime = startTime
        self.tags = tags
    }
}

public protocol EC2API: Sendable {
    /// `InvalidInstanceID.NotFound` when there is no such instance.
    func describeInstance(_ instanceId: String) async throws(ActionError) -> EC2Instance
    func describeSecurityGroups(ids: [String]) async throws(ActionError) -> [SecurityGroup]
    /// The group with this name in this VPC, or nil.
    func findSecurityGroup(name: String, vpcId: String?) async throws(ActionError) -> SecurityGroup?
    /// Creates a group (with the default allow-all egress rule AWS adds) and returns its id.
    func createSecurityGroup(name: String, description: String, vpcId: String?, tags: [Tag]) async throws(ActionError) -> String
    func authorizeIngress(groupId: String, permissions: [IpPermission]) async throws(ActionError)
    func revokeIngress(groupId: String, permissions: [IpPermission]) async throws(ActionError)
    func revokeIngress(groupId: String, ruleIds: [String]) async throws(ActionError)
    func authorizeEgress(groupId: String, permissions: [IpPermission]) async throws(ActionError)
    func revokeEgress(groupId: String, permissions: [IpPermission]) async throws(ActionError)
    func describeSecurityGroupRules(groupId: String) async throws(ActionError) -> [SecurityGroupRule]
    /// Replaces the interface's security groups (ModifyNetworkInterfaceAttribute --groups).
    func setNetworkInterfaceGroups(_ interfaceId: String, groupIds: [String]) async throws(ActionError)
    func terminationProtection(_ instanceId: String) async throws(ActionError) -> Bool
    func setTerminationProtection(_ instanceId: String, _ enabled: Bool) async throws(ActionError)
    func createTags(resourceIds: [String], tags: [Tag]) async throws(ActionError)
    func describeVolumes(ids: [String]) async throws(ActionError) -> [Volume]
    /// Snapshots owned by this account carrying the tag.
    func describeSnapshots(tagKey: String, tagValue: String) async throws(ActionError) -> [Snapshot]
    func createSnapshot(volumeId: String, description: String, tags: [Tag]) async throws(ActionError) -> Snapshot
}

// MARK: - IAM

public struct AccessKey: Codable, Hashable, Sendable {
    public var id: String
    public var userName: String
    /// Active or Inactive
    public var status: String
    public var createDate: String?
    public init(id: String, userName: String, status: String, createDate: String? = nil) {
        self.id = id
        self.userName = userName
        self.status = status
        self.createDate = createDate
    }
}

public struct LoginProfile: Codable, Hashable, Sendable {
    public var userName: String
    public var createDate: String?
    public var passwordResetRequired: Bool
    public init(userName: String, createDate: String? = nil, passwordResetRequired: Bool = false) {
        self.userName = userName
        self.createDate = createDate
        self.passwordResetRequired = passwordResetRequired
    }
}

/// Whose inline policy: a user's or a role's.
public enum Principal: Hashable, Sendable, CustomStringConvertible {
    case user(String)
    case role(String)
    public var description: String {
        switch self {
        case .user(let name): "user/\(name)"
        case .role(let name): "role/\(name)"
        }
    }
}

public protocol IAMAPI: Sendable {
    /// The inline policy document (JSON text, URL-decoded), or nil when there is none.
    /// `NoSuchEntity` when the principal does not exist.
    func inlinePolicy(_ principal: Principal, name: String) async throws(ActionError) -> String?
    func putInlinePolicy(_ principal: Principal, name: String, document: String) async throws(ActionError)
    /// Deleting a policy that does not exist is not an error here (idempotent).
    func deleteInlinePolicy(_ principal: Principal, name: String) async throws(ActionError)
    func listAccessKeys(userName: String) async throws(ActionError) -> [AccessKey]
    func updateAccessKey(userName: String, accessKeyId: String, status: String) async throws(ActionError)
    /// nil when the user has no console password.
    func loginProfile(userName: String) async throws(ActionError) -> LoginProfile?
    func deleteLoginProfile(userName: String) async throws(ActionError)
}

// MARK: - S3, CloudTrail, SNS

public struct PublicAccessBlock: Codable, Hashable, Sendable {
    public var blockPublicAcls: Bool
    public var ignorePublicAcls: Bool
    public var blockPublicPolicy: Bool
    public var restrictPublicBuckets: Bool
    public init(blockPublicAcls: Bool, ignorePublicAcls: Bool, blockPublicPolicy: Bool, restrictPublicBuckets: Bool) {
        self.blockPublicAcls = blockPublicAcls
        self.ignorePublicAcls = ignorePublicAcls
        self.blockPublicPolicy = blockPublicPolicy
        self.restrictPublicBuckets = restrictPublicBuckets
    }
    public static let allBlocked = PublicAccessBlock(blockPublicAcls: true, ignorePublicAcls: true, blockPublicPolicy: true, restrictPublicBuckets: true)
}

public protocol S3API: Sendable {
    /// nil when the bucket has no configuration; `NoSuchBucket` when there is no bucket.
    func publicAccessBlock(bucket: String) async throws(ActionError) -> PublicAccessBlock?
    func putPublicAccessBlock(bucket: String, _ configuration: PublicAccessBlock) async throws(ActionError)
    func deletePublicAccessBlock(bucket: String) async throws(ActionError)
}

public protocol CloudTrailAPI: Sendable {
    /// Whether the trail is logging; `TrailNotFoundException` when there is no such trail.
    func isLogging(trail: String) async throws(ActionError) -> Bool
    func startLogging(trail: String) async throws(ActionError)
    func stopLogging(trail: String) async throws(ActionError)
}

public protocol SNSAPI: Sendable {
    /// Returns the message id. `NotFound` when there is no such topic.
    func publish(topicArn: String, message: String, subject: String?) async throws(ActionError) -> String
}
