import CordonCore
import CordonEngine
import CordonJournal
import CordonTestSupport
import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest

@testable import CordonAWS
@testable import CordonCloud
@testable import CordonSimulatedCloud

/// Records every call an `AWSCloud` makes.
final class CallLog: Sendable {
    private let calls = Mutex<[AWSCall]>([])
    var observer: AWSCallObserver { { [self] call in calls.withLock { $0.append(call) } } }
    var all: [AWSCall] { calls.withLock { $0 } }
    func count(_ iamAction: String) -> Int { all.filter { $0.iamAction == iamAction && $0.errorCode == nil }.count }
}

/// An action whose process "dies" right after its side effect: it does the real work,
/// then never returns, so the journal holds a `step.intent` with no result — what a
/// `kill -9` at that moment leaves.
final class DiesAfterEffect: Action, @unchecked Sendable {
    let inner: any Action
    private let done = Mutex(false)
    nonisolated(unsafe) static var parked: [CheckedContinuation<Void, Never>] = []
    static let lock = NSLock()

    init(_ inner: any Action) { self.inner = inner }

    var checkable: Bool { inner.checkable }
    var reversible: Bool { inner.reversible }
    func check(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome? { try await inner.check(request) }
    func rollback(_ request: ActionRequest, preState: JSONValue) async throws(ActionError) -> ActionOutcome {
        try await inner.rollback(request, preState: preState)
    }

    func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        _ = try await inner.run(request)
        done.withLock { $0 = true }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in Self.lock.withLock { Self.parked.append(c) } }
        throw .permanent("Unreachable", "a dead process does not answer")
    }

    /// Waits (at most 60 s) until the side effect is done.
    func waitUntilDead() async throws {
        for _ in 0..<1200 {
            if done.withLock({ $0 }) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTFail("the action never ran")
    }
}

final class PlaybookCloudTests: XCTestCase {
    static let http = AWSHTTPClient()

    func inventory() throws -> Inventory { try Inventory.load(path: Fixture.examplePath) }

    func moto(_ server: PythonServer, env extra: [String: String] = [:], log: CallLog? = nil) -> AWSCloud {
        AWSCloud(options: AWSCloudOptions(environment: Moto.environment(port: server.port, extra), observer: log?.observer), http: Self.http)
    }

    /// What each playbook's steps ended as, over all incidents (ids differ between clouds).
    func outcomes(_ index: IncidentIndex) -> [String] {
        index.incidents.values.flatMap { i in i.steps.values.map { "\(i.playbook)/\($0.id): \($0.status)\($0.error.map { " (\($0))" } ?? "")" } }.sorted()
    }

    // MARK: - The shipped playbooks on the simulated cloud and on moto

    func testShippedPlaybooksLeaveTheSimulatedCloudAndMotoInTheSameState() async throws {
        let inventory = try inventory()
        let initial = SimulatedCloud(inventory: inventory).snapshot()
        let server = try Moto.dedicated("playbooks")
        let ids = try await MotoSeeder.seed(inventory, port: server.port)
        let log = CallLog()
        let moto = moto(server, log: log)
        let sim = SimulatedCloud(inventory: inventory)

        // The seeding is faithful: both clouds start alike.
        let simBefore = try await PlaybookHarness.state(sim, inventory: initial)
        let motoBefore = try await PlaybookHarness.state(moto, inventory: initial, ids: ids)
        XCTAssertEqual(JSONWriter.pretty(simBefore), JSONWriter.pretty(motoBefore))

        let simCallsBefore = sim.calls.count
        let motoCallsBefore = log.all.count
        let simIndex = try await PlaybookHarness.runAll(sim)
        let motoIndex = try await PlaybookHarness.runAll(moto, ids: ids)
        let simCalls = Array(sim.calls[simCallsBefore...])
        let motoCalls = Array(log.all[motoCallsBefore...])
        XCTAssertEqual(outcomes(simIndex), outcomes(motoIndex))
        XCTAssertFalse(outcomes(simIndex).contains { $0.contains(": failed") }, outcomes(simIndex).joined(separator: "\n"))
        XCTAssertEqual(simIndex.incidents.count, motoIndex.incidents.count)
        XCTAssertGreaterThanOrEqual(simIndex.incidents.count, 6, "every shipped playbook fired")

        let simAfter = try await PlaybookHarness.state(sim, inventory: initial)
        let motoAfter = try await PlaybookHarness.state(moto, inventory: initial, ids: ids)
        XCTAssertEqual(JSONWriter.pretty(simAfter), JSONWriter.pretty(motoAfter))
        XCTAssertNotEqual(JSONWriter.pretty(simBefore), JSONWriter.pretty(simAfter), "the playbooks changed something")

        // What the playbooks must have done, on both (they are equal).
        let us = try XCTUnwrap(simAfter["us-east-1"])
        for instance in ["i-0a1b2c3d4e5f67890", "i-0b2c3d4e5f6a78901"] {
            let i = try XCTUnwrap(us["instance " + instance], instance)
            for (_, groups) in i["interfaces"]?.objectValue ?? [:] { XCTAssertEqual(groups, ["cordon-quarantine"], instance) }
            for (volume, count) in i["snapshots_per_volume"]?.objectValue ?? [:] { XCTAssertEqual(count, 1, "\(instance) \(volume)") }
            XCTAssertEqual(i["termination_protection"], true)
        }
        let eu = try XCTUnwrap(simAfter["eu-west-1"]?["instance i-0f6a7b8c9d0e12345"])
        XCTAssertEqual(eu["interfaces"]?["eni-0e5f6a7b8c9d02134"], ["cordon-quarantine"])
        XCTAssertEqual(us["group cordon-quarantine in vpc-0f1e2d3c4b5a69788"], [], "the isolation group has no rule")
        XCTAssertEqual(simAfter["bucket acme-prod-customer-exports"], JSONBridge.value(PublicAccessBlock.allBlocked))
        let bastion = us["group sg-0aa11bb22cc33dd44"]?.arrayValue?.compactMap(\.stringValue) ?? []
        XCTAssertFalse(bastion.contains { $0.hasPrefix("in ") && $0.hasSuffix(" 0.0.0.0/0") }, "\(bastion)")

        // Every IAM action the runs performed is in the policy `cordon iam-policy` prints.
        let config = try PlaybookHarness.config()
        let policy = Set(IAMPolicy.requirement(for: config.playbooks).actions.keys)
        let performed = Set(simCalls.map(\.iamAction)).union(motoCalls.map(\.iamAction))
        XCTAssertEqual(performed.subtracting(policy), [], "actions called but missing from the policy")
        XCTAssertTrue(performed.contains("ec2:ModifyNetworkInterfaceAttribute"))
    }

    // MARK: - Crash recovery, with moto counting the side effects

    func testCrashesAfterTheIntentOfSnapshotAndIsolateMakeEachEffectOnce() async throws {
        let inventory = try inventory()
        let server = try Moto.dedicated("crash")
        let ids = try await MotoSeeder.seed(inventory, port: server.port)
        let log = CallLog()
        let moto = moto(server, log: log)
        let config = try PlaybookHarness.config()
        let dir = try PlaybookHarness.tempDir("crash")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fixture = PlaybookHarness.root.appendingPathComponent("Fixtures/playbooks/guardduty-ec2-quarantine/fires-bitcoin-tool-staging-instance.json")
        let instance = try XCTUnwrap(ids["i-0b2c3d4e5f6a78901"])

        // Run 1 dies right after CreateSnapshot.
        var dying: DiesAfterEffect?
        let (_, first) = try await PlaybookHarness.engine(
            dir, config,
            PlaybookHarness.actions(config, cloud: moto) { name, action in
                guard name == SnapshotVolumesAction.name else { return action }
                dying = DiesAfterEffect(action)
                return dying!
            })
        let findings = try PlaybookHarness.findings(fixture, ids: ids)
        _ = Task { try await first.process(findings) }
        try await XCTUnwrap(dying).waitUntilDead()
        XCTAssertEqual(log.count("ec2:CreateSnapshot"), 1)

        // Run 2 (a restart on the same data directory) dies right after the isolation.
        let (_, second) = try await PlaybookHarness.engine(
            dir, config,
            PlaybookHarness.actions(config, cloud: moto) { name, action in
                guard name == IsolateInstanceAction.name else { return action }
                dying = DiesAfterEffect(action)
                return dying!
            })
        _ = Task { try await second.resumeUnfinished() }
        try await XCTUnwrap(dying).waitUntilDead()

        // Run 3 finishes.
        let (journal, third) = try await PlaybookHarness.engine(dir, config, PlaybookHarness.actions(config, cloud: moto))
        let resumed = try await third.resumeUnfinished()
        XCTAssertEqual(resumed.count, 1)
        let incidents = await third.index.incidents.values
        let incident = try XCTUnwrap(incidents.first)
        XCTAssertEqual(incident.status, "completed")
        for step in ["evidence", "snapshot", "isolate", "notify_sns"] { XCTAssertEqual(incident.steps[step]?.status, "succeeded", step) }
        let records = try await journal.records(incident: incident.id)
        let recovered = records.filter { $0.kind == RecordKind.stepSucceeded && $0.data["recovered"] == true }.compactMap { $0.data["step"]?.stringValue }
        XCTAssertEqual(recovered.sorted(), ["isolate", "snapshot"], "both were found done by `check`, not done again")
        try await journal.close()

        // Moto, the side-effect counter: one snapshot per volume, one isolation group.
        let ec2 = try await moto.ec2(CloudScope(region: "us-east-1"))
        let described = try await ec2.describeInstance(instance)
        for device in described.blockDevices {
            let snapshots = try await ec2.describeSnapshots(tagKey: "cordon:volume", tagValue: device.volumeId)
            XCTAssertEqual(snapshots.count, 1, device.volumeId)
        }
        XCTAssertEqual(log.count("ec2:CreateSnapshot"), described.blockDevices.count)
        XCTAssertEqual(log.all.filter { $0.operation == "CreateSecurityGroup" && $0.parameter("GroupName") == "cordon-quarantine" && $0.errorCode == nil }.count, 1)
        let vpc = try XCTUnwrap(ids["vpc-0a2b3c4d5e6f70819"])
        let isolation = try await ec2.findSecurityGroup(name: "cordon-quarantine", vpcId: vpc)
        XCTAssertEqual(described.networkInterfaces.map { $0.groups.map(\.id) }, [[try XCTUnwrap(isolation?.id)]])
    }

    // MARK: - Connection tracking and rollback, per interface

    func testIsolationGoesThroughTheAllowAllGroupAndRollbackRestoresEachInterface() async throws {
        let server = try Moto.server()
        let log = CallLog()
        let moto = moto(server, log: log)
        let raw = try await moto.client(.ec2, CloudScope(region: "us-east-1"))
        // An instance with two interfaces in different groups.
        let image = try unwrap(try await raw.query("DescribeImages", [("Owner.1", "amazon")]).items("imagesSet").first?.nonEmpty("imageId"))
        let vpc = try unwrap(try await raw.query("CreateVpc", [("CidrBlock", "10.77.0.0/16")]).nonEmpty("vpc", "vpcId"))
        let subnet = try unwrap(try await raw.query("CreateSubnet", [("VpcId", vpc), ("CidrBlock", "10.77.1.0/24")]).nonEmpty("subnet", "subnetId"))
        let ec2 = try await moto.ec2(CloudScope(region: "us-east-1"))
        let a = try await ec2.createSecurityGroup(name: "app-a", description: "a", vpcId: vpc, tags: [])
        let b = try await ec2.createSecurityGroup(name: "app-b", description: "b", vpcId: vpc, tags: [])
        let c = try await ec2.createSecurityGroup(name: "mgmt-c", description: "c", vpcId: vpc, tags: [])
        // Groups are set on the interface: moto adds an instance's launch groups to every
        // interface it describes, even after they change (AWS does not).
        let run = try await raw.query(
            "RunInstances", [("ImageId", image), ("MinCount", "1"), ("MaxCount", "1"), ("SubnetId", subnet), ("InstanceType", "t3.micro")])
        let instance = try XCTUnwrap(run.items("instancesSet").first?.nonEmpty("instanceId"))
        let primary = try XCTUnwrap(run.items("instancesSet").first?.items("networkInterfaceSet").first?.nonEmpty("networkInterfaceId"))
        try await ec2.setNetworkInterfaceGroups(primary, groupIds: [a, b])
        let eni2 = try unwrap(
            try await raw.query("CreateNetworkInterface", [("SubnetId", subnet), ("SecurityGroupId.1", c)]).nonEmpty("networkInterface", "networkInterfaceId"))
        _ = try await raw.query("AttachNetworkInterface", [("NetworkInterfaceId", eni2), ("InstanceId", instance), ("DeviceIndex", "1")])
        let topic = try await moto.client(.sns, CloudScope(region: "us-east-1"))
        _ = try await topic.query("CreateTopic", [("Name", "cordon-alerts")])
        let before = try await ec2.describeInstance(instance)
        XCTAssertEqual(before.networkInterfaces.count, 2)
        let eni1 = try XCTUnwrap(before.networkInterfaces.first { $0.id != eni2 }?.id)

        let setupCalls = log.all.count
        // The shipped playbook on a finding about this instance.
        let config = try PlaybookHarness.config()
        let dir = try PlaybookHarness.tempDir("conntrack")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (journal, engine) = try await PlaybookHarness.engine(dir, config, PlaybookHarness.actions(config, cloud: moto))
        let fixture = PlaybookHarness.root.appendingPathComponent("Fixtures/playbooks/guardduty-ec2-quarantine/fires-bitcoin-tool-staging-instance.json")
        _ = try await engine.process(try PlaybookHarness.findings(fixture, ids: ["i-0b2c3d4e5f6a78901": instance]))
        let incidents = await engine.index.incidents.values
        let incident = try XCTUnwrap(incidents.first)
        for step in ["evidence", "snapshot", "isolate", "notify_sns"] { XCTAssertEqual(incident.steps[step]?.status, "succeeded", "\(step): \(incident.steps[step]?.error ?? "")") }

        let isolation = try unwrap(try await ec2.findSecurityGroup(name: "cordon-quarantine", vpcId: vpc))
        let untrack = try unwrap(try await ec2.findSecurityGroup(name: "cordon-quarantine-untrack", vpcId: vpc))
        XCTAssertTrue(isolation.ingress.isEmpty && isolation.egress.isEmpty, "the isolation group allows nothing")
        let untrackRules = try await PlaybookHarness.rules(ec2, untrack.id, [:])
        XCTAssertEqual(untrackRules, ["in -1 0.0.0.0/0", "in -1 ::/0", "out -1 0.0.0.0/0", "out -1 ::/0"], "the untrack group allows all traffic")

        // The moves, in order: every interface to the allow-all group, then to the isolation group.
        let moves = log.all[setupCalls...].filter { $0.operation == "ModifyNetworkInterfaceAttribute" }.map { ($0.parameter("NetworkInterfaceId") ?? "?", $0.list("SecurityGroupId")) }
        XCTAssertEqual(moves.count, 4, "\(moves)")
        XCTAssertEqual(Set(moves.prefix(2).map(\.0)), [eni1, eni2])
        XCTAssertTrue(moves.prefix(2).allSatisfy { $0.1 == [untrack.id] }, "first the allow-all group: \(moves)")
        XCTAssertEqual(Set(moves.suffix(2).map(\.0)), [eni1, eni2])
        XCTAssertTrue(moves.suffix(2).allSatisfy { $0.1 == [isolation.id] }, "then the isolation group: \(moves)")
        let isolated = try await ec2.describeInstance(instance)
        XCTAssertTrue(isolated.networkInterfaces.allSatisfy { $0.groups.map(\.id) == [isolation.id] })
        let protected = try await ec2.terminationProtection(instance)
        XCTAssertTrue(protected)
        let outputs = try XCTUnwrap(incident.steps["isolate"]?.outputs)
        XCTAssertEqual(outputs["previous_groups"]?[eni1], .array([a, b].map(JSONValue.string)))
        XCTAssertEqual(outputs["previous_groups"]?[eni2], [.string(c)])
        let records = try await journal.records(incident: incident.id)
        let pre = try XCTUnwrap(records.first { $0.kind == RecordKind.stepSucceeded && $0.data["step"] == "isolate" }?.data["pre_state"])
        XCTAssertEqual(pre["interfaces"]?.arrayValue?.count, 2, "the previous groups are in the journal")

        // Rollback restores each interface's own groups and termination protection.
        let results = try await engine.rollback(incident: incident.id, by: "test")
        XCTAssertEqual(results.first { $0.step == "isolate" }?.status, "rolled back", "\(results.map { "\($0.step) \($0.status) \($0.detail ?? "")" })")
        let restored = try await ec2.describeInstance(instance)
        XCTAssertEqual(Set(restored.networkInterfaces.first { $0.id == eni1 }?.groups.map(\.id) ?? []), [a, b])
        XCTAssertEqual(restored.networkInterfaces.first { $0.id == eni2 }?.groups.map(\.id), [c])
        let unprotected = try await ec2.terminationProtection(instance)
        XCTAssertFalse(unprotected)
        try await journal.close()
    }

    // MARK: - Least privilege, enforced by moto

    func testTheGeneratedPolicyIsEnoughAndEveryActionInItIsNeeded() async throws {
        let server = try Moto.dedicated("iam-auth")
        let admin = moto(server)
        let scope = CloudScope(region: "us-east-1")
        let raw = try await admin.client(.ec2, scope)
        let iam = try await admin.client(.iam, scope)
        let image = try unwrap(try await raw.query("DescribeImages", [("Owner.1", "amazon")]).items("imagesSet").first?.nonEmpty("imageId"))
        let vpc = try unwrap(try await raw.query("CreateVpc", [("CidrBlock", "10.88.0.0/16")]).nonEmpty("vpc", "vpcId"))
        let subnet = try unwrap(try await raw.query("CreateSubnet", [("VpcId", vpc), ("CidrBlock", "10.88.1.0/24")]).nonEmpty("subnet", "subnetId"))
        func newInstance() async throws -> String {
            let run = try await raw.query("RunInstances", [("ImageId", image), ("MinCount", "1"), ("MaxCount", "1"), ("SubnetId", subnet), ("InstanceType", "t3.micro")])
            return try XCTUnwrap(run.items("instancesSet").first?.nonEmpty("instanceId"))
        }
        _ = try await admin.client(.sns, scope).query("CreateTopic", [("Name", "cordon-alerts")])
        _ = try await iam.query("CreateUser", [("UserName", "cordon-runner")])
        let key = try await iam.query("CreateAccessKey", [("UserName", "cordon-runner")])
        let keyId = try XCTUnwrap(key.descendant("AccessKeyId")?.text)
        let secret = try XCTUnwrap(key.descendant("SecretAccessKey")?.text)

        let config = try PlaybookHarness.config()
        let playbook = try XCTUnwrap(config.playbooks.first { $0.name == "guardduty-ec2-quarantine" })
        let policy = IAMPolicy.document(for: [playbook])
        let actions = Set(IAMPolicy.requirement(for: [playbook]).actions.keys)
        let fixture = PlaybookHarness.root.appendingPathComponent("Fixtures/playbooks/guardduty-ec2-quarantine/fires-bitcoin-tool-staging-instance.json")

        func setAuth(_ on: Bool) async throws {
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(server.port)/moto-api/reset-auth")!)
            request.httpMethod = "POST"
            request.setValue("text/plain", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data((on ? "0" : "inf").utf8)
            let (_, response) = try await URLSession.shared.data(for: request)
            XCTAssertEqual((response as? HTTPURLResponse)?.statusCode, 200)
        }

        /// Runs the playbook as cordon-runner under `document`; returns the incident.
        func run(_ document: JSONValue) async throws -> IncidentIndex.Incident {
            try await setAuth(false)
            _ = try await iam.query("PutUserPolicy", [("UserName", "cordon-runner"), ("PolicyName", "cordon"), ("PolicyDocument", JSONWriter.string(document))])
            let instance = try await newInstance()
            try await setAuth(true)
            defer { Task { try? await setAuth(false) } }
            let runner = moto(server, env: ["AWS_ACCESS_KEY_ID": keyId, "AWS_SECRET_ACCESS_KEY": secret])
            let dir = try PlaybookHarness.tempDir("iam")
            defer { try? FileManager.default.removeItem(at: dir) }
            let (journal, engine) = try await PlaybookHarness.engine(dir, config, PlaybookHarness.actions(config, cloud: runner))
            _ = try await engine.process(try PlaybookHarness.findings(fixture, ids: ["i-0b2c3d4e5f6a78901": instance]))
            try await setAuth(false)
            try await journal.close()
            let incidents = await engine.index.incidents.values
            return try XCTUnwrap(incidents.first)
        }

        let allowed = try await run(policy)
        for step in ["evidence", "snapshot", "isolate", "notify_sns"] {
            XCTAssertEqual(allowed.steps[step]?.status, "succeeded", "\(step) with the generated policy: \(allowed.steps[step]?.error ?? "")")
        }

        // Without one action, the step that needs it fails and names it.
        let missing = "ec2:ModifyNetworkInterfaceAttribute"
        XCTAssertTrue(actions.contains(missing))
        var reduced = policy
        if case .object(var o) = reduced, case .array(var statements) = o["Statement"] {
            statements = statements.map { s in
                guard case .object(var so) = s, case .array(let a) = so["Action"] else { return s }
                so["Action"] = .array(a.filter { $0.stringValue != missing })
                return .object(so)
            }
            o["Statement"] = .array(statements)
            reduced = .object(o)
        }
        XCTAssertNotEqual(reduced, policy)
        let denied = try await run(reduced)
        XCTAssertEqual(denied.steps["isolate"]?.status, "failed")
        XCTAssertTrue(denied.steps["isolate"]?.error?.contains(missing) == true, denied.steps["isolate"]?.error ?? "no error")
        XCTAssertEqual(denied.steps["snapshot"]?.status, "succeeded")
    }

    // MARK: - The policy keeps Cordon from raising its own privileges

    /// The text of every element with this name, depth first.
    func named(_ name: String, in tree: XMLTree) -> [String] {
        (tree.name == name ? [tree.text] : []) + tree.children.flatMap { named(name, in: $0) }
    }

    /// Turns moto's IAM enforcement on or off.
    func setAuth(_ server: PythonServer, _ on: Bool) async throws {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(server.port)/moto-api/reset-auth")!)
        request.httpMethod = "POST"
        request.setValue("text/plain", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data((on ? "0" : "inf").utf8)
        let (_, response) = try await URLSession.shared.data(for: request)
        XCTAssertEqual((response as? HTTPURLResponse)?.statusCode, 200)
    }

    /// Cordon runs as the IAM user cordon-runner with the printed policy (a managed
    /// policy) and assumes CordonResponder, which has the same policy without the
    /// AssumeRole statement. Every shipped playbook runs as it does on the simulated
    /// cloud; then each way of raising its own privileges is refused by moto, as the
    /// runner and as the responder, while a write the docs say stays possible succeeds.
    func testTheShippedPlaybooksRunUnderAPolicyThatKeepsCordonFromRaisingItsPrivileges() async throws {
        let inventory = try inventory()
        let server = try Moto.dedicated("iam-escalation")
        let ids = try await MotoSeeder.seed(inventory, port: server.port)
        let account = "123456789012"
        let scope = CloudScope(region: "us-east-1")
        let iam = try await moto(server).client(.iam, scope)
        let template = "arn:aws:iam::{account}:role/CordonResponder"
        let runnerArn = "arn:aws:iam::\(account):user/cordon-runner"
        let config = try PlaybookHarness.config()
        let policy = IAMPolicy.document(for: config.playbooks, roleArnTemplate: template, principalArns: [runnerArn])
        let statements = policy["Statement"]?.arrayValue ?? []
        let responderPolicy: JSONValue = ["Version": "2012-10-17", "Statement": .array(statements.filter { $0["Sid"] != "CordonAssumeResponderRole" })]
        XCTAssertEqual(responderPolicy["Statement"]?.arrayValue?.count, statements.count - 1)
        func trusting(_ principal: String) -> String {
            JSONWriter.string(["Version": "2012-10-17", "Statement": [["Effect": "Allow", "Principal": ["AWS": .string(principal)], "Action": "sts:AssumeRole"]]])
        }
        let allowAll = JSONWriter.string(["Version": "2012-10-17", "Statement": [["Effect": "Allow", "Action": "*", "Resource": "*"]]])

        _ = try await iam.query("CreateUser", [("UserName", "cordon-runner")])
        let key = try await iam.query("CreateAccessKey", [("UserName", "cordon-runner")])
        let keyId = try XCTUnwrap(key.descendant("AccessKeyId")?.text)
        let secret = try XCTUnwrap(key.descendant("SecretAccessKey")?.text)
        let created = try await iam.query("CreatePolicy", [("PolicyName", "cordon-runner"), ("PolicyDocument", JSONWriter.string(policy))])
        let policyArn = try XCTUnwrap(created.descendant("Arn")?.text)
        _ = try await iam.query("AttachUserPolicy", [("UserName", "cordon-runner"), ("PolicyArn", policyArn)])
        _ = try await iam.query("CreateRole", [("RoleName", "CordonResponder"), ("AssumeRolePolicyDocument", trusting(runnerArn))])
        _ = try await iam.query("PutRolePolicy", [("RoleName", "CordonResponder"), ("PolicyName", "cordon-responder"), ("PolicyDocument", JSONWriter.string(responderPolicy))])
        _ = try await iam.query("CreateRole", [("RoleName", "BuildRole"), ("AssumeRolePolicyDocument", trusting(runnerArn))])
        _ = try await iam.query("CreateRole", [("RoleName", "AppRole"), ("AssumeRolePolicyDocument", trusting("arn:aws:iam::\(account):root"))])
        _ = try await iam.query("CreateGroup", [("GroupName", "admins")])

        try await setAuth(server, true)
        do {
            let credentials = ["AWS_ACCESS_KEY_ID": keyId, "AWS_SECRET_ACCESS_KEY": secret]
            let runner = AWSCloud(options: AWSCloudOptions(environment: Moto.environment(port: server.port, credentials), roleArnTemplate: template), http: Self.http)
            let index = try await PlaybookHarness.runAll(runner, ids: ids)
            let expected = try await PlaybookHarness.runAll(SimulatedCloud(inventory: inventory))
            XCTAssertEqual(outcomes(index), outcomes(expected))
            XCTAssertFalse(outcomes(index).contains { $0.contains(": failed") }, outcomes(index).joined(separator: "\n"))
            XCTAssertGreaterThanOrEqual(index.incidents.count, 6, "every shipped playbook fired")

            let asRunner = try await AWSCloud(options: AWSCloudOptions(environment: Moto.environment(port: server.port, credentials)), http: Self.http).client(.iam, scope)
            let asResponder = try await runner.client(.iam, CloudScope(account: account, region: "us-east-1"))
            let sts = try await AWSCloud(options: AWSCloudOptions(environment: Moto.environment(port: server.port, credentials)), http: Self.http).client(.sts, scope)
            let attempts: [(String, AWSServiceClient, String, [(String, String)])] = [
                ("runner", asRunner, "PutUserPolicy", [("UserName", "cordon-runner"), ("PolicyName", "x"), ("PolicyDocument", allowAll)]),
                ("runner", asRunner, "AttachUserPolicy", [("UserName", "cordon-runner"), ("PolicyArn", "arn:aws:iam::aws:policy/AdministratorAccess")]),
                ("runner", asRunner, "CreateAccessKey", [("UserName", "cordon-runner")]),
                ("runner", asRunner, "UpdateAccessKey", [("UserName", "cordon-runner"), ("AccessKeyId", keyId), ("Status", "Active")]),
                ("runner", asRunner, "AddUserToGroup", [("UserName", "cordon-runner"), ("GroupName", "admins")]),
                ("responder", asResponder, "PutUserPolicy", [("UserName", "cordon-runner"), ("PolicyName", "x"), ("PolicyDocument", allowAll)]),
                ("responder", asResponder, "PutRolePolicy", [("RoleName", "CordonResponder"), ("PolicyName", "x"), ("PolicyDocument", allowAll)]),
                ("responder", asResponder, "DeleteRolePolicy", [("RoleName", "CordonResponder"), ("PolicyName", "cordon-responder")]),
                ("responder", asResponder, "AttachRolePolicy", [("RoleName", "CordonResponder"), ("PolicyArn", "arn:aws:iam::aws:policy/AdministratorAccess")]),
                ("responder", asResponder, "UpdateAssumeRolePolicy", [("RoleName", "CordonResponder"), ("PolicyDocument", trusting("*"))]),
                ("responder", asResponder, "AttachRolePolicy", [("RoleName", "AppRole"), ("PolicyArn", "arn:aws:iam::aws:policy/AdministratorAccess")]),
                ("responder", asResponder, "CreateAccessKey", [("UserName", "alice.dev")]),
                ("runner", sts, "AssumeRole", [("RoleArn", "arn:aws:iam::\(account):role/BuildRole"), ("RoleSessionName", "x")]),
            ]
            for (who, client, action, parameters) in attempts {
                do {
                    _ = try await client.query(action, parameters)
                    XCTFail("\(who) \(action) \(parameters.first?.1 ?? ""): allowed")
                } catch {
                    XCTAssertEqual(error.code, "AccessDenied", "\(who) \(action): \(error)")
                }
            }
            // What the docs say stays possible: an inline policy on another role.
            _ = try await asResponder.query("PutRolePolicy", [("RoleName", "AppRole"), ("PolicyName", "x"), ("PolicyDocument", allowAll)])
            // The runner's policy is intact, and was never replaced.
            try await setAuth(server, false)
            let attached = try await iam.query("ListAttachedUserPolicies", [("UserName", "cordon-runner")])
            XCTAssertEqual(named("PolicyArn", in: attached), [policyArn])
            let inline = try await iam.query("ListUserPolicies", [("UserName", "cordon-runner")])
            XCTAssertEqual(inline.items("ListUserPoliciesResult", "PolicyNames").map(\.text), [])
        } catch {
            try? await setAuth(server, false)
            throw error
        }
    }
}
