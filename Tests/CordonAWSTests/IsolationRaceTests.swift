import CordonCore
import Foundation
import Synchronization
import Testing

@testable import CordonAWS
@testable import CordonCloud
@testable import CordonSimulatedCloud

/// Isolations in one VPC that prepare the shared quarantine group at the same moment:
/// each reads the new group with its default egress rule before any removes it, so all
/// but one find the rule already gone. Every isolation must still succeed, and the group
/// must end with no rule. (`OutbreakCLITests` does the same with 40 instances on moto,
/// where the interleaving is left to chance; here it is forced.)
@Suite struct IsolationRaceTests {
    static let inventory = """
        accounts:
          "123456789012":
            regions:
              us-east-1:
                security_groups:
                  - {id: sg-0ccc0000000000001, name: app, vpc: vpc-03, egress: [{protocol: all, cidr: 0.0.0.0/0}]}
                instances:
        \((1...4).map { "          - {id: i-0ccc000000000000\($0), vpc: vpc-03, network_interfaces: [{id: eni-0ccc000000000000\($0), groups: [sg-0ccc0000000000001]}]}" }.joined(separator: "\n"))
        """

    @Test func isolationsThatPrepareTheNewGroupTogetherAllSucceed() async throws {
        let simulated = SimulatedCloud(inventory: try Inventory.parse(Self.inventory, file: "race.yaml"), seed: 0, now: { Date() }, sleep: { _ in })
        let parties = 4
        let cloud = RendezvousCloud(base: simulated, parties: parties)
        let action = try #require(AWSActions.all(cloud: cloud, defaultRegion: "us-east-1")["aws.ec2.isolate_instance"])
        let outcomes = await withTaskGroup(of: (String, Result<ActionOutcome, ActionError>).self) { group in
            for n in 1...parties {
                let instance = "i-0ccc000000000000\(n)"
                let request = Fixture.request(
                    "aws.ec2.isolate_instance", ["instance_id": .string(instance), "isolation_group": "cordon-quarantine"], incident: "inc-000\(n)")
                group.addTask {
                    do throws(ActionError) { return (instance, .success(try await action.run(request))) } catch { return (instance, .failure(error)) }
                }
            }
            var all: [(String, Result<ActionOutcome, ActionError>)] = []
            for await outcome in group { all.append(outcome) }
            return all
        }
        #expect(cloud.rendezvousMet, "the isolations did not read the group together; the test proves nothing")
        for (instance, result) in outcomes {
            if case .failure(let error) = result { Issue.record("\(instance): \(error)") }
        }
        // At the target: one group, no rules, every interface in it alone.
        let ec2 = try await simulated.ec2(CloudScope(account: "123456789012", region: "us-east-1"))
        let group = try #require(try await ec2.findSecurityGroup(name: "cordon-quarantine", vpcId: "vpc-03"))
        #expect(group.ingress.isEmpty && group.egress.isEmpty, "\(group)")
        for n in 1...parties {
            let instance = try await ec2.describeInstance("i-0ccc000000000000\(n)")
            #expect(instance.networkInterfaces.allSatisfy { $0.groups.map(\.id) == [group.id] }, "\(instance.id): \(instance.networkInterfaces)")
        }
    }
}

/// A cloud whose EC2 holds the first `parties` reads of a security group until all of
/// them have been made (or a second has passed): they all answer with the same state.
final class RendezvousCloud: Cloud {
    let base: any Cloud
    let parties: Int
    private let state = Mutex<(arrived: Int, met: Bool)>((0, false))

    init(base: any Cloud, parties: Int) {
        self.base = base
        self.parties = parties
    }

    var kind: String { base.kind }
    var rendezvousMet: Bool { state.withLock { $0.met } }

    /// Waits for the others; returns at once after the first `parties` reads.
    func meet() async {
        let mine = state.withLock { s -> Int in
            s.arrived += 1
            return s.arrived
        }
        guard mine <= parties else { return }
        let deadline = ContinuousClock.now + .seconds(1)
        while state.withLock({ $0.arrived < parties }) && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(2)) }
        if state.withLock({ $0.arrived >= parties }) { state.withLock { $0.met = true } }
    }

    func ec2(_ scope: CloudScope) async throws(ActionError) -> any EC2API { RendezvousEC2(base: try await base.ec2(scope), cloud: self) }
    func iam(_ scope: CloudScope) async throws(ActionError) -> any IAMAPI { try await base.iam(scope) }
    func s3(_ scope: CloudScope) async throws(ActionError) -> any S3API { try await base.s3(scope) }
    func cloudTrail(_ scope: CloudScope) async throws(ActionError) -> any CloudTrailAPI { try await base.cloudTrail(scope) }
    func sns(_ scope: CloudScope) async throws(ActionError) -> any SNSAPI { try await base.sns(scope) }
}

struct RendezvousEC2: EC2API {
    let base: any EC2API
    let cloud: RendezvousCloud

    func describeSecurityGroups(ids: [String]) async throws(ActionError) -> [SecurityGroup] {
        // Read, then wait: every party returns what it read before any of them acts on it.
        let groups = try await base.describeSecurityGroups(ids: ids)
        await cloud.meet()
        return groups
    }

    func describeInstance(_ instanceId: String) async throws(ActionError) -> EC2Instance { try await base.describeInstance(instanceId) }
    func findSecurityGroup(name: String, vpcId: String?) async throws(ActionError) -> SecurityGroup? { try await base.findSecurityGroup(name: name, vpcId: vpcId) }
    func createSecurityGroup(name: String, description: String, vpcId: String?, tags: [CordonCloud.Tag]) async throws(ActionError) -> String {
        try await base.createSecurityGroup(name: name, description: description, vpcId: vpcId, tags: tags)
    }
    func authorizeIngress(groupId: String, permissions: [IpPermission]) async throws(ActionError) { try await base.authorizeIngress(groupId: groupId, permissions: permissions) }
    func revokeIngress(groupId: String, permissions: [IpPermission]) async throws(ActionError) { try await base.revokeIngress(groupId: groupId, permissions: permissions) }
    func revokeIngress(groupId: String, ruleIds: [String]) async throws(ActionError) { try await base.revokeIngress(groupId: groupId, ruleIds: ruleIds) }
    func authorizeEgress(groupId: String, permissions: [IpPermission]) async throws(ActionError) { try await base.authorizeEgress(groupId: groupId, permissions: permissions) }
    func revokeEgress(groupId: String, permissions: [IpPermission]) async throws(ActionError) { try await base.revokeEgress(groupId: groupId, permissions: permissions) }
    func describeSecurityGroupRules(groupId: String) async throws(ActionError) -> [SecurityGroupRule] { try await base.describeSecurityGroupRules(groupId: groupId) }
    func setNetworkInterfaceGroups(_ interfaceId: String, groupIds: [String]) async throws(ActionError) {
        try await base.setNetworkInterfaceGroups(interfaceId, groupIds: groupIds)
    }
    func terminationProtection(_ instanceId: String) async throws(ActionError) -> Bool { try await base.terminationProtection(instanceId) }
    func setTerminationProtection(_ instanceId: String, _ enabled: Bool) async throws(ActionError) { try await base.setTerminationProtection(instanceId, enabled) }
    func createTags(resourceIds: [String], tags: [CordonCloud.Tag]) async throws(ActionError) { try await base.createTags(resourceIds: resourceIds, tags: tags) }
    func describeVolumes(ids: [String]) async throws(ActionError) -> [Volume] { try await base.describeVolumes(ids: ids) }
    func describeSnapshots(tagKey: String, tagValue: String) async throws(ActionError) -> [Snapshot] { try await base.describeSnapshots(tagKey: tagKey, tagValue: tagValue) }
    func createSnapshot(volumeId: String, description: String, tags: [CordonCloud.Tag]) async throws(ActionError) -> Snapshot {
        try await base.createSnapshot(volumeId: volumeId, description: description, tags: tags)
    }
}
