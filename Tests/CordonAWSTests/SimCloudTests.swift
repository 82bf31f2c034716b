import CordonCore
import CordonEngine
import Foundation
import XCTest

@testable import CordonAWS
@testable import CordonCloud
@testable import CordonSimulatedCloud

final class SimCloudTests: XCTestCase {
    let us = CloudScope(account: "123456789012", region: "us-east-1")

    func testUnknownResourcesGiveAWSErrors() async throws {
        let cloud = try Fixture.cloud()
        let ec2 = try await cloud.ec2(us)
        await XCTAssertThrowsActionError(try await ec2.describeInstance("i-0123456789abcdef0"), code: "InvalidInstanceID.NotFound", retryable: false, contains: "The instance ID 'i-0123456789abcdef0' does not exist")
        await XCTAssertThrowsActionError(try await ec2.describeInstance("web-1"), code: "InvalidInstanceID.Malformed")
        await XCTAssertThrowsActionError(try await ec2.describeSecurityGroups(ids: ["sg-0nope"]), code: "InvalidGroup.NotFound", contains: "The security group 'sg-0nope' does not exist")
        await XCTAssertThrowsActionError(try await ec2.describeSecurityGroupRules(groupId: "sg-0nope"), code: "InvalidGroup.NotFound")
        await XCTAssertThrowsActionError(try await ec2.setNetworkInterfaceGroups("eni-0nope", groupIds: ["sg-0aaa0000000000002"]), code: "InvalidNetworkInterfaceID.NotFound")
        await XCTAssertThrowsActionError(try await ec2.describeVolumes(ids: ["vol-0nope"]), code: "InvalidVolume.NotFound")
        await XCTAssertThrowsActionError(try await ec2.createSnapshot(volumeId: "vol-0nope", description: "x", tags: []), code: "InvalidVolume.NotFound")
        await XCTAssertThrowsActionError(try await ec2.revokeIngress(groupId: "sg-0aaa0000000000001", ruleIds: ["sgr-0nope"]), code: "InvalidSecurityGroupRuleId.NotFound")
        await XCTAssertThrowsActionError(
            try await ec2.revokeIngress(groupId: "sg-0aaa0000000000001", permissions: [IpPermission(ipProtocol: "tcp", fromPort: 23, toPort: 23, ipv4Ranges: ["0.0.0.0/0"])]),
            code: "InvalidPermission.NotFound")
        await XCTAssertThrowsActionError(
            try await ec2.authorizeIngress(groupId: "sg-0aaa0000000000001", permissions: [IpPermission(ipProtocol: "6", fromPort: 22, toPort: 22, ipv4Ranges: ["0.0.0.0/0"])]),
            code: "InvalidPermission.Duplicate", contains: "peer: 0.0.0.0/0, TCP, from port: 22, to port: 22, ALLOW")
        await XCTAssertThrowsActionError(try await ec2.createSecurityGroup(name: "web", description: "again", vpcId: "vpc-01", tags: []), code: "InvalidGroup.Duplicate")
        // The instance in eu-west-1 is not visible from us-east-1.
        await XCTAssertThrowsActionError(try await ec2.describeInstance("i-0bbb0000000000001"), code: "InvalidInstanceID.NotFound")

        let iam = try await cloud.iam(us)
        await XCTAssertThrowsActionError(try await iam.listAccessKeys(userName: "nobody"), code: "NoSuchEntity", contains: "The user with name nobody cannot be found.")
        await XCTAssertThrowsActionError(try await iam.inlinePolicy(.role("nobody"), name: "x"), code: "NoSuchEntity", contains: "The role with name nobody cannot be found.")
        await XCTAssertThrowsActionError(try await iam.updateAccessKey(userName: "mallory", accessKeyId: "AKIANOPE", status: "Inactive"), code: "NoSuchEntity")
        let noPolicy = try await iam.inlinePolicy(.user("mallory"), name: "Nope")
        XCTAssertNil(noPolicy)
        try await iam.deleteInlinePolicy(.role("web-role"), name: "Nope")  // idempotent

        await XCTAssertThrowsActionError(try await cloud.s3(us).publicAccessBlock(bucket: "nope"), code: "NoSuchBucket", contains: "The specified bucket does not exist")
        let bare = try await cloud.s3(us).publicAccessBlock(bucket: "bare")
        XCTAssertNil(bare)
        await XCTAssertThrowsActionError(
            try await cloud.cloudTrail(us).isLogging(trail: "gone"), code: "TrailNotFoundException",
            contains: "Unknown trail: arn:aws:cloudtrail:us-east-1:123456789012:trail/gone for the user: 123456789012")
        await XCTAssertThrowsActionError(try await cloud.sns(us).publish(topicArn: "arn:aws:sns:us-east-1:123456789012:gone", message: "x", subject: nil), code: "NotFound", contains: "Topic does not exist")
        await XCTAssertThrowsActionError(try await cloud.ec2(CloudScope(account: "999999999999", region: "us-east-1")), code: "AccessDenied", contains: "sts:AssumeRole")
    }

    func testTrailByNameOrARN() async throws {
        let cloud = try Fixture.cloud()
        let trail = try await cloud.cloudTrail(CloudScope(region: "eu-west-1"))  // default account, another region
        let arn = "arn:aws:cloudtrail:us-east-1:123456789012:trail/main"
        let before = try await trail.isLogging(trail: arn)
        XCTAssertFalse(before)
        try await trail.startLogging(trail: arn)
        let after = try await cloud.cloudTrail(us).isLogging(trail: "main")
        XCTAssertTrue(after)
    }

    func testDeterministicIdsAndSnapshots() async throws {
        func run(seed: UInt64) async throws -> (String, String, JSONValue) {
            let cloud = try Fixture.cloud(seed: seed)
            let ec2 = try await cloud.ec2(us)
            let sg = try await ec2.createSecurityGroup(name: "new", description: "d", vpcId: "vpc-01", tags: [])
            let snap = try await ec2.createSnapshot(volumeId: "vol-0aaa0000000000001", description: "d", tags: [Tag("k", "v")])
            return (sg, snap.id, cloud.snapshot())
        }
        let a = try await run(seed: 0)
        let b = try await run(seed: 0)
        XCTAssertEqual(a.0, "sg-00000000000000001")
        XCTAssertEqual(a.1, "snap-00000000000000001")
        XCTAssertEqual(a.0, b.0)
        XCTAssertEqual(a.2, b.2)
        XCTAssertEqual(JSONWriter.string(a.2), JSONWriter.string(b.2))
        let c = try await run(seed: 7)
        XCTAssertEqual(c.0, "sg-00000000700000001")
        // The new group has AWS's default egress rule, with a rule id.
        let rules = a.2["accounts"]?["123456789012"]?["regions"]?["us-east-1"]?["securityGroups"]?["sg-00000000000000001"]?["rules"]?.arrayValue ?? []
        XCTAssertEqual(rules.count, 1)
        XCTAssertEqual(rules.first?["id"]?.stringValue, "sgr-00000000000000001")
        XCTAssertEqual(rules.first?["isEgress"], true)
    }

    func testFailedCallsChangeNothing() async throws {
        let cloud = try Fixture.cloud()
        let before = cloud.snapshot()
        let ec2 = try await cloud.ec2(us)
        // The second permission is a duplicate: the first must not be added either.
        await XCTAssertThrowsActionError(
            try await ec2.authorizeIngress(
                groupId: "sg-0aaa0000000000001",
                permissions: [IpPermission(ipProtocol: "tcp", fromPort: 80, toPort: 80, ipv4Ranges: ["0.0.0.0/0"]), IpPermission(ipProtocol: "tcp", fromPort: 22, toPort: 22, ipv4Ranges: ["0.0.0.0/0"])]),
            code: "InvalidPermission.Duplicate")
        await XCTAssertThrowsActionError(try await ec2.createTags(resourceIds: ["i-0aaa0000000000001", "i-0nope"], tags: [Tag("a", "b")]), code: "InvalidInstanceID.NotFound")
        XCTAssertEqual(cloud.snapshot(), before)
    }

    func testThrottleThenSuccess() async throws {
        let cloud = try Fixture.cloud()
        cloud.inject(.throttle("ec2:DescribeInstances", times: 2))
        let ec2 = try await cloud.ec2(us)
        await XCTAssertThrowsActionError(try await ec2.describeInstance("i-0aaa0000000000001"), code: "RequestLimitExceeded", retryable: true)
        await XCTAssertThrowsActionError(try await ec2.describeInstance("i-0aaa0000000000001"), code: "RequestLimitExceeded", retryable: true)
        let instance = try await ec2.describeInstance("i-0aaa0000000000001")
        XCTAssertEqual(instance.networkInterfaces.count, 2)
        XCTAssertTrue(cloud.faults.isEmpty)
        XCTAssertEqual(cloud.callCount("ec2:DescribeInstances"), 3)
        // Other services throttle with their own codes.
        cloud.inject(.throttle("iam:*", times: 1))
        await XCTAssertThrowsActionError(try await cloud.iam(us).listAccessKeys(userName: "mallory"), code: "Throttling", retryable: true)
        cloud.inject(.throttle("s3:*", times: 1))
        await XCTAssertThrowsActionError(try await cloud.s3(us).publicAccessBlock(bucket: "exports"), code: "SlowDown", retryable: true)
    }

    func testAccessDeniedNamesTheIAMAction() async throws {
        let cloud = try Fixture.cloud()
        cloud.inject(.accessDenied("ec2:ModifyNetworkInterfaceAttribute"))
        let ec2 = try await cloud.ec2(us)
        for _ in 0..<2 {
            await XCTAssertThrowsActionError(
                try await ec2.setNetworkInterfaceGroups("eni-0aaa0000000000001", groupIds: ["sg-0aaa0000000000002"]), code: "UnauthorizedOperation", retryable: false,
                contains: "not authorized to perform: ec2:ModifyNetworkInterfaceAttribute")
        }
        // Matched by IAM action: DeletePublicAccessBlock needs s3:PutBucketPublicAccessBlock.
        cloud.inject(.accessDenied("s3:PutBucketPublicAccessBlock", times: 1))
        await XCTAssertThrowsActionError(try await cloud.s3(us).deletePublicAccessBlock(bucket: "exports"), code: "AccessDenied", contains: "s3:PutBucketPublicAccessBlock")
        cloud.clearFaults()
        try await ec2.setNetworkInterfaceGroups("eni-0aaa0000000000001", groupIds: ["sg-0aaa0000000000002"])
    }

    func testOutageUntilVirtualTimeAndTimeout() async throws {
        let clock = VirtualClock()
        let slept = SleepLog()
        let cloud = SimulatedCloud(inventory: try Inventory.parse(Fixture.inventory), now: clock.function, sleep: { d in slept.add(d) })
        cloud.inject(.outage("sns:*", until: clock.now.addingTimeInterval(600)))
        let sns = try await cloud.sns(us)
        let topic = "arn:aws:sns:us-east-1:123456789012:alerts"
        await XCTAssertThrowsActionError(try await sns.publish(topicArn: topic, message: "hi", subject: nil), code: "ServiceUnavailable", retryable: true)
        clock.advance(599)
        await XCTAssertThrowsActionError(try await sns.publish(topicArn: topic, message: "hi", subject: nil), code: "ServiceUnavailable", retryable: true)
        clock.advance(1)
        let id = try await sns.publish(topicArn: topic, message: "hi", subject: "s")
        XCTAssertEqual(cloud.messages(topicArn: topic).map(\.messageId), [id])

        cloud.inject(.outage("ec2:*", calls: 1))
        cloud.inject(.timeout("ec2:DescribeInstances", after: .seconds(30)))
        let ec2 = try await cloud.ec2(us)
        await XCTAssertThrowsActionError(try await ec2.describeInstance("i-0aaa0000000000001"), code: "ServiceUnavailable")
        await XCTAssertThrowsActionError(try await ec2.describeInstance("i-0aaa0000000000001"), code: "RequestTimeout", retryable: true)
        XCTAssertEqual(slept.all, [.seconds(30)])
        _ = try await ec2.describeInstance("i-0aaa0000000000001")
    }

    func testSNSValidation() async throws {
        let cloud = try Fixture.cloud()
        let sns = try await cloud.sns(us)
        let topic = "arn:aws:sns:us-east-1:123456789012:alerts"
        await XCTAssertThrowsActionError(try await sns.publish(topicArn: topic, message: "x", subject: String(repeating: "s", count: 101)), code: "InvalidParameter")
        await XCTAssertThrowsActionError(try await sns.publish(topicArn: topic, message: "", subject: nil), code: "InvalidParameter")
        await XCTAssertThrowsActionError(try await sns.publish(topicArn: "arn:aws:sns:eu-west-1:123456789012:alerts", message: "x", subject: nil), code: "InvalidParameter")
        await XCTAssertThrowsActionError(try await sns.publish(topicArn: "nonsense", message: "x", subject: nil), code: "InvalidParameter")
    }

    func testNetworkInterfaceGroupsMustBeInTheVPC() async throws {
        let cloud = try Fixture.cloud()
        let ec2 = try await cloud.ec2(us)
        let other = try await ec2.createSecurityGroup(name: "elsewhere", description: "d", vpcId: "vpc-99", tags: [])
        await XCTAssertThrowsActionError(try await ec2.setNetworkInterfaceGroups("eni-0aaa0000000000001", groupIds: [other]), code: "InvalidParameterValue")
        await XCTAssertThrowsActionError(try await ec2.setNetworkInterfaceGroups("eni-0aaa0000000000001", groupIds: []), code: "MissingParameter")
    }
}

final class SleepLog: @unchecked Sendable {
    private let lock = NSLock()
    private var durations: [Duration] = []
    func add(_ d: Duration) { lock.withLock { durations.append(d) } }
    var all: [Duration] { lock.withLock { durations } }
}
