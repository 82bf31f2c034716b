import CordonCore
import CordonTestSupport
import Foundation
import Testing

/// What a user hits on the first day: each was wrong or missing.
@Suite struct PapercutCLITests {
    static func temp(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("cordon-\(name)-\(UUID().uuidString)").path
    }

    @Test func aMissingQueueDirectoryIsRefusedUnlessAskedFor() async throws {
        let root = Self.temp("queue")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let missing = root + "/nope/q"
        let refused = try await CLI.run(["run", "--queue-dir", missing, "--data-dir", root + "/data"])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("--queue-dir: no directory \(missing)"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: missing), "nothing was created")
        let runner = Process()
        runner.executableURL = CLI.executable
        runner.currentDirectoryURL = CLI.packageRoot
        runner.arguments = ["run", "--queue-dir", missing, "--create-queue-dir", "--data-dir", root + "/data"]
        runner.standardError = FileHandle.nullDevice
        try Spawn.run(runner)
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: missing + "/incoming") && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(FileManager.default.fileExists(atPath: missing + "/incoming"))
        runner.terminate()
        await CLI.waitForExit(runner)
    }

    static let approvalPlaybook = """
        name: wait
        version: 1
        description: An approval before a log line.
        trigger: {source: [aws.guardduty]}
        incident: {key: "{{ detail.id }}"}
        steps:
          - id: note
            action: core.log
            with: {message: "{{ detail.id }}"}
            approval: {timeout: 1h, on_timeout: skip}
        """

    static func finding(_ id: String, account: String = "1") -> String {
        #"{"version":"0","id":"\#(id)","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"\#(account)","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":[],"detail":{"id":"\#(id)","type":"X","severity":5,"updatedAt":"2026-03-01T10:00:00Z"}}"#
    }

    /// `show` prints the whole approve command, and approve, rollback, export, timeline,
    /// process and run all speak JSON.
    @Test func commandsPrintWhatToRunNextAndSpeakJSON() async throws {
        let data = Self.temp("json"), playbooks = Self.temp("json-playbooks")
        try FileManager.default.createDirectory(atPath: playbooks, withIntermediateDirectories: true)
        try Self.approvalPlaybook.write(toFile: playbooks + "/p.yaml", atomically: true, encoding: .utf8)
        defer {
            try? FileManager.default.removeItem(atPath: data)
            try? FileManager.default.removeItem(atPath: playbooks)
        }
        let bad = try CLI.temporaryFile("{not json")
        let good = try CLI.temporaryFile(Self.finding("f1"))
        let process = try await CLI.run(["process", "--data-dir", data, "--playbooks", playbooks, "--output", "json", good, good, bad])
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(process.stdout.utf8)) as? [String: Any], "\(process.stdout)\(process.stderr)")
        #expect(summary["duplicates"] as? Int == 1)
        #expect((summary["decode_errors"] as? [String])?.count == 1)
        let incident = try #require((summary["incidents"] as? [[String: Any]])?.first?["id"] as? String)

        let show = try await CLI.run(["show", incident, "--data-dir", data])
        #expect(show.stdout.contains("cordon approve \(incident) note --by NAME [--deny --reason TEXT] --data-dir \(data) --cloud aws"), "\(show.stdout)")

        let approve = try await CLI.run(["approve", incident, "note", "--by", "lead", "--data-dir", data, "--playbooks", playbooks, "--output", "json"])
        let decided = try #require(try JSONSerialization.jsonObject(with: Data(approve.stdout.utf8)) as? [String: Any], "\(approve.stdout)\(approve.stderr)")
        #expect(decided["decision"] as? String == "approved")
        #expect(decided["continued_by"] as? String == "this command")
        #expect((decided["state"] as? [String: Any])?["state"] as? String == "contained")

        let rollback = try await CLI.run(["rollback", incident, "--data-dir", data, "--playbooks", playbooks, "--output", "json"])
        let undone = try #require(try JSONSerialization.jsonObject(with: Data(rollback.stdout.utf8)) as? [String: Any], "\(rollback.stdout)\(rollback.stderr)")
        #expect(undone["incident"] as? String == incident && (undone["results"] as? [Any])?.isEmpty == true)

        let out = Self.temp("bundle")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let export = try await CLI.run(["export", incident, "--out", out, "--data-dir", data, "--output", "json"])
        let exported = try #require(try JSONSerialization.jsonObject(with: Data(export.stdout.utf8)) as? [String: Any], "\(export.stdout)\(export.stderr)")
        #expect((exported["records"] as? Int ?? 0) > 0)

        let timeline = try await CLI.run(["timeline", incident, "--output", "json", "--data-dir", data])
        #expect((try JSONSerialization.jsonObject(with: Data(timeline.stdout.utf8)) as? [String: Any])?["incident"] as? String == incident)

        // run: a summary on standard output when it stops.
        let queue = Self.temp("json-queue")
        try FileManager.default.createDirectory(atPath: queue + "/incoming", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: queue) }
        let runner = Process()
        runner.executableURL = CLI.executable
        runner.arguments = ["run", "--queue-dir", queue, "--data-dir", data, "--playbooks", playbooks, "--output", "json"]
        let stdout = Spawn.pipe()
        runner.standardOutput = stdout
        runner.standardError = FileHandle.nullDevice
        try Spawn.run(runner)
        try Self.finding("f2").write(toFile: queue + "/.f2.tmp", atomically: true, encoding: .utf8)
        try FileManager.default.moveItem(atPath: queue + "/.f2.tmp", toPath: queue + "/incoming/f2.json")
        let deadline = Date().addingTimeInterval(30)
        while ((try? FileManager.default.contentsOfDirectory(atPath: queue + "/done")) ?? []).isEmpty && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        runner.terminate()
        await CLI.waitForExit(runner)
        let ran = try #require(try JSONSerialization.jsonObject(with: stdout.fileHandleForReading.readDataToEndOfFile()) as? [String: Any])
        #expect(ran["stopped"] as? String == "cleanly")
        #expect(((ran["findings"] as? [String: Any])?["queue"] as? [String: Any])?["accepted"] as? Int == 1)
        #expect((ran["incidents"] as? [String: Any])?["open"] as? Int == 1, "\(ran)")
        #expect(ran["approvals_pending"] as? Int == 1)
    }

    /// On a terminal, a long `process` says how far it is (through `script`, which gives
    /// the command a pseudo-terminal).
    @Test func aLongProcessShowsProgressOnATerminal() async throws {
        let data = Self.temp("progress")
        defer { try? FileManager.default.removeItem(atPath: data) }
        let findings = (0..<450).map { Self.finding("p\($0)") }.joined(separator: "\n")
        let file = try CLI.temporaryFile(findings, suffix: ".jsonl")
        let command = ([CLI.executable.path, "process", "--dry-run", "--data-dir", data, file]).map { "'\($0)'" }.joined(separator: " ")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        p.arguments = ["-qec", command, "/dev/null"]
        p.currentDirectoryURL = CLI.packageRoot
        let captured = try await offPool { try Spawn.capture(p, stdin: nil) }
        let text = String(decoding: captured.stdout, as: UTF8.self)
        #expect(text.contains("cordon: 450/450 findings handled"), "\(text.suffix(400))")
        #expect(text.contains("450 finding(s)"))
        // Not on a pipe: no progress line.
        let piped = try await CLI.run(["process", "--dry-run", "--data-dir", data + "-2", file])
        #expect(!piped.stderr.contains("findings handled"))
        try? FileManager.default.removeItem(atPath: data + "-2")
    }

    /// A finding from another account, without a role to assume there: the AWS error says so.
    @Test func aFindingFromAnotherAccountSaysWhyItsResourceIsNotFound() async throws {
        let moto = try await offPool { try Moto.dedicated("account") }
        defer { moto.stop() }
        let data = Self.temp("account")
        defer { try? FileManager.default.removeItem(atPath: data) }
        let fixture = try String(
            contentsOfFile: CLI.packageRoot.appendingPathComponent("Fixtures/playbooks/guardduty-ec2-quarantine/fires-bitcoin-tool-staging-instance.json").path,
            encoding: .utf8
        ).replacingOccurrences(of: "123456789012", with: "111122223333")
        let run = try await CLI.run(["process", "--cloud", "aws", "--data-dir", data, try CLI.temporaryFile(fixture)], environment: DrillCLITests.environment(moto))
        #expect(run.stdout.contains("InvalidInstanceID.NotFound"), "\(run.stdout)")
        #expect(run.stdout.contains("the finding is in account 111122223333, but the credentials are account 123456789012's"), "\(run.stdout)")
        #expect(run.stdout.contains("--assume-role-arn"))
    }
}

/// Typed options: a duration is parsed with the command line and refused there, saying
/// what a duration is.
@Suite struct TypedOptionCLITests {
    @Test(arguments: ["--poll-interval", "--shutdown-timeout", "--replay-window", "--request-timeout"])
    func aDurationThatIsNotOneIsRefusedWithTheForm(_ option: String) async throws {
        let r = try await CLI.run(["run", "--queue-dir", "/tmp", option, "soon"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("\(option): \"soon\" is not a duration: write number-unit pairs such as 500ms, 30s"), "\(r.stderr)")
    }
}
