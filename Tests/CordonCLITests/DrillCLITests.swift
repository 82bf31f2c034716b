import CordonTestSupport
import Foundation
import Testing

@Suite struct DrillCLITests {
    func temp() -> String { FileManager.default.temporaryDirectory.appendingPathComponent("cordon-drill-cli-\(UUID().uuidString)").path }

    @Test func theFirstShippedDrillPassesAndItsJournalVerifies() async throws {
        let dir = temp()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try await CLI.run(["drill", "Fixtures/drills/01-compromised-ec2-instance.yaml", "--data-dir", dir])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("PASSED: 4/4 expectations met"))
        #expect(r.stdout.contains("no playbook matched finding"))
        let verify = try await CLI.run(["journal", "verify", "--data-dir", dir])
        #expect(verify.status == 0, "\(verify.stdout)\n\(verify.stderr)")
        let incidents = try await CLI.run(["incidents", "--data-dir", dir])
        #expect(incidents.stdout.contains("guardduty-ec2-quarantine"))
        for format in ["md", "html", "json"] {
            let f = try await CLI.run(["drill", "Fixtures/drills/01-compromised-ec2-instance.yaml", "--data-dir", dir, "--format", format])
            #expect(f.status == 0, "\(format): \(f.stderr)")
        }
    }

    /// A scenario given by a relative path whose inventory and findings climb out of its
    /// directory (`drills/x.yaml` naming `../inventory/…`) finds them from the working
    /// directory (the working directory was once lost on the way).
    @Test func aRelativeScenarioPathResolvesItsFilesFromTheWorkingDirectory() async throws {
        let root = URL(fileURLWithPath: temp())
        defer { try? FileManager.default.removeItem(at: root) }
        for sub in ["drills", "inventory"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        let fixtures = CLI.packageRoot.appendingPathComponent("Fixtures")
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("inventory/example.yaml"), to: root.appendingPathComponent("inventory/example.yaml"))
        // The scenario's findings are sample files of the shipped playbooks (../playbooks/…).
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("playbooks"), to: root.appendingPathComponent("playbooks"))
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("drills/01-compromised-ec2-instance.yaml"), to: root.appendingPathComponent("drills/x.yaml"))
        let r = try await CLI.run(
            [
                "drill", "drills/x.yaml", "--data-dir", root.appendingPathComponent("data").path,
                "--playbooks", CLI.packageRoot.appendingPathComponent("Playbooks").path,
                "--integrations", CLI.packageRoot.appendingPathComponent("Integrations").path,
            ], directory: root)
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("PASSED: 4/4 expectations met"), "\(r.stdout)")
    }

    @Test func aMissedExpectationExitsOneWithEvidence() async throws {
        let dir = temp()
        let scenario = CLI.packageRoot.appendingPathComponent("Fixtures/drills/.cli-\(UUID().uuidString).yaml").path
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: scenario)
        }
        try Data("""
            name: missed
            description: an expectation that cannot hold
            narrative: nobody approves, so isolation waits for the 15-minute timeout
            inventory: ../inventory/example.yaml
            timeline:
              - at: 0s
                finding: {file: ../playbooks/guardduty-ec2-quarantine/fires-backdoor-cc-prod-instance.json}
            expect:
              - incident: {playbook: guardduty-ec2-quarantine, contained_within: 5m}
            """.utf8).write(to: URL(fileURLWithPath: scenario))
        let r = try await CLI.run(["drill", scenario, "--data-dir", dir])
        #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("[MISSED]"))
        #expect(r.stdout.contains("contained after 15 min, more than 5m"))
        let json = try await CLI.run(["drill", scenario, "--data-dir", dir, "--format", "json"])
        #expect(json.status == 1)
        #expect(json.stdout.contains("\"passed\": false"))
    }

    @Test func anInvalidScenarioExitsTwoWithPositions() async throws {
        let scenario = CLI.packageRoot.appendingPathComponent("Fixtures/drills/.cli-\(UUID().uuidString).yaml").path
        defer { try? FileManager.default.removeItem(atPath: scenario) }
        try Data("""
            name: bad
            description: x
            narrative: x
            inventory: ../inventory/example.yaml
            timeline:
              - at: soon
                finding: {file: x.json}
            """.utf8).write(to: URL(fileURLWithPath: scenario))
        let r = try await CLI.run(["drill", scenario])
        #expect(r.status == 2)
        #expect(r.stderr.contains("\(scenario):6:9: timeline[0].at: \"soon\" is not a duration"), "\(r.stderr)")
        let v = try await CLI.run(["validate", scenario])
        #expect(v.status == 1)
        #expect(v.stdout.contains("\(scenario):6:9:"), "\(v.stdout)")
        let shipped = try await CLI.run(["validate", "Fixtures/drills"])
        #expect(shipped.status == 0, "\(shipped.stdout)\n\(shipped.stderr)")
    }

    @Test func cloudAwsIsOnlyForALocalEndpoint() async throws {
        let r = try await CLI.run(["drill", "Fixtures/drills/02-leaked-access-key-tor.yaml", "--cloud", "aws", "--data-dir", temp()], environment: ["AWS_ENDPOINT_URL": ""])
        #expect(r.status == 2)
        #expect(r.stderr.contains("only against a local AWS endpoint"), "\(r.stderr)")
        #expect(r.stderr.contains("AWS_ENDPOINT_URL is not set"), "\(r.stderr)")
        let remote = try await CLI.run(
            ["drill", "Fixtures/drills/02-leaked-access-key-tor.yaml", "--cloud", "aws", "--data-dir", temp()],
            environment: ["AWS_ENDPOINT_URL": "https://ec2.us-east-1.amazonaws.com"])
        #expect(remote.status == 2)
        #expect(remote.stderr.contains("AWS_ENDPOINT_URL is https://ec2.us-east-1.amazonaws.com"), "\(remote.stderr)")
        // A per-service endpoint elsewhere would send part of the drill there.
        let split = try await CLI.run(
            ["drill", "Fixtures/drills/02-leaked-access-key-tor.yaml", "--cloud", "aws", "--data-dir", temp()],
            environment: ["AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "AWS_ENDPOINT_URL_IAM": "https://iam.amazonaws.com"])
        #expect(split.status == 2)
        #expect(split.stderr.contains("AWS_ENDPOINT_URL_IAM is https://iam.amazonaws.com"), "\(split.stderr)")
    }

    @Test func cloudAwsSaysWhenTheEndpointIsUnreachable() async throws {
        let dir = temp()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try await CLI.run(
            ["drill", "Fixtures/drills/02-leaked-access-key-tor.yaml", "--cloud", "aws", "--data-dir", dir],
            environment: ["AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"])
        #expect(r.status == 2, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stderr.contains("cannot reach the AWS endpoint http://127.0.0.1:1"), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    /// The expectations of a JSON report: `[(expectation, met)]`.
    func expectations(_ json: String) throws -> [(String, Bool)] {
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let list = try #require(report["expectations"] as? [[String: Any]])
        return list.map { (($0["expectation"] as? String) ?? "?", ($0["met"] as? Bool) ?? false) }
    }

    /// What `cordon` needs to reach moto, with dummy credentials; every other AWS
    /// endpoint variable cleared.
    static func environment(_ moto: PythonServer) -> [String: String] {
        var env = ["AWS_ENDPOINT_URL": moto.endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"]
        for service in ["EC2", "IAM", "STS", "SNS", "S3", "CLOUDTRAIL", "SQS"] { env["AWS_ENDPOINT_URL_\(service)"] = "" }
        for name in ["AWS_SESSION_TOKEN", "AWS_PROFILE"] { env[name] = "" }
        return env
    }

    /// `cordon drill --cloud aws` against a moto_server of its own: the inventory is
    /// seeded there, the drill runs on moto's ids and its expectations come out as in
    /// the simulated run.
    @Test func theFirstShippedDrillOnMotoMeetsTheSimulatedRunsExpectations() async throws {
        let moto = try await offPool { try Moto.dedicated("cli") }
        defer { moto.stop() }
        let simDir = temp(), awsDir = temp()
        defer {
            try? FileManager.default.removeItem(atPath: simDir)
            try? FileManager.default.removeItem(atPath: awsDir)
        }
        let scenario = "Fixtures/drills/01-compromised-ec2-instance.yaml"
        let sim = try await CLI.run(["drill", scenario, "--data-dir", simDir, "--format", "json"])
        #expect(sim.status == 0, "\(sim.stderr)")
        let aws = try await CLI.run(["drill", scenario, "--cloud", "aws", "--data-dir", awsDir, "--format", "json"], environment: Self.environment(moto))
        #expect(aws.status == 0, "\(aws.stdout)\n\(aws.stderr)")
        #expect(aws.stderr.contains("cordon: seeded \(moto.endpoint) (account 123456789012) with the inventory of compromised-ec2-instance"), "\(aws.stderr)")
        #expect(aws.stdout.contains("\"cloud\": \"aws (\(moto.endpoint))\""), "the report says where it ran")
        #expect(sim.stdout.contains("\"cloud\": \"simulated\""))
        let simulated = try expectations(sim.stdout)
        let onMoto = try expectations(aws.stdout)
        #expect(simulated.count == 4)
        #expect(onMoto.map(\.1) == simulated.map(\.1), "\(onMoto) vs \(simulated)")
        #expect(onMoto.allSatisfy { $0.1 })
        let verify = try await CLI.run(["journal", "verify", "--data-dir", awsDir])
        #expect(verify.status == 0, "\(verify.stdout)\n\(verify.stderr)")

        // The same endpoint again: its inventory is already there, and the error says so.
        let again = try await CLI.run(["drill", scenario, "--cloud", "aws", "--data-dir", awsDir], environment: Self.environment(moto))
        #expect(again.status == 2, "\(again.stdout)\n\(again.stderr)")
        #expect(again.stderr.contains("failed while creating"), "\(again.stderr)")
        #expect(again.stderr.contains("moto-api/reset"), "\(again.stderr)")
    }
}
