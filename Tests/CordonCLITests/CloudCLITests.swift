import Foundation
import Testing

/// `--cloud simulated` across commands, `--inventory` errors and `cordon iam-policy`.
@Suite struct CloudCLITests {
    static let fixture = "Fixtures/playbooks/guardduty-ec2-quarantine/fires-bitcoin-tool-staging-instance.json"

    func groups(_ dataDir: String, _ instance: String) throws -> [String] {
        let data = try Data(contentsOf: URL(fileURLWithPath: dataDir + "/simulated-cloud.json"))
        let state = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let world = state["world"] as? [String: Any]
        let accounts = world?["accounts"] as? [String: Any]
        let account = accounts?["123456789012"] as? [String: Any]
        let regions = account?["regions"] as? [String: Any]
        let region = regions?["us-east-1"] as? [String: Any]
        let instances = region?["instances"] as? [String: Any]
        let i = instances?[instance] as? [String: Any]
        let enis = i?["networkInterfaces"] as? [[String: Any]]
        return (enis?.first?["groupIds"] as? [String]) ?? []
    }

    @Test func theSimulatedCloudIsKeptBetweenProcessAndRollback() async throws {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-cloud-cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let run = try await CLI.run(["process", "--cloud", "simulated", "--data-dir", dataDir, Self.fixture])
        #expect(run.stdout.contains("succeeded         isolate (aws.ec2.isolate_instance)"), "\(run.stdout)\(run.stderr)")
        #expect(run.stdout.contains("succeeded         snapshot (aws.ec2.snapshot_volumes)"))
        let isolated = try groups(dataDir, "i-0b2c3d4e5f6a78901")
        #expect(isolated.count == 1 && isolated != ["sg-0f9e8d7c6b5a49382"], "\(isolated)")
        let incident = try #require(run.stdout.split(separator: "\n").dropFirst().first?.split(separator: " ").first.map(String.init))
        let rollback = try await CLI.run(["rollback", incident, "--cloud", "simulated", "--data-dir", dataDir])
        #expect(rollback.status == 0, "\(rollback.stdout)\(rollback.stderr)")
        #expect(rollback.stdout.contains("rolled back"))
        #expect(try groups(dataDir, "i-0b2c3d4e5f6a78901") == ["sg-0f9e8d7c6b5a49382"])
        // Another inventory cannot silently replace the kept state.
        let other = try CLI.temporaryFile("accounts:\n  \"123456789012\": {}\n", suffix: ".yaml")
        let refused = try await CLI.run(["process", "--cloud", "simulated", "--inventory", other, "--data-dir", dataDir, Self.fixture])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("was seeded from"), "\(refused.stderr)")
    }

    @Test func badInventoriesAndOptionsAreClearErrors() async throws {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-cloud-cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let missing = try await CLI.run(["process", "--cloud", "simulated", "--inventory", "/nonexistent.yaml", "--data-dir", dataDir, Self.fixture])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("cannot read /nonexistent.yaml"))
        let bad = try CLI.temporaryFile("accounts:\n  \"123456789012\":\n    regions:\n      us-east-1:\n        instances: [{id: nope}]\n", suffix: ".yaml")
        let invalid = try await CLI.run(["process", "--cloud", "simulated", "--inventory", bad, "--data-dir", dataDir, Self.fixture])
        #expect(invalid.status == 2)
        #expect(invalid.stderr.contains("\(bad):5:"), "\(invalid.stderr)")
        let awsInventory = try await CLI.run(["process", "--inventory", bad, "--data-dir", dataDir, Self.fixture])
        #expect(awsInventory.status == 2)
        #expect(awsInventory.stderr.contains("--inventory seeds the simulated cloud"))
        let template = try await CLI.run(["process", "--assume-role-arn", "arn:aws:iam::1:role/X", "--data-dir", dataDir, Self.fixture])
        #expect(template.status == 2)
        #expect(template.stderr.contains("{account}"))
    }

    @Test func iamPolicyPrintsAValidDocument() async throws {
        let result = try await CLI.run(["iam-policy", "Playbooks/guardduty-ec2-quarantine.yaml", "--assume-role-arn", "arn:aws:iam::{account}:role/CordonResponder"])
        #expect(result.status == 0, "\(result.stderr)")
        let policy = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(policy["Version"] as? String == "2012-10-17")
        let statements = policy["Statement"] as? [[String: Any]] ?? []
        #expect(
            statements.map { $0["Sid"] as? String ?? "" }
                == ["CordonEC2", "CordonSNS", "CordonAssumeResponderRole", "CordonDenyChangesToItsUser", "CordonDenyChangesToItsRoles", "CordonDenyPrivilegeEscalation", "CordonDenyOtherRoles"])
        #expect((statements[0]["Action"] as? [String])?.contains("ec2:ModifyNetworkInterfaceAttribute") == true)
        #expect(result.stderr.contains("--principal-arn"), "without it, a note says what is not protected")

        // The role Cordon runs as is denied any change to itself; a session ARN is refused with the role's.
        let runner = "arn:aws:iam::123456789012:role/CordonRunner"
        let withRole = try await CLI.run(["iam-policy", "Playbooks/guardduty-ec2-quarantine.yaml", "--principal-arn", runner])
        #expect(withRole.status == 0, "\(withRole.stderr)")
        #expect(withRole.stderr.isEmpty, "\(withRole.stderr)")
        let denied = try #require(try JSONSerialization.jsonObject(with: Data(withRole.stdout.utf8)) as? [String: Any])
        let own = (denied["Statement"] as? [[String: Any]] ?? []).first { $0["Sid"] as? String == "CordonDenyChangesToItsRoles" }
        #expect(own?["Resource"] as? [String] == [runner])
        let session = try await CLI.run(["iam-policy", "Playbooks/guardduty-ec2-quarantine.yaml", "--principal-arn", "arn:aws:sts::123456789012:assumed-role/CordonRunner/i-0abc"])
        #expect(session.status == 2)
        #expect(session.stderr.contains("arn:aws:iam::123456789012:role/CordonRunner"), "\(session.stderr)")
        let none = try await CLI.run(["iam-policy", "Playbooks/cloudtrail-root-console-login.yaml"])
        #expect(none.status == 1)
        #expect(none.stderr.contains("need no IAM policy"))
    }
}
