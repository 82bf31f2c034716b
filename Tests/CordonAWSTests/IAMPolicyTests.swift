import CordonCore
import XCTest

@testable import CordonAWS

/// `cordon iam-policy`: the policy for the shipped playbooks, its grammar, the
/// AssumeRole statement. (PlaybookCloudTests checks that every call a run makes is in it,
/// and that moto with IAM enforcement accepts it and refuses it without one action.)
final class IAMPolicyTests: XCTestCase {
    func shipped() throws -> [Playbook] { try PlaybookHarness.config().playbooks }

    func testThePolicyOfTheShippedPlaybooks() throws {
        let policy = IAMPolicy.document(for: try shipped())
        XCTAssertEqual(policy["Version"], "2012-10-17")
        var bySid: [String: [String]] = [:]
        for s in policy["Statement"]?.arrayValue ?? [] {
            XCTAssertEqual(s["Effect"], "Allow")
            XCTAssertEqual(s["Resource"], "*")
            XCTAssertEqual(Set(s.objectValue?.keys.map { $0 } ?? []), ["Sid", "Effect", "Action", "Resource"])
            let sid = try XCTUnwrap(s["Sid"]?.stringValue)
            XCTAssertTrue(sid.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }, sid)
            let actions = s["Action"]?.arrayValue?.compactMap(\.stringValue) ?? []
            XCTAssertEqual(actions, actions.sorted())
            bySid[sid] = actions
        }
        let expected: [String: [String]] = [
            "CordonCloudTrail": ["cloudtrail:GetTrailStatus", "cloudtrail:StartLogging"],
            "CordonEC2": ["ec2:AuthorizeSecurityGroupEgress", "ec2:AuthorizeSecurityGroupIngress", "ec2:CreateSecurityGroup", "ec2:CreateSnapshot", "ec2:CreateTags", "ec2:DescribeInstanceAttribute", "ec2:DescribeInstances", "ec2:DescribeSecurityGroupRules", "ec2:DescribeSecurityGroups", "ec2:DescribeSnapshots", "ec2:DescribeVolumes", "ec2:ModifyInstanceAttribute", "ec2:ModifyNetworkInterfaceAttribute", "ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress"],
            "CordonIAM": ["iam:DeleteRolePolicy", "iam:DeleteUserPolicy", "iam:GetRolePolicy", "iam:GetUserPolicy", "iam:ListAccessKeys", "iam:PutRolePolicy", "iam:PutUserPolicy", "iam:UpdateAccessKey"],
            "CordonS3": ["s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock"],
            "CordonSNS": ["sns:Publish"],
        ]
        XCTAssertEqual(bySid, expected)
        XCTAssertEqual(policy["Statement"]?.arrayValue?.compactMap { $0["Sid"]?.stringValue }, expected.keys.sorted())
    }

    func testEveryActionIsNeededByAStepAndEveryServiceHasOneStatement() throws {
        let requirement = IAMPolicy.requirement(for: try shipped())
        XCTAssertEqual(requirement.actions["ec2:ModifyNetworkInterfaceAttribute"], ["guardduty-ec2-quarantine/isolate (aws.ec2.isolate_instance)"])
        XCTAssertEqual(requirement.actions["sns:Publish"], ["guardduty-ec2-quarantine/notify_sns (aws.sns.publish)"])
        XCTAssertNil(requirement.actions["iam:DeleteLoginProfile"], "no shipped playbook deletes login profiles")
        XCTAssertNil(requirement.actions["ec2:DescribeNetworkInterfaces"], "no implementation calls it")
        for (action, steps) in requirement.actions { XCTAssertFalse(steps.isEmpty, action) }
    }

    func testAssumeRoleStatementForTheRoleTemplate() throws {
        let quarantine = try XCTUnwrap(try shipped().first { $0.name == "guardduty-ec2-quarantine" })
        let policy = IAMPolicy.document(for: [quarantine], roleArnTemplate: "arn:aws:iam::{account}:role/CordonResponder")
        let last = try XCTUnwrap(policy["Statement"]?.arrayValue?.last)
        XCTAssertEqual(last, ["Sid": "CordonAssumeResponderRole", "Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": "arn:aws:iam::*:role/CordonResponder"])
        XCTAssertEqual(policy["Statement"]?.arrayValue?.map { $0["Sid"]?.stringValue ?? "" }, ["CordonEC2", "CordonSNS", "CordonAssumeResponderRole"])
        let none = IAMPolicy.document(for: [quarantine])
        XCTAssertFalse(none["Statement"]?.arrayValue?.contains { $0["Sid"] == "CordonAssumeResponderRole" } ?? true)
    }
}
