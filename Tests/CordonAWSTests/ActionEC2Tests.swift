import CordonCore
import Foundation
import XCTest

@testable import CordonAWS
@testable import CordonCloud
@testable import CordonSimulatedCloud

final class ActionEC2Tests: XCTestCase {
    let instance = "i-0aaa0000000000001"
    let us = CloudScope(account: "123456789012", region: "us-east-1")

    func run(_ action: any Action, _ request: ActionRequest) async throws(ActionError) -> ActionOutcome { try await action.run(request) }

    // MARK: capture_instance

    func testCaptureInstance() async throws {
        let cloud = try Fixture.cloud()
        let action = try XCTUnwrap(Fixture.actions(cloud)["aws.ec2.capture_instance"])
        let evidence = MemoryEvidence()
        let before = cloud.snapshot()
        let outcome = try await run(action, Fixture.request("aws.ec2.capture_instance", ["instance_id": .string(instance)], evidence: evidence))
        XCTAssertEqual(outcome.target, instance)
        XCTAssertEqual(outcome.outputs["instance"]?["id"]?.stringValue, instance)
        XCTAssertEqual(outcome.outputs["security_groups"]?.arrayValue?.map { $0["id"]?.stringValue }, ["sg-0aaa0000000000001", "sg-0aaa0000000000002"])
        XCTAssertEqual(outcome.outputs["network_interfaces"]?.arrayValue?.count, 2)
        XCTAssertEqual(outcome.outputs["volumes"]?.arrayValue?.count, 2)
        XCTAssertEqual(outcome.evidence.count, 1)
        XCTAssertEqual(outcome.outputs["evidence"], outcome.evidence.first?["sha256"])
        let document = try XCTUnwrap(evidence.document(named: "ec2-capture-\(instance).json"))
        XCTAssertEqual(document["instance"]?["tags"]?.arrayValue?.count, 2)
        XCTAssertEqual(document["security_groups"]?[0]?["ingress"]?.arrayValue?.count, 3)
        XCTAssertEqual(document["captured_at"], "2026-03-10T01:30:00.000Z")
        XCTAssertEqual(cloud.snapshot(), before, "capturing changes nothing")
        await XCTAssertThrowsActionError(
            try await action.run(Fixture.request("aws.ec2.capture_instance", ["instance_id": "i-0fffffffffffffff0"])), code: "InvalidInstanceID.NotFound", retryable: false)
    }

    func testRegionFromInputsThenFindingThenDefault() async throws {
        let cloud = try Fixture.cloud()
        let action = try XCTUnwrap(Fixture.actions(cloud)["aws.ec2.capture_instance"])
        // The finding says eu-west-1.
        let eu = try await run(action, Fixture.request("aws.ec2.capture_instance", ["instance_id": "i-0bbb0000000000001"], region: "eu-west-1"))
        XCTAssertEqual(eu.target, "i-0bbb0000000000001")
        // The input wins over the finding.
        let input = try await run(action, Fixture.request("aws.ec2.capture_instance", ["instance_id": "i-0bbb0000000000001", "region": "eu-west-1"], region: "us-east-1"))
        XCTAssertEqual(input.target, "i-0bbb0000000000001")
        // Neither: the default region.
        let fallback = try await run(action, Fixture.request("aws.ec2.capture_instance", ["instance_id": .string(instance)], region: nil, account: nil))
        XCTAssertEqual(fallback.target, instance)
        // No region anywhere.
        let bare = AWSActions.all(cloud: cloud, defaultRegion: nil)["aws.ec2.capture_instance"]
        await XCTAssertThrowsActionError(try await bare!.run(Fixture.request("aws.ec2.capture_instance", ["instance_id": .string(instance)], region: nil)), code: "MissingRegion")
    }

    // MARK: snapshot_volumes

    func testSnapshotVolumesOncePerVolume() async throws {
        let cloud = try Fixture.cloud()
        let action = try XCTUnwrap(Fixture.actions(cloud)["aws.ec2.snapshot_volumes"])
        let request = Fixture.request("aws.ec2.snapshot_volumes", ["instance_id": .string(instance)])
        let notYet = try await action.check(request)
        XCTAssertNil(notYet)
        let first = try await run(action, request)
        XCTAssertFalse(first.alreadyDone)
        XCTAssertEqual(first.outputs["snapshot_ids"], ["snap-00000000000000001", "snap-00000000000000002"])
        XCTAssertEqual(cloud.callCount("ec2:CreateSnapshot"), 2)
        let snapshots = try await cloud.ec2(us).describeSnapshots(tagKey: "cordon:incident", tagValue: "inc-0001")
        XCTAssertEqual(Set(snapshots.map(\.volumeId)), ["vol-0aaa0000000000001", "vol-0aaa0000000000002"])
        XCTAssertTrue(snapshots.allSatisfy { $0.tags.contains(Tag("cordon:volume", $0.volumeId)) })
        // A retry, a restart, a second finding: the tagged snapshots are found.
        let second = try await run(action, request)
        XCTAssertTrue(second.alreadyDone)
        XCTAssertEqual(second.outputs["snapshot_ids"], first.outputs["snapshot_ids"])
        XCTAssertEqual(cloud.callCount("ec2:CreateSnapshot"), 2)
        let checked = try await action.check(request)
        XCTAssertEqual(checked?.outputs["snapshot_ids"], first.outputs["snapshot_ids"])
        XCTAssertEqual(checked?.alreadyDone, true)
        // Another incident gets its own.
        let other = try await run(action, Fixture.request("aws.ec2.snapshot_volumes", ["instance_id": .string(instance)], incident: "inc-0002"))
        XCTAssertFalse(other.alreadyDone)
        XCTAssertEqual(cloud.callCount("ec2:CreateSnapshot"), 4)
    }

    func testSnapshotCrashHalfwayThenRetryMakesOnlyTheMissingOne() async throws {
        let cloud = try Fixture.cloud()
        let action = try XCTUnwrap(Fixture.actions(cloud)["aws.ec2.snapshot_volumes"])
        let request = Fixture.request("aws.ec2.snapshot_volumes", ["instance_id": .string(instance)])
        // A run made the first snapshot, then stopped; the next call to CreateSnapshot is throttled.
        _ = try await cloud.ec2(us).createSnapshot(
            volumeId: "vol-0aaa0000000000001", description: "d", tags: [Tag("cordon:incident", "inc-0001"), Tag("cordon:volume", "vol-0aaa0000000000001")])
        cloud.inject(.throttle("ec2:CreateSnapshot", times: 1))
        await XCTAssertThrowsActionError(try await action.run(request), code: "RequestLimitExceeded", retryable: true)
        let checked = try await action.check(request)
        XCTAssertNil(checked, "one volume has no snapshot yet")
        let retry = try await run(action, request)
        XCTAssertFalse(retry.alreadyDone)
        XCTAssertEqual(retry.outputs["snapshots"]?.arrayValue?.map { $0["created"] }, [false, true])
        let all = try await cloud.ec2(us).describeSnapshots(tagKey: "cordon:incident", tagValue: "inc-0001")
        XCTAssertEqual(all.count, 2)
    }

    // MARK: isolate_instance

    func isolate(_ cloud: SimulatedCloud, incident: String = "inc-0001", protect: Bool = true) -> (any Action, ActionRequest) {
        let action = Fixture.actions(cloud)["aws.ec2.isolate_instance"]!
        return (action, Fixture.request("aws.ec2.isolate_instance", ["instance_id": .string(instance), "isolation_group": "cordon-quarantine", "termination_protection": .bool(protect)], incident: incident))
    }

    func testIsolateInstance() async throws {
        let cloud = try Fixture.cloud()
        let (action, request) = isolate(cloud)
        XCTAssertTrue(action.reversible)
        let before = try await action.check(request)
        XCTAssertNil(before)
        let outcome = try await run(action, request)
        XCTAssertFalse(outcome.alreadyDone)
        let isolationId = try XCTUnwrap(outcome.outputs["isolation_group_id"]?.stringValue)
        XCTAssertEqual(outcome.outputs["previous_groups"], ["eni-0aaa0000000000001": ["sg-0aaa0000000000001", "sg-0aaa0000000000002"], "eni-0aaa0000000000002": ["sg-0aaa0000000000002"]])
        XCTAssertEqual(outcome.outputs["termination_protection_before"], false)
        let ec2 = try await cloud.ec2(us)
        let after = try await ec2.describeInstance(instance)
        XCTAssertTrue(after.networkInterfaces.allSatisfy { $0.groups.map(\.id) == [isolationId] })
        let protected = try await ec2.terminationProtection(instance)
        XCTAssertTrue(protected)
        XCTAssertTrue(after.tags.contains(Tag("cordon:isolated-by", "inc-0001")))
        // The isolation group: in the VPC, no rules, says who made it.
        let group = try await ec2.describeSecurityGroups(ids: [isolationId])[0]
        XCTAssertEqual(group.name, "cordon-quarantine")
        XCTAssertEqual(group.vpcId, "vpc-01")
        XCTAssertTrue(group.ingress.isEmpty && group.egress.isEmpty)
        XCTAssertTrue(group.description.contains("Cordon"))
        // Connection tracking: each interface went to the all-open group first, then to isolation.
        let untrackId = try XCTUnwrap(outcome.outputs["untrack_group_id"]?.stringValue)
        let untrack = try await ec2.describeSecurityGroups(ids: [untrackId])[0]
        XCTAssertEqual(untrack.name, "cordon-quarantine-untrack")
        let all = [IpPermission(ipProtocol: "-1", ipv4Ranges: ["0.0.0.0/0"], ipv6Ranges: ["::/0"])]
        XCTAssertEqual(untrack.ingress, all)
        XCTAssertEqual(untrack.egress, all)
        let moves = cloud.calls.filter { $0.operation == "ec2:ModifyNetworkInterfaceAttribute" }
        XCTAssertEqual(moves.count, 4)
        // Pre-state for rollback, recorded in the journal and on the instance.
        let pre = try XCTUnwrap(outcome.preState)
        XCTAssertEqual(pre["interfaces"]?[0]?["groups"], ["sg-0aaa0000000000001", "sg-0aaa0000000000002"])
        XCTAssertEqual(pre["terminationProtection"], false)
        XCTAssertTrue(after.tags.contains(Tag("cordon:pre-isolation-groups", "eni-0aaa0000000000001=sg-0aaa0000000000001+sg-0aaa0000000000002 eni-0aaa0000000000002=sg-0aaa0000000000002")))
        XCTAssertEqual(outcome.evidence.count, 1)
    }

    func testIsolateTwiceIsAlreadyDoneAndMakesNoSecondGroup() async throws {
        let cloud = try Fixture.cloud()
        let (action, request) = isolate(cloud)
        let first = try await run(action, request)
        let groupsAfterFirst = try await cloud.ec2(us).describeSecurityGroups(ids: []).count
        let second = try await run(action, request)
        XCTAssertTrue(second.alreadyDone)
        XCTAssertEqual(second.outputs["isolation_group_id"], first.outputs["isolation_group_id"])
        XCTAssertEqual(second.outputs["previous_groups"], first.outputs["previous_groups"], "the tags remember the groups before isolation")
        XCTAssertEqual(second.preState, first.preState)
        let groupsAfterSecond = try await cloud.ec2(us).describeSecurityGroups(ids: []).count
        XCTAssertEqual(groupsAfterFirst, groupsAfterSecond)
        XCTAssertEqual(cloud.callCount("ec2:CreateSecurityGroup"), 2)
        XCTAssertEqual(cloud.callCount("ec2:ModifyNetworkInterfaceAttribute"), 4)
        // Another instance in the VPC reuses the same groups.
        let checked = try await action.check(request)
        XCTAssertEqual(checked?.alreadyDone, true)
        XCTAssertEqual(checked?.preState, first.preState)
    }

    func testIsolateInterruptedBeforeProtectionThenRetry() async throws {
        let cloud = try Fixture.cloud()
        let (action, request) = isolate(cloud)
        cloud.inject(.accessDenied("ec2:ModifyInstanceAttribute", times: 1))
        await XCTAssertThrowsActionError(try await action.run(request), code: "UnauthorizedOperation", retryable: false, contains: "ec2:ModifyInstanceAttribute")
        // The interfaces are isolated, protection is not on: check says not done.
        let checked = try await action.check(request)
        XCTAssertNil(checked)
        let retry = try await run(action, request)
        XCTAssertFalse(retry.alreadyDone)
        XCTAssertEqual(
            retry.outputs["previous_groups"],
            ["eni-0aaa0000000000001": ["sg-0aaa0000000000001", "sg-0aaa0000000000002"], "eni-0aaa0000000000002": ["sg-0aaa0000000000002"]],
            "the groups before isolation come from the tags, not from the isolation group")
        XCTAssertEqual(retry.preState?["terminationProtection"], false)
        XCTAssertEqual(cloud.callCount("ec2:ModifyNetworkInterfaceAttribute"), 4)
    }

    func testIsolateInterruptedBetweenUntrackAndIsolation() async throws {
        let cloud = try Fixture.cloud()
        let (action, request) = isolate(cloud)
        // The state a crash leaves after the tags and the first move to the all-open group.
        let ec2 = try await cloud.ec2(us)
        let untrack = try await ec2.createSecurityGroup(name: "cordon-quarantine-untrack", description: "d", vpcId: "vpc-01", tags: [])
        try await ec2.createTags(
            resourceIds: [instance],
            tags: [
                Tag("cordon:isolated-by", "inc-0001"),
                Tag("cordon:pre-isolation-groups", "eni-0aaa0000000000001=sg-0aaa0000000000001+sg-0aaa0000000000002 eni-0aaa0000000000002=sg-0aaa0000000000002"),
                Tag("cordon:pre-isolation-termination-protection", "false"),
            ])
        try await ec2.setNetworkInterfaceGroups("eni-0aaa0000000000001", groupIds: [untrack])
        let outcome = try await run(action, request)
        XCTAssertEqual(outcome.outputs["previous_groups"]?["eni-0aaa0000000000001"], ["sg-0aaa0000000000001", "sg-0aaa0000000000002"], "the tag, not the untrack group")
        XCTAssertEqual(outcome.outputs["untrack_group_id"]?.stringValue, untrack)
        _ = try await action.rollback(request, preState: try XCTUnwrap(outcome.preState))
        let after = try await ec2.describeInstance(instance)
        XCTAssertEqual(after.networkInterfaces[0].groups.map(\.id), ["sg-0aaa0000000000001", "sg-0aaa0000000000002"])
    }

    func testIsolateRollbackRestoresExactly() async throws {
        let cloud = try Fixture.cloud()
        let (action, request) = isolate(cloud)
        let before = try await cloud.ec2(us).describeInstance(instance)
        let protectionBefore = try await cloud.ec2(us).terminationProtection(instance)
        let snapshotBefore = cloud.snapshot()
        let outcome = try await run(action, request)
        let pre = try XCTUnwrap(outcome.preState)
        let rolledBack = try await action.rollback(request, preState: pre)
        XCTAssertFalse(rolledBack.alreadyDone)
        let after = try await cloud.ec2(us).describeInstance(instance)
        XCTAssertEqual(after.networkInterfaces, before.networkInterfaces)
        let protectionAfter = try await cloud.ec2(us).terminationProtection(instance)
        XCTAssertEqual(protectionAfter, protectionBefore)
        // Twice is harmless.
        let again = try await action.rollback(request, preState: pre)
        XCTAssertTrue(again.alreadyDone)
        // The whole state is back, apart from what stays on purpose: the two Cordon
        // groups and the audit tags on the instance.
        XCTAssertEqual(Self.withoutCordonTraces(cloud.snapshot()), Self.withoutCordonTraces(snapshotBefore))
        XCTAssertNotEqual(cloud.snapshot(), snapshotBefore)
    }

    func testIsolateRollbackWithoutTerminationProtection() async throws {
        let cloud = try Fixture.cloud()
        let (action, request) = isolate(cloud, protect: false)
        let outcome = try await run(action, request)
        XCTAssertNil(outcome.preState?["terminationProtection"] ?? nil)
        let protected = try await cloud.ec2(us).terminationProtection(instance)
        XCTAssertFalse(protected)
        _ = try await action.rollback(request, preState: try XCTUnwrap(outcome.preState))
    }

    func testIsolateErrors() async throws {
        let cloud = try Fixture.cloud()
        let action = Fixture.actions(cloud)["aws.ec2.isolate_instance"]!
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["instance_id": "i-0fff000000000000f"])), code: "InvalidInstanceID.NotFound")
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["instance_id": "i-0aaa0000000000002"])), code: "IncorrectInstanceState")
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", [:])), code: "InvalidInput")
        cloud.inject(.accessDenied("ec2:ModifyNetworkInterfaceAttribute"))
        await XCTAssertThrowsActionError(
            try await action.run(Fixture.request("x", ["instance_id": .string(instance)])), code: "UnauthorizedOperation", retryable: false,
            contains: "ec2:ModifyNetworkInterfaceAttribute")
        await XCTAssertThrowsActionError(try await action.rollback(Fixture.request("x", [:]), preState: ["nonsense": true]), code: "InvalidPreState")
    }

    /// The snapshot without the security groups Cordon creates and the `cordon:` tags.
    static func withoutCordonTraces(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let o):
            var out = JSONObject()
            for (k, v) in o {
                if case .object(let g) = v, g["name"]?.stringValue?.hasPrefix("cordon-quarantine") == true { continue }
                if k == "tags", case .array(let tags) = v {
                    out[k] = .array(tags.filter { !($0["key"]?.stringValue?.hasPrefix("cordon:") ?? false) })
                    continue
                }
                out[k] = withoutCordonTraces(v)
            }
            return .object(out)
        case .array(let a): return .array(a.map(withoutCordonTraces))
        default: return value
        }
    }

    // MARK: revoke_ingress

    func testRevokeIngressByRuleId() async throws {
        let cloud = try Fixture.cloud()
        let action = Fixture.actions(cloud)["aws.ec2.revoke_ingress"]!
        let request = Fixture.request("aws.ec2.revoke_ingress", ["group_id": "sg-0aaa0000000000001", "rule_ids": "sgr-0aaa0000000000001"])
        let snapshotBefore = cloud.snapshot()
        let outcome = try await run(action, request)
        XCTAssertFalse(outcome.alreadyDone)
        XCTAssertEqual(outcome.outputs["revoked"]?[0]?["id"], "sgr-0aaa0000000000001")
        let rules = try await cloud.ec2(us).describeSecurityGroupRules(groupId: "sg-0aaa0000000000001")
        XCTAssertFalse(rules.contains { $0.id == "sgr-0aaa0000000000001" })
        XCTAssertEqual(rules.count, 3)
        // Again: gone already.
        let again = try await run(action, request)
        XCTAssertTrue(again.alreadyDone)
        XCTAssertNil(again.preState)
        let checked = try await action.check(request)
        XCTAssertEqual(checked?.alreadyDone, true)
        // Rollback authorizes it again (a new rule id, as in AWS); twice is harmless.
        let pre = try XCTUnwrap(outcome.preState)
        let back = try await action.rollback(request, preState: pre)
        XCTAssertFalse(back.alreadyDone)
        let twice = try await action.rollback(request, preState: pre)
        XCTAssertTrue(twice.alreadyDone)
        XCTAssertEqual(Self.withoutRuleIds(cloud.snapshot()), Self.withoutRuleIds(snapshotBefore))
    }

    func testRevokeIngressByCloudTrailPermissions() async throws {
        let cloud = try Fixture.cloud()
        let action = Fixture.actions(cloud)["aws.ec2.revoke_ingress"]!
        // The shape of requestParameters.ipPermissions.items in the CloudTrail record.
        let items: JSONValue = [
            ["ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "groups": [:], "ipRanges": ["items": [["cidrIp": "0.0.0.0/0", "description": "temp"]]], "ipv6Ranges": [:], "prefixListIds": [:]],
            ["ipProtocol": "tcp", "fromPort": 3389, "toPort": 3389, "ipRanges": [:], "ipv6Ranges": ["items": [["cidrIpv6": "::/0"]]]],
        ]
        let request = Fixture.request("aws.ec2.revoke_ingress", ["group_id": "sg-0aaa0000000000001", "ip_permissions": items])
        let outcome = try await run(action, request)
        XCTAssertEqual(outcome.outputs["revoked"]?.arrayValue?.compactMap { $0["id"]?.stringValue }, ["sgr-0aaa0000000000001", "sgr-0aaa0000000000003"])
        let rules = try await cloud.ec2(us).describeSecurityGroupRules(groupId: "sg-0aaa0000000000001")
        XCTAssertEqual(rules.filter { !$0.isEgress }.map(\.id), ["sgr-0aaa0000000000002"])
        let again = try await run(action, request)
        XCTAssertTrue(again.alreadyDone)
        // The API shape works too.
        let api: JSONValue = [["IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [["CidrIp": "10.0.0.0/8"]]]]
        let byApi = try await run(action, Fixture.request("aws.ec2.revoke_ingress", ["group_id": "sg-0aaa0000000000001", "ip_permissions": api]))
        XCTAssertEqual(byApi.outputs["revoked"]?[0]?["id"], "sgr-0aaa0000000000002")
        // Rollback of the first puts both back.
        _ = try await action.rollback(request, preState: try XCTUnwrap(outcome.preState))
        let restored = try await cloud.ec2(us).describeSecurityGroupRules(groupId: "sg-0aaa0000000000001").filter { !$0.isEgress }
        XCTAssertEqual(restored.count, 2)
        XCTAssertTrue(restored.contains { $0.cidrIpv6 == "::/0" && $0.fromPort == 3389 })
    }

    func testRevokeIngressInputErrors() async throws {
        let cloud = try Fixture.cloud()
        let action = Fixture.actions(cloud)["aws.ec2.revoke_ingress"]!
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["group_id": "sg-0aaa0000000000001"])), code: "InvalidInput")
        await XCTAssertThrowsActionError(
            try await action.run(Fixture.request("x", ["group_id": "sg-0aaa0000000000001", "rule_ids": "sgr-1", "ip_permissions": [["ipProtocol": "tcp"]]])), code: "InvalidInput")
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["group_id": "sg-0aaa0000000000001", "ip_permissions": [["ipProtocol": "tcp"]]])), code: "InvalidInput")
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["group_id": "sg-0aaa0000000000001", "ip_permissions": ["junk"]])), code: "InvalidInput")
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["group_id": "sg-0nope", "rule_ids": ["sgr-1"]])), code: "InvalidGroup.NotFound")
    }

    static func withoutRuleIds(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let o):
            var out = JSONObject()
            for (k, v) in o where !(k == "id" && (v.stringValue?.hasPrefix("sgr-") ?? false)) { out[k] = withoutRuleIds(v) }
            return .object(out)
        case .array(let a):
            return .array(a.map(withoutRuleIds).sorted { JSONWriter.string($0) < JSONWriter.string($1) })
        default: return value
        }
    }
}
