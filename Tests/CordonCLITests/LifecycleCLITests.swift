import CordonCore
import CordonJournal
import CordonTestSupport
import Foundation
import Testing

/// An incident's lifecycle through the real `cordon`: a finding that attaches to an
/// incident not closed makes its playbook evaluate again; closing (by a person or by the
/// quiet period) makes the next finding open a new incident that follows it; dry runs stay
/// apart from real runs. Effects are counted at their targets: the simulated cloud's saved
/// state and a local HTTP receiver.
@Suite struct LifecycleCLITests {
    static func temp(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("cordon-\(name)-\(UUID().uuidString)").path
    }

    /// The shipped IAM fixture for another key, principal type or source of svc-reporting.
    static func iamFinding(_ n: Int, key: String, ip: String) throws -> String {
        let fixture = "Fixtures/playbooks/guardduty-iam-credential-compromise/fires-iam-user-tor-ip-caller.json"
        let text = try String(contentsOfFile: CLI.packageRoot.appendingPathComponent(fixture).path, encoding: .utf8)
            .replacingOccurrences(of: "alice.dev", with: "svc-reporting")
            .replacingOccurrences(of: "AKIAQ3EXAMPLEALICE01", with: key)
            .replacingOccurrences(of: "198.51.100.66", with: ip)
            .replacingOccurrences(of: "d1904e90-f098-5929-943c-8bf6d61fc415", with: "d1904e90-f098-5929-943c-8bf6d61f000\(n)")
            .replacingOccurrences(of: "6f20309690520af962d6b1bad5ef0fc2", with: "6f20309690520af962d6b1bad5ef000\(n)")
        return try CLI.temporaryFile(text)
    }

    /// The access keys' statuses and inline policy names of a user in the simulated cloud.
    static func user(_ dataDir: String, _ name: String) throws -> (keys: [String: String], policies: [String]) {
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dataDir + "/simulated-cloud.json"))) as? [String: Any]
        let user = ((((state?["world"] as? [String: Any])?["accounts"] as? [String: Any])?["123456789012"] as? [String: Any])?["users"] as? [String: Any])?[name] as? [String: Any]
        var keys: [String: String] = [:]
        for key in user?["accessKeys"] as? [[String: Any]] ?? [] { keys[key["id"] as? String ?? "?"] = key["status"] as? String }
        return (keys, ((user?["inlinePolicies"] as? [String: Any]) ?? [:]).keys.sorted())
    }

    /// The repro: key A deactivated; a second finding for the same user with key B, then
    /// one with temporary credentials from another IP. Each evaluates the playbook again.
    @Test func laterFindingsForAnOpenIncidentContainWhatIsNew() async throws {
        let dir = Self.temp("lifecycle-iam")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func process(_ file: String) async throws -> CLI.Result {
            try await CLI.run(["process", "--cloud", "simulated", "--data-dir", dir, file])
        }
        let first = try await process(try Self.iamFinding(1, key: "AKIAQ3EXAMPLESVCRPT1", ip: "198.51.100.66"))
        #expect(first.stdout.contains("succeeded         deactivate_key"), "\(first.stdout)\(first.stderr)")
        #expect(try Self.user(dir, "svc-reporting").keys == ["AKIAQ3EXAMPLESVCRPT0": "Active", "AKIAQ3EXAMPLESVCRPT1": "Inactive"])
        let incident = try #require(first.stdout.split(separator: "\n").dropFirst().first?.split(separator: " ").first.map(String.init))

        let second = try await process(try Self.iamFinding(2, key: "AKIAQ3EXAMPLESVCRPT0", ip: "198.51.100.66"))
        #expect(second.stdout.contains("\(incident)  "), "the finding attached to the open incident: \(second.stdout)")
        #expect(second.stdout.contains("(evaluation 2"), "\(second.stdout)")
        #expect(second.stdout.contains("succeeded         deactivate_key"), "\(second.stdout)")
        #expect(try Self.user(dir, "svc-reporting").keys == ["AKIAQ3EXAMPLESVCRPT0": "Inactive", "AKIAQ3EXAMPLESVCRPT1": "Inactive"], "key B is inactive at the target")

        let third = try await process(try Self.iamFinding(3, key: "ASIAQ3EXAMPLETEMPCRD", ip: "203.0.113.77"))
        #expect(third.stdout.contains("(evaluation 3"), "\(third.stdout)")
        #expect(third.stdout.contains("succeeded         deny_user"), "\(third.stdout)")
        #expect(third.stdout.contains("skipped           deactivate_key"), "\(third.stdout)")
        #expect(try Self.user(dir, "svc-reporting").policies.contains("CordonDenyAll"), "the user is denied at the target")

        // Each run of deactivate_key had its own inputs and called the cloud once.
        let journal = try SQLiteJournal(directory: DataDirectory(dir), readOnly: true)
        let records = try await journal.records(incident: incident)
        let deactivations = Set(records.filter { $0.kind == RecordKind.stepIntent && $0.data["step"] == "deactivate_key" }.compactMap { $0.data["idempotency_key"]?.stringValue })
        #expect(deactivations.count == 2)
        let shown = try await CLI.run(["show", incident, "--data-dir", dir, "--output", "json"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any])
        #expect(json["state"] as? String == "contained")
        #expect(json["rounds"] as? Int == 3)
    }

    static func playbook(closeAfter: String) -> String {
        """
        name: lifecycle
        version: 1
        description: Notes every finding about an instance; a step that fails for the first kind of finding only.
        trigger: {source: [aws.guardduty]}
        incident:
          key: "{{ detail.resource.instanceDetails.instanceId }}"
          close_after: \(closeAfter)
        steps:
          - id: note
            action: webhook.send
            with: {text: "{{ detail.type }} on {{ detail.resource.instanceDetails.instanceId }}"}
            retry: {attempts: 1}
          - id: fails_first
            action: core.wait
            when: {detail: {type: [first-kind]}}
            with: {duration: "{{ detail.type }}"}
            on_error: continue
        """
    }

    /// A data directory, a playbook directory and a receiver for the lifecycle playbook.
    struct Setup {
        let dir = LifecycleCLITests.temp("lifecycle")
        let playbooks = LifecycleCLITests.temp("lifecycle-playbooks")
        let receiver: RecordingReceiver

        init(closeAfter: String) throws {
            try FileManager.default.createDirectory(atPath: playbooks, withIntermediateDirectories: true)
            try LifecycleCLITests.playbook(closeAfter: closeAfter).write(toFile: playbooks + "/p.yaml", atomically: true, encoding: .utf8)
            receiver = try RecordingReceiver()
        }

        func process(_ id: String, _ type: String) async throws -> CLI.Result {
            try await CLI.run(
                ["process", "--data-dir", dir, "--playbooks", playbooks, try CLI.temporaryFile(LifecycleCLITests.finding(id, type: type))],
                environment: ["WEBHOOK_URL": receiver.url, "WEBHOOK_SIGNING_SECRET": "s"])
        }

        func incidents() async throws -> [[String: Any]] {
            let list = try await CLI.run(["incidents", "--data-dir", dir, "--output", "json"])
            return try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]] ?? []
        }

        func remove() {
            receiver.stop()
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: playbooks)
        }
    }

    static func finding(_ id: String, type: String, instance: String = "i-0123456789abcdef0") -> String {
        #"{"version":"0","id":"\#(id)","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"1","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":[],"detail":{"id":"\#(id)","type":"\#(type)","severity":5,"updatedAt":"2026-03-01T10:00:00Z","resource":{"instanceDetails":{"instanceId":"\#(instance)"}}}}"#
    }

    @Test func evaluationsAndCloses() async throws {
        let s = try Setup(closeAfter: "1h")
        defer { s.remove() }
        let (dir, receiver) = (s.dir, s.receiver)
        let process = s.process, incidents = s.incidents

        // Evaluation 1 fails a step: exit 1.
        let first = try await process("f1", "first-kind")
        #expect(first.status == 1, "\(first.stdout)\(first.stderr)")
        let incident = try #require(try await incidents().first?["id"] as? String)
        // Evaluation 2: a new note (new inputs), the failing step not reached; exit 0, not the
        // first evaluation's failure again.
        let second = try await process("f2", "second-kind")
        #expect(second.status == 0, "\(second.stdout)\(second.stderr)")
        #expect(second.stdout.contains("skipped           fails_first"), "\(second.stdout)")
        #expect(!second.stdout.contains("failed"), "\(second.stdout)")
        #expect(receiver.requests.count == 2)
        // Evaluation 3: the same inputs as 2: journaled as already done, not sent again.
        let third = try await process("f3", "second-kind")
        #expect(third.status == 0, "\(third.stdout)\(third.stderr)")
        #expect(receiver.requests.count == 2, "\(receiver.requests.map(\.body))")
        let journal = try SQLiteJournal(directory: DataDirectory(dir), readOnly: true)
        let done = try await journal.records(incident: incident).filter { $0.kind == RecordKind.stepSucceeded && $0.data["already_done"] == .bool(true) }
        #expect(done.count == 1 && done.first?.data["round"] == .number(JSONNumber(3)))

        // Closed by a person; a second close is refused, naming the first.
        let close = try await CLI.run(["close", incident, "--by", "alice", "--reason", "host rebuilt", "--data-dir", dir])
        #expect(close.status == 0, "\(close.stderr)")
        let again = try await CLI.run(["close", incident, "--by", "bob", "--data-dir", dir])
        #expect(again.status == 2)
        #expect(again.stderr.contains("already closed by user:alice at"), "\(again.stderr)")
        #expect(again.stderr.contains("host rebuilt"))
        let timeline = try await CLI.run(["timeline", incident, "--format", "json", "--data-dir", dir])
        let metrics = try #require((try JSONSerialization.jsonObject(with: Data(timeline.stdout.utf8)) as? [String: Any])?["metrics"] as? [String: Any])
        #expect(metrics["time_to_close_seconds"] is NSNumber, "\(metrics)")

        // The next finding opens a new incident that follows the closed one.
        _ = try await process("f4", "second-kind")
        let list = try await incidents()
        #expect(list.count == 2)
        let next = try #require(list.first { $0["id"] as? String != incident })
        #expect(next["follows"] as? String == incident)
        #expect(list.first { $0["id"] as? String == incident }?["state"] as? String == "closed")
        #expect(next["state"] as? String == "contained")
        #expect(receiver.requests.count == 3)

        let verify = try await CLI.run(["journal", "verify", "--data-dir", dir])
        #expect(verify.status == 0, "\(verify.stdout)")
    }

    /// After its quiet period (close_after), the next finding closes the incident and
    /// opens another that follows it.
    @Test func aQuietPeriodClosesTheIncident() async throws {
        let s = try Setup(closeAfter: "2s")
        defer { s.remove() }
        _ = try await s.process("q1", "second-kind")
        let first = try #require(try await s.incidents().first?["id"] as? String)
        try await Task.sleep(for: .seconds(3))
        _ = try await s.process("q2", "second-kind")
        let list = try await s.incidents()
        #expect(list.count == 2)
        let quiet = try #require(list.first { $0["id"] as? String == first })
        #expect(quiet["state"] as? String == "closed")
        #expect(quiet["closed_by"] as? String == "quiet period", "\(quiet)")
        #expect(list.contains { $0["follows"] as? String == first })
        let text = try await CLI.run(["incidents", "--data-dir", s.dir])
        #expect(text.stdout.contains("closed"), "\(text.stdout)")
    }

    /// The repro: a dry run, then the real run of the same finding.
    @Test func aDryRunNeverSuppressesTheRealRun() async throws {
        let dir = Self.temp("dry")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fixture = "Fixtures/playbooks/guardduty-ec2-quarantine/fires-bitcoin-tool-staging-instance.json"
        let dry = try await CLI.run(["process", "--dry-run", "--data-dir", dir, fixture])
        #expect(dry.status == 0, "\(dry.stdout)\(dry.stderr)")
        // The branch a real run takes when isolation works: notify, not notify_not_isolated.
        #expect(dry.stdout.contains("planned           notify_slack"), "\(dry.stdout)")
        #expect(dry.stdout.contains("skipped           notify_not_isolated"), "\(dry.stdout)")
        #expect(dry.stdout.contains("[dry run]"), "\(dry.stdout)")
        let real = try await CLI.run(["process", "--cloud", "simulated", "--data-dir", dir, fixture])
        #expect(real.stdout.hasPrefix("1 finding(s): 0 duplicate(s), 0 matched no playbook, 1 incident(s)"), "\(real.stdout)")
        #expect(real.stdout.contains("succeeded         isolate"), "\(real.stdout)")
        #expect(try CloudCLITests().groups(dir, "i-0b2c3d4e5f6a78901") != ["sg-0f9e8d7c6b5a49382"], "the instance is isolated at the target")
        let list = try await CLI.run(["incidents", "--data-dir", dir, "--output", "json"])
        let incidents = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(incidents.count == 2)
        #expect(incidents.map { $0["dry_run"] as? Bool } == [true, false])
        let text = try await CLI.run(["incidents", "--data-dir", dir])
        #expect(text.stdout.split(separator: "\n").filter { $0.contains("[dry run]") }.count == 1, "\(text.stdout)")
        // Exports say it too.
        let dryID = try #require(incidents.first { $0["dry_run"] as? Bool == true }?["id"] as? String)
        let timeline = try await CLI.run(["timeline", dryID, "--format", "json", "--data-dir", dir])
        #expect((try JSONSerialization.jsonObject(with: Data(timeline.stdout.utf8)) as? [String: Any])?["dry_run"] as? Bool == true)
        let markdown = try await CLI.run(["timeline", dryID, "--format", "md", "--data-dir", dir])
        #expect(markdown.stdout.contains("Dry run: the steps were planned, nothing was called"))
        // A second real run: a duplicate of the real one.
        let again = try await CLI.run(["process", "--cloud", "simulated", "--data-dir", dir, fixture])
        #expect(again.stdout.hasPrefix("1 finding(s): 1 duplicate(s)"), "\(again.stdout)")
    }
}
