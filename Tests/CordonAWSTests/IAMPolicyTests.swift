import CordonCore
import XCTest

@testable import CordonAWS
@testable import CordonCloud
@testable import CordonSimulatedCloud

/// `cordon iam-policy`: the policy for the shipped playbooks, its grammar, the
/// AssumeRole statement. (PlaybookCloudTests checks that every call a run makes is in it,
/// and that moto with IAM enforcement accepts it and refuses it without one action.)
final class IAMPolicyTests: XCTestCase {
    func shipped() throws -> [Playbook] { try PlaybookHarness.config().playbooks }

    func testThePolicyOfTheShippedPlaybooks() throws {
        let policy = IAMPolicy.document(for: try shipped())
        XCTAssertEqual(policy["Version"], "2012-10-17")
        var bySid: [String: [String]] = [:]
        var resources: [String: JSONValue] = [:]
        for s in policy["Statement"]?.arrayValue ?? [] {
            let sid = try XCTUnwrap(s["Sid"]?.stringValue)
            XCTAssertTrue(sid.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }, sid)
            XCTAssertEqual(s["Effect"], sid.hasPrefix("CordonDeny") ? "Deny" : "Allow", sid)
            XCTAssertEqual(Set(s.objectValue?.keys.map { $0 } ?? []).subtracting(["Resource", "NotResource"]), ["Sid", "Effect", "Action"], sid)
            let actions = s["Action"]?.arrayValue?.compactMap(\.stringValue) ?? []
            XCTAssertEqual(actions, actions.sorted())
            bySid[sid] = actions
            resources[sid] = s["Resource"] ?? s["NotResource"]
        }
        let allowed: [String: [String]] = [
            "CordonCloudTrail": ["cloudtrail:GetTrailStatus", "cloudtrail:StartLogging"],
            "CordonEC2": ["ec2:AuthorizeSecurityGroupEgress", "ec2:AuthorizeSecurityGroupIngress", "ec2:CreateSecurityGroup", "ec2:CreateSnapshot", "ec2:CreateTags", "ec2:DescribeInstanceAttribute", "ec2:DescribeInstances", "ec2:DescribeSecurityGroupRules", "ec2:DescribeSecurityGroups", "ec2:DescribeSnapshots", "ec2:DescribeVolumes", "ec2:ModifyInstanceAttribute", "ec2:ModifyNetworkInterfaceAttribute", "ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress"],
            "CordonIAMRoles": ["iam:DeleteRolePolicy", "iam:GetRolePolicy", "iam:PutRolePolicy"],
            "CordonIAMUsers": ["iam:DeleteUserPolicy", "iam:GetUserPolicy", "iam:ListAccessKeys", "iam:PutUserPolicy", "iam:UpdateAccessKey"],
            "CordonS3": ["s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock"],
            "CordonSNS": ["sns:Publish"],
        ]
        XCTAssertEqual(bySid.filter { !$0.key.hasPrefix("CordonDeny") }, allowed)
        XCTAssertEqual(resources["CordonCloudTrail"], "arn:aws:cloudtrail:*:*:trail/*")
        XCTAssertEqual(resources["CordonEC2"], "*")
        XCTAssertEqual(resources["CordonIAMRoles"], "arn:aws:iam::*:role/*")
        XCTAssertEqual(resources["CordonIAMUsers"], "arn:aws:iam::*:user/*")
        XCTAssertEqual(resources["CordonS3"], "arn:aws:s3:::*")
        XCTAssertEqual(resources["CordonSNS"], "arn:aws:sns:*:*:*")

        // Nothing on its own user; no escalation no step needs; no role to assume.
        XCTAssertEqual(bySid["CordonDenyChangesToItsUser"], ["iam:*"])
        XCTAssertEqual(resources["CordonDenyChangesToItsUser"], ["arn:aws:iam::*:user/${aws:username}", "arn:aws:iam::*:user/*/${aws:username}"])
        XCTAssertNil(bySid["CordonDenyChangesToItsRoles"], "no role known")
        let escalation = try XCTUnwrap(bySid["CordonDenyPrivilegeEscalation"])
        XCTAssertEqual(resources["CordonDenyPrivilegeEscalation"], "*")
        for action in ["iam:AttachUserPolicy", "iam:AttachRolePolicy", "iam:CreateAccessKey", "iam:PassRole", "iam:UpdateAssumeRolePolicy", "iam:AddUserToGroup", "iam:CreatePolicyVersion", "iam:UpdateLoginProfile"] {
            XCTAssertTrue(escalation.contains(action), action)
        }
        XCTAssertEqual(Set(escalation).intersection(allowed.values.flatMap { $0 }), [], "an action a step needs is not denied")
        XCTAssertEqual(bySid["CordonDenyOtherRoles"], ["sts:AssumeRole"])
        XCTAssertEqual(resources["CordonDenyOtherRoles"], "*")
    }

    /// Where IAM has no key to limit what a Put*Policy writes, the only protection is to
    /// deny every IAM action on Cordon's own principals: the roles it is told about and
    /// the responder role, in a statement apart from the ${aws:username} one (a role has
    /// no user name, and a statement with a variable that cannot be resolved may be
    /// ignored whole).
    func testThePrincipalsAndTheResponderRoleAreDeniedAnyChangeToThemselves() throws {
        let runner = "arn:aws-us-gov:iam::123456789012:role/ops/CordonRunner"
        let policy = IAMPolicy.document(for: try shipped(), roleArnTemplate: "arn:aws-us-gov:iam::{account}:role/CordonResponder", principalArns: [runner, runner])
        let statements = policy["Statement"]?.arrayValue ?? []
        func statement(_ sid: String) -> JSONValue? { statements.first { $0["Sid"]?.stringValue == sid } }
        XCTAssertEqual(statement("CordonDenyChangesToItsRoles"), ["Sid": "CordonDenyChangesToItsRoles", "Effect": "Deny", "Action": ["iam:*"], "Resource": [.string(runner), "arn:aws-us-gov:iam::*:role/CordonResponder"]])
        XCTAssertEqual(statement("CordonDenyChangesToItsUser")?["Resource"], ["arn:aws-us-gov:iam::*:user/${aws:username}", "arn:aws-us-gov:iam::*:user/*/${aws:username}"])
        XCTAssertEqual(statement("CordonDenyOtherRoles"), ["Sid": "CordonDenyOtherRoles", "Effect": "Deny", "Action": ["sts:AssumeRole"], "NotResource": "arn:aws-us-gov:iam::*:role/CordonResponder"])
        XCTAssertEqual(statement("CordonIAMRoles")?["Resource"], "arn:aws-us-gov:iam::*:role/*", "the partition follows the ARNs")
        // An allowed action is never denied: a playbook that needs AttachRolePolicy would get it.
        let deny = statement("CordonDenyPrivilegeEscalation")?["Action"]?.arrayValue?.compactMap(\.stringValue) ?? []
        XCTAssertFalse(deny.contains("iam:PutRolePolicy"))
        let none = IAMPolicy.document(for: [], roleArnTemplate: nil)
        let noneDeny = none["Statement"]?.arrayValue?.first { $0["Sid"] == "CordonDenyPrivilegeEscalation" }?["Action"]?.arrayValue?.compactMap(\.stringValue) ?? []
        XCTAssertEqual(noneDeny, IAMPolicy.escalationActions.sorted(), "with no step, every escalation action is denied")
    }

    func testPrincipalArnsThatAreNotRolesOrUsersAreRefusedWithTheFix() {
        XCTAssertNil(IAMPolicy.principalProblem("arn:aws:iam::123456789012:role/CordonRunner"))
        XCTAssertNil(IAMPolicy.principalProblem("arn:aws:iam::123456789012:user/ops/cordon"))
        XCTAssertEqual(
            IAMPolicy.principalProblem("arn:aws:sts::123456789012:assumed-role/CordonRunner/i-0abc"),
            "\"arn:aws:sts::123456789012:assumed-role/CordonRunner/i-0abc\" is a session of a role, not the role: give the role's ARN, arn:aws:iam::123456789012:role/CordonRunner (with its path, if it has one)")
        XCTAssertNotNil(IAMPolicy.principalProblem("CordonRunner"))
        XCTAssertNotNil(IAMPolicy.principalProblem("arn:aws:iam::12345:role/CordonRunner"))
        XCTAssertNotNil(IAMPolicy.principalProblem("arn:aws:iam::123456789012:group/admins"))
        XCTAssertNotNil(IAMPolicy.principalProblem("arn:aws:iam::123456789012:role/"))
        XCTAssertNotNil(IAMPolicy.principalProblem("arn:aws:s3:::bucket"))
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
        let assume = try XCTUnwrap(policy["Statement"]?.arrayValue?.first { $0["Sid"] == "CordonAssumeResponderRole" })
        XCTAssertEqual(assume, ["Sid": "CordonAssumeResponderRole", "Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": "arn:aws:iam::*:role/CordonResponder"])
        XCTAssertEqual(
            policy["Statement"]?.arrayValue?.map { $0["Sid"]?.stringValue ?? "" },
            ["CordonEC2", "CordonSNS", "CordonAssumeResponderRole", "CordonDenyChangesToItsUser", "CordonDenyChangesToItsRoles", "CordonDenyPrivilegeEscalation", "CordonDenyOtherRoles"])
        let none = IAMPolicy.document(for: [quarantine])
        XCTAssertFalse(none["Statement"]?.arrayValue?.contains { $0["Sid"] == "CordonAssumeResponderRole" } ?? true)
    }
}
