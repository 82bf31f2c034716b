import CordonCore
import CordonTestSupport
import Foundation
import XCTest

@testable import CordonAWS
@testable import CordonCloud
@testable import CordonSimulatedCloud

/// Every `AWSCloud` operation against a real moto_server, reading state back.
func unwrap<T>(_ value: T?, _ what: String = "value", file: StaticString = #filePath, line: UInt = #line) throws -> T {
    guard let value else {
        XCTFail("unexpected nil \(what)", file: file, line: line)
        throw TestFailure("unexpected nil \(what)")
    }
    return value
}

final class MotoCloudTests: XCTestCase {
    static let http = AWSHTTPClient()
    static let scope = CloudScope(region: "us-east-1")

    func cloud(_ extra: [String: String] = [:], roleArnTemplate: String? = nil, externalId: String? = nil) throws -> AWSCloud {
        AWSCloud(options: AWSCloudOptions(environment: try Moto.environment(extra), roleArnTemplate: roleArnTemplate, externalId: externalId), http: Self.http)
    }

    func raw(_ cloud: AWSCloud, _ service: AWSService) async throws -> AWSServiceClient {
        try await cloud.client(service, Self.scope)
    }

    struct Fixture {
        var vpcId: String
        var subnetId: String
        var instanceId: String
    }

    /// A VPC, a subnet and a running instance, made with our own query client.
    func makeInstance(_ cloud: AWSCloud) async throws -> Fixture {
        let ec2 = try await raw(cloud, .ec2)
        let images = try await ec2.query("DescribeImages", [("Owner.1", "amazon")])
        let image = try XCTUnwrap(images.items("imagesSet").first?.nonEmpty("imageId"))
        let vpc = try unwrap(try await ec2.query("CreateVpc", [("CidrBlock", "10.0.0.0/16")]).nonEmpty("vpc", "vpcId"))
        let subnet = try unwrap(try await ec2.query("CreateSubnet", [("VpcId", vpc), ("CidrBlock", "10.0.1.0/24")]).nonEmpty("subnet", "subnetId"))
        let run = try await ec2.query(
            "RunInstances",
            [("ImageId", image), ("MinCount", "1"), ("MaxCount", "1"), ("SubnetId", subnet), ("InstanceType", "t3.micro"),
             ("TagSpecification.1.ResourceType", "instance"), ("TagSpecification.1.Tag.1.Key", "env"), ("TagSpecification.1.Tag.1.Value", "prod")])
        let instance = try XCTUnwrap(run.items("instancesSet").first?.nonEmpty("instanceId"))
        return Fixture(vpcId: vpc, subnetId: subnet, instanceId: instance)
    }

    func testEC2EndToEnd() async throws {
        let cloud = try cloud()
        let f = try await makeInstance(cloud)
        let ec2 = try await cloud.ec2(Self.scope)

        let instance = try await ec2.describeInstance(f.instanceId)
        XCTAssertEqual(instance.id, f.instanceId)
        XCTAssertEqual(instance.state, "running")
        XCTAssertEqual(instance.vpcId, f.vpcId)
        XCTAssertEqual(instance.subnetId, f.subnetId)
        XCTAssertEqual(instance.instanceType, "t3.micro")
        XCTAssertTrue(instance.tags.contains(Tag("env", "prod")))
        XCTAssertEqual(instance.networkInterfaces.count, 1)
        XCTAssertFalse(instance.blockDevices.isEmpty)
        let eni = try XCTUnwrap(instance.networkInterfaces.first)
        XCTAssertEqual(eni.subnetId, f.subnetId)
        XCTAssertFalse(eni.groups.isEmpty)

        // Security groups: create with tags, find, rules in and out.
        let v1 = try await ec2.findSecurityGroup(name: "cordon-quarantine", vpcId: f.vpcId)
        XCTAssertNil(v1)
        let sg = try await ec2.createSecurityGroup(name: "cordon-quarantine", description: "Cordon isolation", vpcId: f.vpcId, tags: [Tag("cordon", "isolation")])
        let found = try await ec2.findSecurityGroup(name: "cordon-quarantine", vpcId: f.vpcId)
        XCTAssertEqual(found?.id, sg)
        XCTAssertEqual(found?.description, "Cordon isolation")
        XCTAssertEqual(found?.tags, [Tag("cordon", "isolation")])
        let v2 = try await ec2.findSecurityGroup(name: "cordon-quarantine", vpcId: "vpc-00000000")
        XCTAssertNil(v2)
        XCTAssertEqual(found?.egress.first?.ipProtocol, "-1", "AWS adds the allow-all egress rule")

        let ssh = IpPermission(ipProtocol: "tcp", fromPort: 22, toPort: 22, ipv4Ranges: ["0.0.0.0/0", "10.1.0.0/16"])
        let https = IpPermission(ipProtocol: "tcp", fromPort: 443, toPort: 443, ipv6Ranges: ["::/0"])
        let fromGroup = IpPermission(ipProtocol: "udp", fromPort: 53, toPort: 53, groupIds: [sg])
        try await ec2.authorizeIngress(groupId: sg, permissions: [ssh, https, fromGroup])
        var group = try unwrap(try await ec2.describeSecurityGroups(ids: [sg]).first)
        XCTAssertEqual(Set(group.ingress.flatMap(\.ipv4Ranges)), ["0.0.0.0/0", "10.1.0.0/16"])
        XCTAssertEqual(group.ingress.first { $0.fromPort == 443 }?.ipv6Ranges, ["::/0"])
        XCTAssertEqual(group.ingress.first { $0.fromPort == 53 }?.groupIds, [sg])

        try await ec2.revokeIngress(groupId: sg, permissions: [https])
        group = try unwrap(try await ec2.describeSecurityGroups(ids: [sg]).first)
        XCTAssertNil(group.ingress.first { $0.fromPort == 443 })

        let rules = try await ec2.describeSecurityGroupRules(groupId: sg)
        XCTAssertTrue(rules.contains { $0.isEgress && $0.ipProtocol == "-1" })
        let sshRule = try XCTUnwrap(rules.first { !$0.isEgress && $0.cidrIpv4 == "0.0.0.0/0" })
        XCTAssertEqual(sshRule.fromPort, 22)
        XCTAssertEqual(sshRule.groupId, sg)
        XCTAssertTrue(sshRule.id.hasPrefix("sgr-"))
        try await ec2.revokeIngress(groupId: sg, ruleIds: [sshRule.id])
        let after = try await ec2.describeSecurityGroupRules(groupId: sg)
        XCTAssertFalse(after.contains { $0.id == sshRule.id })

        // Egress: revoke the default rule, add one back.
        let allOut = IpPermission(ipProtocol: "-1", ipv4Ranges: ["0.0.0.0/0"])
        try await ec2.revokeEgress(groupId: sg, permissions: [allOut])
        group = try unwrap(try await ec2.describeSecurityGroups(ids: [sg]).first)
        XCTAssertTrue(group.egress.isEmpty)
        try await ec2.authorizeEgress(groupId: sg, permissions: [IpPermission(ipProtocol: "tcp", fromPort: 443, toPort: 443, ipv4Ranges: ["10.0.0.0/8"])])
        group = try unwrap(try await ec2.describeSecurityGroups(ids: [sg]).first)
        XCTAssertEqual(group.egress.first?.ipv4Ranges, ["10.0.0.0/8"])

        // Isolation: replace the interface's groups.
        try await ec2.setNetworkInterfaceGroups(eni.id, groupIds: [sg])
        let isolated = try await ec2.describeInstance(f.instanceId)
        XCTAssertEqual(isolated.networkInterfaces.first?.groups.map(\.id), [sg])

        // Termination protection.
        let v3 = try await ec2.terminationProtection(f.instanceId)
        XCTAssertFalse(v3)
        try await ec2.setTerminationProtection(f.instanceId, true)
        let v4 = try await ec2.terminationProtection(f.instanceId)
        XCTAssertTrue(v4)
        try await ec2.setTerminationProtection(f.instanceId, false)
        let v5 = try await ec2.terminationProtection(f.instanceId)
        XCTAssertFalse(v5)

        // Tags.
        try await ec2.createTags(resourceIds: [f.instanceId], tags: [Tag("cordon:incident", "inc-1"), Tag("note", "a b & c")])
        let tagged = try await ec2.describeInstance(f.instanceId)
        XCTAssertTrue(tagged.tags.contains(Tag("cordon:incident", "inc-1")))
        XCTAssertTrue(tagged.tags.contains(Tag("note", "a b & c")))

        // Volumes and snapshots.
        let volumeIds = instance.blockDevices.map(\.volumeId)
        let volumes = try await ec2.describeVolumes(ids: volumeIds)
        XCTAssertEqual(Set(volumes.map(\.id)), Set(volumeIds))
        XCTAssertTrue(volumes.allSatisfy { $0.attachedTo == [f.instanceId] })
        XCTAssertTrue(volumes.allSatisfy { $0.sizeGiB > 0 })
        let incident = "inc-\(UUID().uuidString.prefix(8))"
        let v6 = try await ec2.describeSnapshots(tagKey: "cordon:incident", tagValue: incident)
        XCTAssertEqual(v6, [])
        let snap = try await ec2.createSnapshot(volumeId: volumeIds[0], description: "Cordon \(incident)", tags: [Tag("cordon:incident", incident)])
        XCTAssertTrue(snap.id.hasPrefix("snap-"))
        XCTAssertEqual(snap.volumeId, volumeIds[0])
        let snaps = try await ec2.describeSnapshots(tagKey: "cordon:incident", tagValue: incident)
        XCTAssertEqual(snaps.map(\.id), [snap.id])
        XCTAssertEqual(snaps.first?.description, "Cordon \(incident)")
        XCTAssertEqual(snaps.first?.tags, [Tag("cordon:incident", incident)])
    }

    func testEC2Errors() async throws {
        let ec2 = try await cloud().ec2(Self.scope)
        do {
            _ = try await ec2.describeInstance("i-0123456789abcdef0")
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.code, "InvalidInstanceID.NotFound")
            XCTAssertFalse(error.retryable)
            XCTAssertTrue(error.message.contains("i-0123456789abcdef0"), error.message)
        }
        do {
            _ = try await ec2.describeSecurityGroups(ids: ["sg-00000000000000000"])
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.code, "InvalidGroup.NotFound")
            XCTAssertFalse(error.retryable)
        }
    }

    func testIAM() async throws {
        let cloud = try cloud()
        let raw = try await raw(cloud, .iam)
        let user = "mallory-\(UUID().uuidString.prefix(8))"
        let role = "compromised-\(UUID().uuidString.prefix(8))"
        _ = try await raw.query("CreateUser", [("UserName", user)])
        _ = try await raw.query(
            "CreateRole",
            [("RoleName", role), ("AssumeRolePolicyDocument", #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#)])
        let key1 = try unwrap(try await raw.query("CreateAccessKey", [("UserName", user)]).descendant("AccessKeyId")?.text)
        let key2 = try unwrap(try await raw.query("CreateAccessKey", [("UserName", user)]).descendant("AccessKeyId")?.text)
        _ = try await raw.query("CreateLoginProfile", [("UserName", user), ("Password", "Sup3r-secret-pw!")])

        let iam = try await cloud.iam(Self.scope)
        let document = #"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-01-01T00:00:00Z"}}}]}"#
        for principal in [Principal.user(user), .role(role)] {
            let none = try await iam.inlinePolicy(principal, name: "AWSRevokeOlderSessions")
            XCTAssertNil(none)
            try await iam.putInlinePolicy(principal, name: "AWSRevokeOlderSessions", document: document)
            let back = try await iam.inlinePolicy(principal, name: "AWSRevokeOlderSessions")
            XCTAssertEqual(try back.map { try JSONParser.parse($0) }, try JSONParser.parse(document))
            try await iam.deleteInlinePolicy(principal, name: "AWSRevokeOlderSessions")
            let gone = try await iam.inlinePolicy(principal, name: "AWSRevokeOlderSessions")
            XCTAssertNil(gone)
            try await iam.deleteInlinePolicy(principal, name: "AWSRevokeOlderSessions")  // idempotent
        }

        let keys = try await iam.listAccessKeys(userName: user)
        XCTAssertEqual(Set(keys.map(\.id)), [key1, key2])
        XCTAssertTrue(keys.allSatisfy { $0.status == "Active" && $0.userName == user })
        try await iam.updateAccessKey(userName: user, accessKeyId: key1, status: "Inactive")
        let updated = try await iam.listAccessKeys(userName: user)
        XCTAssertEqual(updated.first { $0.id == key1 }?.status, "Inactive")
        XCTAssertEqual(updated.first { $0.id == key2 }?.status, "Active")

        let profile = try await iam.loginProfile(userName: user)
        XCTAssertEqual(profile?.userName, user)
        try await iam.deleteLoginProfile(userName: user)
        let noProfile = try await iam.loginProfile(userName: user)
        XCTAssertNil(noProfile)

        // A missing principal is an error, not "no policy".
        try await expectNoSuchEntity { _ = try await iam.inlinePolicy(.user("nobody-\(user)"), name: "p") }
        try await expectNoSuchEntity { try await iam.deleteInlinePolicy(.role("nobody-\(role)"), name: "p") }
        try await expectNoSuchEntity { _ = try await iam.loginProfile(userName: "nobody-\(user)") }
        try await expectNoSuchEntity { _ = try await iam.listAccessKeys(userName: "nobody-\(user)") }
    }

    func expectNoSuchEntity(_ body: () async throws -> Void, line: UInt = #line) async throws {
        do {
            try await body()
            XCTFail("expected NoSuchEntity", line: line)
        } catch let error as ActionError {
            XCTAssertEqual(error.code, "NoSuchEntity", line: line)
            XCTAssertFalse(error.retryable, line: line)
        }
    }

    func testIAMPagination() async throws {
        // moto honours MaxItems on ListAccessKeys only through our Marker loop when there are
        // more keys than a page; two keys is the IAM limit, so check the loop on one page.
        let cloud = try cloud()
        let raw = try await raw(cloud, .iam)
        let user = "pager-\(UUID().uuidString.prefix(8))"
        _ = try await raw.query("CreateUser", [("UserName", user)])
        _ = try await raw.query("CreateAccessKey", [("UserName", user)])
        let keys = try await cloud.iam(Self.scope).listAccessKeys(userName: user)
        XCTAssertEqual(keys.count, 1)
    }

    func testS3PublicAccessBlock() async throws {
        let cloud = try cloud()
        let raw = try await raw(cloud, .s3)
        let bucket = "cordon-\(UUID().uuidString.prefix(8).lowercased())"
        _ = try await raw.rest("PUT", path: "/\(bucket)", operation: "CreateBucket")
        let s3 = try await cloud.s3(Self.scope)
        let none = try await s3.publicAccessBlock(bucket: bucket)
        XCTAssertNil(none)
        try await s3.putPublicAccessBlock(bucket: bucket, .allBlocked)
        let v7 = try await s3.publicAccessBlock(bucket: bucket)
        XCTAssertEqual(v7, .allBlocked)
        let partial = PublicAccessBlock(blockPublicAcls: true, ignorePublicAcls: false, blockPublicPolicy: true, restrictPublicBuckets: false)
        try await s3.putPublicAccessBlock(bucket: bucket, partial)
        let v8 = try await s3.publicAccessBlock(bucket: bucket)
        XCTAssertEqual(v8, partial)
        try await s3.deletePublicAccessBlock(bucket: bucket)
        let deleted = try await s3.publicAccessBlock(bucket: bucket)
        XCTAssertNil(deleted)
        do {
            _ = try await s3.publicAccessBlock(bucket: "no-such-bucket-\(bucket)")
            XCTFail("expected NoSuchBucket")
        } catch {
            XCTAssertEqual(error.code, "NoSuchBucket")
            XCTAssertFalse(error.retryable)
        }
    }

    func testCloudTrail() async throws {
        let cloud = try cloud()
        let bucket = "trail-\(UUID().uuidString.prefix(8).lowercased())"
        _ = try await raw(cloud, .s3).rest("PUT", path: "/\(bucket)", operation: "CreateBucket")
        let trail = "org-trail-\(UUID().uuidString.prefix(8))"
        _ = try await raw(cloud, .cloudtrail).json(
            targetPrefix: AWSCloudTrail.target, "CreateTrail", ["Name": .string(trail), "S3BucketName": .string(bucket)])
        let ct = try await cloud.cloudTrail(Self.scope)
        let v9 = try await ct.isLogging(trail: trail)
        XCTAssertFalse(v9)
        try await ct.startLogging(trail: trail)
        let v10 = try await ct.isLogging(trail: trail)
        XCTAssertTrue(v10)
        try await ct.stopLogging(trail: trail)
        let v11 = try await ct.isLogging(trail: trail)
        XCTAssertFalse(v11)
        do {
            _ = try await ct.isLogging(trail: "nope-\(trail)")
            XCTFail("expected TrailNotFoundException")
        } catch {
            XCTAssertEqual(error.code, "TrailNotFoundException")
            XCTAssertFalse(error.retryable)
        }
    }

    func testSNSPublish() async throws {
        let cloud = try cloud()
        let raw = try await raw(cloud, .sns)
        let topic = try unwrap(try await raw.query("CreateTopic", [("Name", "cordon-alerts")]).descendant("TopicArn")?.text)
        let sns = try await cloud.sns(Self.scope)
        let id = try await sns.publish(topicArn: topic, message: "Isolated i-1: Backdoor & more <ok>", subject: "Cordon: incident")
        XCTAssertFalse(id.isEmpty)
        let id2 = try await sns.publish(topicArn: topic, message: "no subject", subject: nil)
        XCTAssertNotEqual(id, id2)
        do {
            _ = try await sns.publish(topicArn: topic + "-missing", message: "x", subject: nil)
            XCTFail("expected NotFound")
        } catch {
            XCTAssertEqual(error.code, "NotFound")
            XCTAssertFalse(error.retryable)
        }
    }

    func testSTSCallerIdentityAndAssumeRole() async throws {
        let cloud = try cloud(roleArnTemplate: "arn:aws:iam::{account}:role/CordonResponder", externalId: "ext-1")
        let me = try await cloud.sts(Self.scope).getCallerIdentity()
        XCTAssertEqual(me.account, "123456789012")

        let other = CloudScope(account: "210987654321", region: "us-east-1")
        let provider = try await cloud.credentials(for: other)
        let assumed = try await provider.credentials()
        XCTAssertNotEqual(assumed.accessKeyId, "testing")
        XCTAssertNotNil(assumed.sessionToken)
        XCTAssertNotNil(assumed.expiration)
        let v12 = try await provider.credentials()
        XCTAssertEqual(v12, assumed, "cached")
        let identity = try await cloud.sts(other).getCallerIdentity()
        XCTAssertEqual(identity.account, "210987654321")
        XCTAssertTrue(identity.arn.contains("CordonResponder"), identity.arn)

        // A profile whose role_arn assumes through moto's STS.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-sts-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("config")
        try "[profile base]\naws_access_key_id = testing\naws_secret_access_key = testing\n[profile responder]\nrole_arn = arn:aws:iam::333333333333:role/R\nsource_profile = base\nexternal_id = x\n"
            .write(to: config, atomically: true, encoding: .utf8)
        var env = try Moto.environment()
        env["AWS_ACCESS_KEY_ID"] = nil
        env["AWS_SECRET_ACCESS_KEY"] = nil
        env["AWS_PROFILE"] = "responder"
        env["AWS_CONFIG_FILE"] = config.path
        env["AWS_SHARED_CREDENTIALS_FILE"] = dir.appendingPathComponent("none").path
        let viaProfile = AWSCloud(options: AWSCloudOptions(environment: env), http: Self.http)
        let v13 = try await viaProfile.sts(Self.scope).getCallerIdentity().account
        XCTAssertEqual(v13, "333333333333")
    }
}
