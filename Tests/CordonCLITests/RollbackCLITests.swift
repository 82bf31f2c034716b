import CordonCore
import CordonTestSupport
import Foundation
import Testing

/// `cordon rollback` restores what a step changed even when the step failed after its
/// first change. On moto, an instance launched with security groups keeps them beside any
/// set later (moto appends), so isolation changes the instance (tags, the quarantine
/// group, termination protection) and then fails its final check: the repro of the issue.
@Suite struct RollbackCLITests {
    static let playbook = """
        name: isolate-only
        version: 1
        description: Isolation alone, tried once.
        trigger: {source: [aws.guardduty], detail: {resource: {resourceType: [Instance]}}}
        incident: {key: "{{ detail.resource.instanceDetails.instanceId }}"}
        steps:
          - id: isolate
            action: aws.ec2.isolate_instance
            with: {instance_id: "{{ detail.resource.instanceDetails.instanceId }}", isolation_group: cordon-quarantine}
            retry: {attempts: 1}
        """

    /// The instance's interfaces' group ids and its termination protection, on moto.
    static func state(_ instance: String, _ moto: PythonServer) async throws -> (groups: [String], protected: Bool) {
        let out = try await OutbreakCLITests.python(
            OutbreakCLITests.client + """

                i = ec2.describe_instances(InstanceIds=["\(instance)"])["Reservations"][0]["Instances"][0]
                groups = sorted(g["GroupId"] for e in i["NetworkInterfaces"] for g in e["Groups"])
                protected = ec2.describe_instance_attribute(InstanceId="\(instance)", Attribute="disableApiTermination")["DisableApiTermination"]["Value"]
                print(json.dumps({"groups": groups, "protected": protected}))
                """, moto)
        let o = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        return (o?["groups"] as? [String] ?? [], o?["protected"] as? Bool ?? false)
    }

    @Test func anIsolationThatFailedAfterItsFirstChangeIsRolledBack() async throws {
        let moto = try await offPool { try Moto.dedicated("rollback") }
        defer { moto.stop() }
        let seeded = try await OutbreakCLITests.python(
            OutbreakCLITests.client + """

                vpc = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
                subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.50.1.0/24")["Subnet"]["SubnetId"]
                web = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
                i = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnet, SecurityGroupIds=[web])["Instances"][0]
                print(json.dumps({"instance": i["InstanceId"], "web": web}))
                """, moto)
        let ids = try #require(try JSONSerialization.jsonObject(with: Data(seeded.utf8)) as? [String: String])
        let instance = try #require(ids["instance"]), web = try #require(ids["web"])
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-rollback-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let playbooks = root.appendingPathComponent("Playbooks").path, data = root.appendingPathComponent("data").path
        try FileManager.default.createDirectory(atPath: playbooks, withIntermediateDirectories: true)
        try Self.playbook.write(toFile: playbooks + "/p.yaml", atomically: true, encoding: .utf8)
        let finding = try String(
            contentsOf: CLI.packageRoot.appendingPathComponent("Fixtures/playbooks/guardduty-ec2-quarantine/fires-bitcoin-tool-staging-instance.json"), encoding: .utf8
        ).replacingOccurrences(of: "i-0b2c3d4e5f6a78901", with: instance)
        let file = try CLI.temporaryFile(finding)
        let env = DrillCLITests.environment(moto)

        let run = try await CLI.run(["process", "--cloud", "aws", "--data-dir", data, "--playbooks", playbooks, file], environment: env)
        #expect(run.status == 1, "\(run.stdout)\(run.stderr)")
        #expect(run.stdout.contains("failed            isolate"), "\(run.stdout)")
        #expect(run.stdout.contains("IsolationNotVerified"), "\(run.stdout)")
        let changed = try await Self.state(instance, moto)
        #expect(changed.groups.count > 1 && changed.protected, "the failed step changed the instance: \(changed)")
        let incident = try #require(run.stdout.split(separator: "\n").dropFirst().first?.split(separator: " ").first.map(String.init))

        let rollback = try await CLI.run(["rollback", incident, "--cloud", "aws", "--data-dir", data, "--playbooks", playbooks], environment: env)
        #expect(rollback.status == 0, "\(rollback.stdout)\(rollback.stderr)")
        #expect(rollback.stdout.contains("rolled back"), "\(rollback.stdout)")
        let restored = try await Self.state(instance, moto)
        #expect(restored.groups == [web], "\(restored)")
        #expect(!restored.protected)
        // Again: nothing more to do.
        let again = try await CLI.run(["rollback", incident, "--cloud", "aws", "--data-dir", data, "--playbooks", playbooks], environment: env)
        #expect(again.stdout.contains("already rolled back"), "\(again.stdout)")
    }
}
