import CordonCore
import CordonJournal
import Foundation
import GRDB
import Testing

@Suite struct JournalCLITests {
    /// A data directory with one incident of three records, written through the library.
    func dataDirectory() async throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-cli-\(UUID().uuidString)").path
        let journal = try SQLiteJournal(directory: DataDirectory(path))
        let evidence = try journal.evidence.put(Array("{}".utf8), name: "finding")
        _ = try await journal.append([
            NewRecord(incident: "inc-1", kind: RecordKind.incidentOpened, actor: "cordon/test", data: ["playbook": "p", "title": "T"]),
            NewRecord(incident: "inc-1", kind: RecordKind.stepSucceeded, actor: "cordon/test", data: ["step": "isolate", "action": "aws.ec2.isolate_instance", "action_kind": "containment", "evidence": [evidence.json]]),
            NewRecord(incident: "inc-1", kind: RecordKind.incidentClosed, actor: "user:alice", data: ["status": "resolved"]),
        ])
        try await journal.close()
        return path
    }

    @Test func verifyKeyTimelineAndExport() async throws {
        let dir = try await dataDirectory()
        let verify = try await CLI.run(["journal", "verify", "--data-dir", dir])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        #expect(verify.stdout.contains("journal verified: 3 record(s), 1 checkpoint(s), 1 evidence file(s)"))
        let key = try await CLI.run(["journal", "key", "--data-dir", dir])
        #expect(key.status == 0)
        #expect(key.stdout.hasPrefix("fingerprint: "))
        #expect(key.stdout.contains("-----BEGIN PUBLIC KEY-----"))
        let csv = try await CLI.run(["timeline", "inc-1", "--format", "csv", "--data-dir", dir])
        #expect(csv.status == 0)
        #expect(csv.stdout.hasPrefix("seq,time,phase,actor,what,target,outcome,evidence\r\n"))
        #expect(try await CLI.run(["timeline", "nope", "--data-dir", dir]).status == 2)
        let out = dir + "/bundle"
        let export = try await CLI.run(["export", "inc-1", "--out", out, "--data-dir", dir])
        #expect(export.status == 0, "\(export.stderr)")
        #expect(FileManager.default.fileExists(atPath: out + "/VERIFY.md"))
        #expect(try await CLI.run(["export", "inc-1", "--out", out, "--data-dir", dir]).status == 2)
    }

    @Test func verifyFailsOnTamperingAndNamesTheRecord() async throws {
        let dir = try await dataDirectory()
        let db = try DatabaseQueue(path: dir + "/journal.sqlite", configuration: .waiting)
        try await db.write { try $0.execute(sql: "UPDATE records SET canonical = replace(canonical, 'isolate', 'isolatf') WHERE seq = 2") }
        let verify = try await CLI.run(["journal", "verify", "--data-dir", dir])
        #expect(verify.status == 1)
        #expect(verify.stdout.contains("seq 2: content does not match its hash"))
        #expect(verify.stdout.contains("first bad seq: 2"))
        let json = try await CLI.run(["journal", "verify", "--data-dir", dir, "--output", "json"])
        #expect(json.stdout.contains("\"first_bad_seq\": 2"))
    }

    @Test func missingJournalIsAUsageError() async throws {
        let result = try await CLI.run(["journal", "verify", "--data-dir", "/nonexistent/cordon"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("no journal at"))
    }
}

@Suite struct ProcessCLITests {
    @Test func dryRunOfTheShippedPlaybooksOnTheirFixtures() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-process-\(UUID().uuidString)").path
        let result = try await CLI.run(["process", "--dry-run", "--data-dir", dir, "Fixtures/playbooks/guardduty-ec2-quarantine/fires-backdoor-cc-prod-instance.json", "Fixtures/playbooks/guardduty-ec2-quarantine/near-miss-backdoor-severity-5.json"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.hasPrefix("2 finding(s): 0 duplicate(s), 1 matched no playbook, 1 incident(s) (dry run: nothing was called)"))
        #expect(result.stdout.contains("planned           isolate (aws.ec2.isolate_instance)"))
        let list = try await CLI.run(["incidents", "--data-dir", dir])
        let id = String(list.stdout.prefix(while: { $0 != " " }))
        #expect(id.hasPrefix("inc-"))
        let show = try await CLI.run(["show", id, "--data-dir", dir])
        #expect(show.status == 0)
        #expect(show.stdout.contains("playbook  guardduty-ec2-quarantine v1"))
        #expect(try await CLI.run(["journal", "verify", "--data-dir", dir]).status == 0)
        // Processing the same file again is recognised as a duplicate delivery.
        let again = try await CLI.run(["process", "--dry-run", "--data-dir", dir, "Fixtures/playbooks/guardduty-ec2-quarantine/fires-backdoor-cc-prod-instance.json"])
        #expect(again.stdout.hasPrefix("1 finding(s): 1 duplicate(s)"))
    }

    @Test func withoutDryRunIntegrationStepsRunAndAMissingSecretFailsTheRun() async throws {
        // The integration actions are registered: pagerduty.trigger runs, and fails
        // because its secret is not set (the test environment has none).
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-process-\(UUID().uuidString)").path
        let result = try await CLI.run(["process", "--data-dir", dir, "Fixtures/playbooks/cloudtrail-root-console-login/fires-root-success-without-mfa.json"])
        #expect(result.status == 1)
        #expect(result.stdout.contains("pagerduty.trigger"))
        #expect(result.stdout.contains("secret PAGERDUTY_ROUTING_KEY is not set"))
    }

    @Test func badInputIsReportedAndTheRestStillRuns() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-process-\(UUID().uuidString)").path
        let bad = try CLI.temporaryFile("{oops", suffix: ".json")
        let result = try await CLI.run(["process", "--dry-run", "--data-dir", dir, bad, "Fixtures/playbooks/guardduty-ec2-quarantine/fires-backdoor-cc-prod-instance.json"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("invalid JSON"))
        #expect(result.stdout.contains("1 incident(s)"))
    }
}

extension Configuration {
    /// Waits for a lock instead of failing at once: a journal closed just before may
    /// still be checkpointing its WAL as its last connection closes.
    static var waiting: Configuration {
        var configuration = Configuration()
        configuration.busyMode = .timeout(30)
        return configuration
    }
}
