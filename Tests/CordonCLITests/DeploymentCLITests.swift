import CordonTestSupport
import Foundation
import Testing

/// Running outside the checkout: the systemd unit in deploy/, playbook directories
/// reached through symbolic links, and an empty playbook directory.
@Suite(.serialized) struct DeploymentCLITests {
    static let unit = CLI.packageRoot.appendingPathComponent("deploy/cordon.service")

    /// `ExecStart`'s words, continuation lines joined.
    static func execStart(_ text: String) throws -> [String] {
        let joined = text.replacingOccurrences(of: "\\\n", with: " ")
        let line = try #require(joined.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
        return line.dropFirst("ExecStart=".count).split(separator: " ").map(String.init)
    }

    @Test func theUnitIsHardenedAndVerifies() async throws {
        let text = try String(contentsOf: Self.unit, encoding: .utf8)
        for setting in [
            "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/cordon", "PrivateTmp=yes", "ProtectHome=yes",
            "CapabilityBoundingSet=", "StateDirectory=cordon", "LoadCredential=api-key:/etc/cordon/api-key",
        ] {
            #expect(text.split(separator: "\n").contains { $0 == setting }, "\(setting)")
        }
        #expect(!text.contains("CORDON_API_KEY="), "no secret in the unit's environment")
        let analyze = "/usr/bin/systemd-analyze"
        guard FileManager.default.isExecutableFile(atPath: analyze) else { return }
        // The unit as installed, with the binary this test built.
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-\(UUID().uuidString.prefix(8)).service")
        try text.replacingOccurrences(of: "/usr/local/bin/cordon", with: CLI.executable.path).write(to: copy, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: copy) }
        let verify = try await ListenCLITests.exec(analyze, ["verify", copy.path])
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(verify.stderr.isEmpty, "systemd-analyze warns: \(verify.stderr)")
    }

    /// The unit's command line, with the example configuration of docs/operations.md and
    /// its paths moved into a temporary directory, starts a runner that takes findings
    /// from the webhook and the queue directory and stops cleanly.
    @Test func theUnitsCommandRuns() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-unit-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let etc = root.appendingPathComponent("etc/cordon"), state = root.appendingPathComponent("var/lib/cordon")
        try FileManager.default.createDirectory(at: etc.appendingPathComponent("integrations"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
        // Playbooks through a symbolic link, as an /etc layout may have them.
        let shipped = root.appendingPathComponent("shipped-playbooks")
        try FileManager.default.createDirectory(at: shipped, withIntermediateDirectories: true)
        try RunCLITests.playbook.write(to: shipped.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(at: etc.appendingPathComponent("playbooks"), withDestinationURL: shipped)
        try RunCLITests.recorderIntegration.write(to: etc.appendingPathComponent("integrations/test.yaml"), atomically: true, encoding: .utf8)

        var words = try Self.execStart(try String(contentsOf: Self.unit, encoding: .utf8))
        #expect(words == ["/usr/local/bin/cordon", "run", "--config", "/etc/cordon/cordon.yaml"], "\(words)")
        // The complete example of docs/operations.md as /etc/cordon/cordon.yaml, its paths moved.
        let docs = try String(contentsOf: CLI.packageRoot.appendingPathComponent("docs/operations.md"), encoding: .utf8)
        let example = try #require(docs.components(separatedBy: "```yaml\n# /etc/cordon/cordon.yaml\n").dropFirst().first?.components(separatedBy: "```").first)
        let moved = example.replacingOccurrences(of: "/etc/cordon", with: etc.path).replacingOccurrences(of: "/var/lib/cordon", with: state.path)
            .replacingOccurrences(of: "127.0.0.1:8080", with: "127.0.0.1:0").replacingOccurrences(of: "poll_interval: 1s", with: "poll_interval: 100ms")
        try moved.write(to: etc.appendingPathComponent("cordon.yaml"), atomically: true, encoding: .utf8)
        words = ["--config", etc.appendingPathComponent("cordon.yaml").path]
        let keyFile = root.appendingPathComponent("api-key")
        try "unit-api-key-123\n".write(to: keyFile, atomically: true, encoding: .utf8)
        let recorder = root.appendingPathComponent("effects.log").path
        let runner = try ListenCLITests.Runner(
            words,
            environment: [
                "CORDON_API_KEY_FILE": keyFile.path, "CORDON_METRICS_TOKEN": "metrics-token-1", "CORDON_TEST_RECORDER_FILE": recorder,
                "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "unused", "AWS_SECRET_ACCESS_KEY": "unused",
            ])
        let port = try #require(try await runner.port("http://127.0.0.1:"), "\(runner.text)")
        let (status, body) = try await ListenCLITests.curl([
            "http://127.0.0.1:\(port)/v1/findings", "-H", "X-Cordon-Api-Key: unit-api-key-123", "--data-binary", ListenCLITests.finding("unit-1"),
        ])
        #expect(status == 202, "\(body)")
        // And through the queue directory the unit names.
        let queue = state.appendingPathComponent("queue")
        try ListenCLITests.finding("unit-2").write(to: queue.appendingPathComponent(".f.tmp"), atomically: true, encoding: .utf8)
        try FileManager.default.moveItem(at: queue.appendingPathComponent(".f.tmp"), to: queue.appendingPathComponent("incoming/f.json"))
        var done = false
        for _ in 0..<100 where !done {
            done = FileManager.default.fileExists(atPath: queue.appendingPathComponent("done/f.json").path)
            if !done { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(done, "\(runner.text)")
        #expect(await runner.stop() == 0, "\(runner.text)")
        let listed = try await CLI.run(["incidents", "--data-dir", state.path, "--output", "json"])
        let incidents = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(incidents.count == 2, "\(listed.stdout)")
    }

    @Test func aLinkedPlaybookDirectoryIsFollowedAndAnEmptyOneIsAnError() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-links-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let real = root.appendingPathComponent("real/nested")
        try FileManager.default.createDirectory(at: real, withIntermediateDirectories: true)
        try String(contentsOf: CLI.packageRoot.appendingPathComponent("Playbooks/cloudtrail-root-console-login.yaml"), encoding: .utf8)
            .write(to: real.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        let linked = root.appendingPathComponent("linked")
        try FileManager.default.createSymbolicLink(at: linked, withDestinationURL: root.appendingPathComponent("real"))
        // A link back up the tree is read once, not forever.
        try FileManager.default.createSymbolicLink(at: real.appendingPathComponent("loop"), withDestinationURL: root.appendingPathComponent("real"))
        let integrations = CLI.packageRoot.appendingPathComponent("Integrations").path

        let valid = try await CLI.run(["validate", "--playbooks", linked.path, "--integrations", integrations])
        #expect(valid.status == 0, "\(valid.stdout)\(valid.stderr)")
        #expect(valid.stderr.contains("1 playbook(s)"), "\(valid.stderr)")

        let empty = root.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let refused = try await CLI.run(["validate", "--playbooks", empty.path, "--integrations", integrations])
        #expect(refused.status == 1)
        #expect(refused.stdout.contains("no playbook found in \(empty.path)"), "\(refused.stdout)")
        let allowed = try await CLI.run(["validate", "--playbooks", empty.path, "--integrations", integrations, "--allow-empty"])
        #expect(allowed.status == 0, "\(allowed.stdout)\(allowed.stderr)")
        let run = try await CLI.run([
            "run", "--playbooks", empty.path, "--integrations", integrations, "--data-dir", root.appendingPathComponent("data").path, "--queue-dir",
            root.path,
        ])
        #expect(run.status == 2)
        #expect(run.stderr.contains("no playbook found in \(empty.path)"), "\(run.stderr)")
    }
}

/// `cordon.yaml`: commands started in a directory that holds only the file, which points
/// elsewhere, take their settings from it; flags win over it; a bad file says where.
@Suite(.serialized) struct ConfigFileCLITests {
    @Test func commandsRunFromADirectoryWithOnlyACordonYAML() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-config-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let work = root.appendingPathComponent("work"), elsewhere = root.appendingPathComponent("elsewhere")
        for dir in [work, elsewhere.appendingPathComponent("playbooks"), elsewhere.appendingPathComponent("integrations")] {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        }
        try RunCLITests.playbook.write(to: elsewhere.appendingPathComponent("playbooks/p.yaml"), atomically: true, encoding: .utf8)
        try RunCLITests.recorderIntegration.write(to: elsewhere.appendingPathComponent("integrations/test.yaml"), atomically: true, encoding: .utf8)
        // Relative paths resolve against the file's directory, not the working one.
        try """
            data_dir: ../elsewhere/data
            playbooks: ../elsewhere/playbooks
            integrations: \(elsewhere.path)/integrations
            queue_dir: ../elsewhere/queue
            create_queue_dir: true
            poll_interval: 100ms
            """.write(to: work.appendingPathComponent("cordon.yaml"), atomically: true, encoding: .utf8)
        #expect(try FileManager.default.contentsOfDirectory(atPath: work.path) == ["cordon.yaml"])
        let recorder = root.appendingPathComponent("effects.log").path
        let env = ["CORDON_TEST_RECORDER_FILE": recorder]

        let valid = try await CLI.run(["validate"], environment: env, directory: work)
        #expect(valid.status == 0, "\(valid.stdout)\(valid.stderr)")
        #expect(valid.stderr.contains("1 playbook(s)"), "\(valid.stderr)")

        let finding = try CLI.temporaryFile(ListenCLITests.finding("cfg-1"))
        let dry = try await CLI.run(["process", "--dry-run", finding], environment: env, directory: work)
        #expect(dry.status == 0, "\(dry.stdout)\(dry.stderr)")
        #expect(FileManager.default.fileExists(atPath: elsewhere.appendingPathComponent("data/journal.sqlite").path), "the file's data directory")
        #expect(!FileManager.default.fileExists(atPath: work.appendingPathComponent(".cordon").path), "not the default one")

        let runner = try ListenCLITests.Runner([], environment: env, directory: work)
        let queue = elsewhere.appendingPathComponent("queue")
        var ready = false
        for _ in 0..<100 where !ready {
            ready = FileManager.default.fileExists(atPath: queue.appendingPathComponent("incoming").path) && runner.text.contains("running")
            if !ready { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(ready, "\(runner.text)")
        try ListenCLITests.finding("cfg-2").write(to: queue.appendingPathComponent(".f.tmp"), atomically: true, encoding: .utf8)
        try FileManager.default.moveItem(at: queue.appendingPathComponent(".f.tmp"), to: queue.appendingPathComponent("incoming/f.json"))
        var done = false
        for _ in 0..<100 where !done {
            done = FileManager.default.fileExists(atPath: queue.appendingPathComponent("done/f.json").path)
            if !done { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(done, "\(runner.text)")
        #expect(await runner.stop() == 0, "\(runner.text)")
        let listed = try await CLI.run(["incidents", "--output", "json"], directory: work)
        let incidents = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(incidents.count == 2, "the dry run's and the run's: \(listed.stdout)")
        #expect(try String(contentsOfFile: recorder, encoding: .utf8).contains("cfg-2"), "the run's step acted")

        // A flag wins over the file.
        let other = try await CLI.run(["incidents", "--data-dir", root.appendingPathComponent("none").path], directory: work)
        #expect(other.status == 2 && other.stderr.contains("no journal at \(root.path)/none"), "\(other.stderr)")
        // The settings in effect, paths resolved.
        let shown = try await CLI.run(["config", "show"], directory: work)
        #expect(shown.stdout.contains("data_dir: \"\(elsewhere.path)/data\""), "\(shown.stdout)")
        #expect(shown.stdout.contains("(./cordon.yaml)") || shown.stdout.contains("cordon.yaml"), "\(shown.stdout)")
    }

    @Test func aBadFileSaysWhereAndTheSchemaDescribesIt() async throws {
        let file = try CLI.temporaryFile("data_dir: /tmp/x\nconcurency: 4\nmax_body: many\nlisten: [1]\n", suffix: ".yaml")
        let r = try await CLI.run(["--config", file, "validate"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("\(file):2:1: unknown setting \"concurency\" (did you mean \"concurrency\"?)"), "\(r.stderr)")
        #expect(r.stderr.contains("\(file):3:11: max_body: expected an integer"), "\(r.stderr)")
        #expect(r.stderr.contains("\(file):4:9: listen: expected a non-empty string"), "\(r.stderr)")
        let missing = try await CLI.run(["--config", "/nonexistent/cordon.yaml", "validate"])
        #expect(missing.status == 2 && missing.stderr.contains("no such file"))
        let schema = try await CLI.run(["schema", "config"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(schema.stdout.utf8)) as? [String: Any])
        let properties = try #require(json["properties"] as? [String: Any])
        for key in ["data_dir", "playbooks", "listen", "api_key_secrets", "request_timeout", "allow_empty"] { #expect(properties[key] != nil, "\(key)") }
    }
}
