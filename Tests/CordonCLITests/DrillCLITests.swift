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
        let r = try await CLI.run(["drill", "Fixtures/drills/02-leaked-access-key-tor.yaml", "--cloud", "aws", "--data-dir", temp()])
        #expect(r.status == 2)
        #expect(r.stderr.contains("only against a local AWS endpoint"), "\(r.stderr)")
    }
}
