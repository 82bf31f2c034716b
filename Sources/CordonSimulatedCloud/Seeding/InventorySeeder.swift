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

    /// `TransportFailure`'s codes for an endpoint that gave no HTTP answer, and
    /// `AWSConfig`'s for an endpoint variable that is not a URL.
    static let transportCodes: Set<String> = [
        "ConnectionRefused", "HostNotFound", "HostUnreachable", "ConnectTimeout", "TLSHandshakeTimeout", "TLSError", "ConnectionClosed",
        "ConnectionError", "RequestTimeout", "InvalidURL", "InvalidEndpoint",
    ]

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
