import CordonTestSupport
import Foundation
import Testing

/// Runs the built `cordon` executable (swift test builds it beside the test bundle).
struct CLI {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The built `cordon`, or the one `CORDON_TEST_EXECUTABLE` names (to run these tests
    /// against another build, such as the one before a fix).
    static var executable: URL { built("cordon") }

    /// `cordon-testbed`: `cordon` with the crash tests' `test.record` action, which the
    /// shipped executable does not have (or `CORDON_TEST_EXECUTABLE`, as above).
    static var testbed: URL { built("cordon-testbed") }

    /// The testbed when `environment` names a recorder file (`CORDON_TEST_RECORDER_FILE`),
    /// else `cordon`.
    static func executable(for environment: [String: String]) -> URL {
        environment["CORDON_TEST_RECORDER_FILE"].map { !$0.isEmpty } == true ? testbed : executable
    }

    private static func built(_ name: String) -> URL {
        if let other = ProcessInfo.processInfo.environment["CORDON_TEST_EXECUTABLE"], !other.isEmpty { return URL(fileURLWithPath: other) }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        // On Linux the runner is <products>/CordonPackageTests.xctest; be tolerant of bundles.
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return packageRoot.appendingPathComponent(".build/debug/" + name)
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs the command on a thread of its own, so that tests never block the cooperative
    /// pool or GCD's global queues (both are as wide as the machine has cores).
    /// - Parameter environment: variables set (or, with "", cleared) over the test's own.
    static func run(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:], directory: URL? = nil) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                do { continuation.resume(returning: try runBlocking(arguments, stdin: stdin, environment: environment, directory: directory)) } catch { continuation.resume(throwing: error) }
            }
        }
    }

    /// Waits for a process to exit without blocking a shared thread. One still running
    /// after `seconds` is killed and the test fails, naming it: a runner that never stops
    /// is a failure, not a test run that never ends.
    static func waitForExit(_ process: Process, seconds: Double = 120, sourceLocation: Testing.SourceLocation = #_sourceLocation) async {
        if !(await Spawn.waitForExit(process, seconds: seconds)) {
            Issue.record("cordon \((process.arguments ?? []).joined(separator: " ")) did not exit within \(Int(seconds)) s; killed", sourceLocation: sourceLocation)
        }
    }

    static func runBlocking(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:], directory: URL? = nil) throws -> Result {
        let process = Process()
        process.executableURL = executable(for: environment)
        process.arguments = arguments
        process.currentDirectoryURL = directory ?? packageRoot
        if !environment.isEmpty {
            var env = ProcessInfo.processInfo.environment
            for (k, v) in environment {
                if v.isEmpty { env.removeValue(forKey: k) } else { env[k] = v }
            }
            process.environment = env
        }
        let captured = try Spawn.capture(process, stdin: stdin.map { Data($0.utf8) })
        return Result(status: captured.status, stdout: String(decoding: captured.stdout, as: UTF8.self), stderr: captured.stderrText)
    }

    static func temporaryFile(_ contents: String, suffix: String = ".json") throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-test-\(UUID().uuidString)\(suffix)").path
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

@Suite struct CLITests {
    /// The crash tests' recording action is built into `cordon-testbed` only: the shipped
    /// executable does not even contain the name of the variable that switches it on.
    @Test func theShippedExecutableCarriesNoTestDouble() throws {
        guard ProcessInfo.processInfo.environment["CORDON_TEST_EXECUTABLE"] == nil else { return }
        let shipped = try Data(contentsOf: CLI.executable)
        let testbed = try Data(contentsOf: CLI.testbed)
        let marker = Data("CORDON_TEST_RECORDER_FILE".utf8)
        #expect(shipped.range(of: marker) == nil)
        #expect(testbed.range(of: marker) != nil)
    }

    @Test func helpDescribesEveryCommand() async throws {
        let help = try await CLI.run(["--help"])
        #expect(help.status == 0)
        for command in ["process", "rollback", "approve", "run", "incidents", "show", "validate", "match", "decode", "schema", "timeline", "export", "journal"] {
            #expect(help.stdout.contains(command))
            let sub = try await CLI.run([command, "--help"])
            #expect(sub.status == 0)
            #expect(sub.stdout.contains("USAGE: cordon \(command)"))
        }
    }

    @Test func usageErrorsExitTwo() async throws {
        let missing = try await CLI.run(["match"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("--pattern"))
        #expect(try await CLI.run(["no-such-command"]).status == 2)
    }

    @Test func matchPrintsOneLinePerEvent() async throws {
        let pattern = try CLI.temporaryFile(#"{"source": ["aws.guardduty"], "detail": {"severity": [{"numeric": [">=", 7]}]}}"#)
        let events = """
            {"source": "aws.guardduty", "detail": {"severity": 8}}
            {"source": "aws.guardduty", "detail": {"severity": 2}}

            {"source": "aws.iam", "detail": {"severity": 9}}
            """
        let fromStdin = try await CLI.run(["match", "--pattern", pattern], stdin: events)
        #expect(fromStdin.status == 0)
        #expect(fromStdin.stdout == "match\nno match\nno match\n")
        let file = try CLI.temporaryFile(events, suffix: ".jsonl")
        let fromFile = try await CLI.run(["match", "--pattern", pattern, "--events", file, "--output", "json"])
        #expect(fromFile.status == 0)
        #expect(fromFile.stdout.split(separator: "\n").first == #"{"line":1,"match":true}"#)
    }

    @Test func matchReportsBadEventsAndKeepsGoing() async throws {
        let pattern = try CLI.temporaryFile(#"{"a": [1]}"#)
        let result = try await CLI.run(["match", "--pattern", pattern], stdin: "{\"a\": 1}\n{\"a\": \n{\"a\": 1, \"a\": 2}\n{\"a\": 1}\n")
        #expect(result.status == 2)
        #expect(result.stdout == "match\nerror\nerror\nmatch\n")
        #expect(result.stderr.contains("stdin:2: invalid JSON"))
        #expect(result.stderr.contains("stdin:3: invalid JSON"))
        #expect(result.stderr.contains("duplicate key"))
    }

    @Test func invalidPatternExitsTwoNamingTheField() async throws {
        let pattern = try CLI.temporaryFile(#"{"detail": {"type": [{"prefix": 5}]}}"#)
        let result = try await CLI.run(["match", "--pattern", pattern], stdin: "")
        #expect(result.status == 2)
        #expect(result.stderr.contains("\"detail.type\""))
        #expect(result.stderr.contains("prefix takes a string"))
        #expect(result.stdout.isEmpty)
        let missing = try await CLI.run(["match", "--pattern", "/nonexistent.json"], stdin: "")
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("cannot read pattern file"))
    }

    @Test func decodeFeedsMatch() async throws {
        let decoded = try await CLI.run(["decode", "Fixtures/findings/cloudtrail/log-file.json", "--output", "json"])
        #expect(decoded.status == 0)
        #expect(decoded.stdout.split(separator: "\n").count == 3)
        let pattern = try CLI.temporaryFile(#"{"detail-type": ["AWS API Call via CloudTrail"], "detail": {"eventName": ["CreateAccessKey"]}}"#)
        let matched = try await CLI.run(["match", "--pattern", pattern], stdin: decoded.stdout)
        #expect(matched.stdout == "match\nno match\nno match\n")
    }

    @Test func decodeReportsBadRecordsWithPlaceAndExitsTwo() async throws {
        let file = try CLI.temporaryFile("{\"source\":\"s\",\"detail-type\":\"d\",\"detail\":{}}\n{oops\n", suffix: ".jsonl")
        let result = try await CLI.run(["decode", file])
        #expect(result.status == 2)
        #expect(result.stdout.split(separator: "\n").count == 1)
        #expect(result.stderr.contains("\(file):2 (byte "))
    }
}

@Suite struct ValidateCLITests {
    @Test func shippedPlaybooksAndIntegrationsValidate() async throws {
        let result = try await CLI.run(["validate", "Playbooks", "Integrations"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("valid"))
    }

    @Test func invalidFilesExitOneWithPositions() async throws {
        let bad = try CLI.temporaryFile(
            """
            name: demo
            version: 1
            description: x
            trigger: {source: [aws.guardduty]}
            stepz: []
            steps:
              - id: a
                action: aws.ec2.isolate
            """, suffix: ".yaml")
        let result = try await CLI.run(["validate", bad])
        #expect(result.status == 1)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains("\(bad):5:1: unknown key \"stepz\" (did you mean \"steps\"?); expected name, version, description, trigger, incident, vars, steps"))
        #expect(lines.contains { $0.hasPrefix("\(bad):8:13: step \"a\": unknown action \"aws.ec2.isolate\"") })
        let json = try await CLI.run(["validate", bad, "--output", "json"])
        #expect(json.status == 1)
        #expect(json.stdout.contains("\"valid\": false"))
        #expect(json.stdout.contains("\"line\": 5"))
    }

    @Test func schemaCommandPrintsJSONSchema() async throws {
        let result = try await CLI.run(["schema", "playbook"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("\"$schema\": \"https://json-schema.org/draft/2020-12/schema\""))
        #expect(result.stdout.contains("\"slack.post_message\""))
        #expect(try await CLI.run(["schema", "integration"]).stdout.contains("\"retry_on\""))
        #expect(try await CLI.run(["schema", "nonsense"]).status == 2)
    }
}
