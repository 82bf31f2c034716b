import CordonTestSupport
import Foundation
import Testing

@testable import CordonCore
import CordonIntegrations

/// The generated JSON Schemas, checked with a standard validator (Python's jsonschema,
/// which .ci/run installs): they accept every shipped file and reject broken ones.
@Suite struct ConfigSchemaTests {
    static let script = """
        import json, sys, yaml, jsonschema
        schema = json.load(open(sys.argv[1]))
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        for path in sys.argv[2:]:
            errors = sorted(validator.iter_errors(yaml.safe_load(open(path))), key=lambda e: list(e.path))
            print(path, "valid" if not errors else "invalid: " + "; ".join(e.message for e in errors[:3]))
        """

    func validate(schema: JSONValue, files: [String]) async throws -> [String: String] {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                do { continuation.resume(returning: try self.validateBlocking(schema: schema, files: files)) } catch { continuation.resume(throwing: error) }
            }
        }
    }

    func validateBlocking(schema: JSONValue, files: [String]) throws -> [String: String] {
        let dir = try TempDir()
        let schemaFile = try dir.write("schema.json", JSONWriter.pretty(schema))
        let scriptFile = try dir.write("check.py", Self.script)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", scriptFile, schemaFile] + files
        let captured = try Spawn.capture(process)
        let data = captured.stdout
        #expect(captured.status == 0 && !captured.timedOut, "python3: \(captured.stderrText)")
        var results: [String: String] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2 { results[String(parts[0])] = String(parts[1]) }
        }
        return results
    }

    static var shippedPlaybooks: [String] {
        ConfigLoader.yamlFiles([TestPaths.packageRoot.appendingPathComponent("Playbooks").path]).files
    }

    static var shippedIntegrations: [String] {
        ConfigLoader.yamlFiles([TestPaths.packageRoot.appendingPathComponent("Integrations").path]).files
    }

    @Test func playbookSchemaAcceptsShippedPlaybooksAndRejectsBrokenOnes() async throws {
        let loaded = ConfigLoader(actions: .builtIn).load([], integrationPaths: [TestPaths.packageRoot.appendingPathComponent("Integrations").path])
        let schema = ConfigSchema.playbook(registry: loaded.registry)
        let dir = try TempDir()
        let good = try dir.write("good.yaml", ConfigLoaderTests.playbook.replacingOccurrences(of: "slack.post_message", with: "core.log").replacingOccurrences(of: "text:", with: "message:"))
        let unknownKey = try dir.write("unknown-key.yaml", ConfigLoaderTests.playbook.replacingOccurrences(of: "timeout: 60s", with: "timeout: 60s\n    retries: 3"))
        let badInput = try dir.write("bad-input.yaml", ConfigLoaderTests.playbook.replacingOccurrences(of: "isolation_group:", with: "isolation_grp:"))
        let missingInput = try dir.write("missing-input.yaml", ConfigLoaderTests.playbook.replacingOccurrences(of: "with: {instance_id: \"{{ vars.instance }}\"}", with: "with: {}"))
        let badDuration = try dir.write("bad-duration.yaml", ConfigLoaderTests.playbook.replacingOccurrences(of: "timeout: 15m", with: "timeout: soon"))
        let unknownAction = try dir.write("unknown-action.yaml", ConfigLoaderTests.playbook.replacingOccurrences(of: "aws.ec2.snapshot_volumes", with: "aws.ec2.snapshot"))
        let shipped = Self.shippedPlaybooks
        #expect(shipped.count >= 6)
        let results = try await validate(schema: schema, files: shipped + [good, unknownKey, badInput, missingInput, badDuration, unknownAction])
        for file in shipped + [good] { #expect(results[file] == "valid", "\(file): \(results[file] ?? "no result")") }
        for file in [unknownKey, badInput, missingInput, badDuration, unknownAction] {
            #expect(results[file]?.hasPrefix("invalid") == true, "\(file): \(results[file] ?? "no result")")
        }
    }

    @Test func integrationSchemaAcceptsShippedIntegrationsAndRejectsBrokenOnes() async throws {
        let dir = try TempDir()
        let broken = try dir.write("broken.yaml", ConfigLoaderTests.slack.replacingOccurrences(of: "method: POST", with: "method: SEND"))
        let extra = try dir.write("extra.yaml", ConfigLoaderTests.slack.replacingOccurrences(of: "success: [200]", with: "success: [200]\n    retries: 2"))
        let shipped = Self.shippedIntegrations
        #expect(shipped.count >= 5)
        let results = try await validate(schema: ConfigSchema.integration(), files: shipped + [broken, extra])
        for file in shipped { #expect(results[file] == "valid", "\(file): \(results[file] ?? "no result")") }
        #expect(results[broken]?.hasPrefix("invalid") == true)
        #expect(results[extra]?.hasPrefix("invalid") == true)
    }

    @Test func shippedFilesValidate() throws {
        let root = TestPaths.packageRoot
        let loaded = ConfigLoader(actions: .builtIn).load([root.appendingPathComponent("Playbooks").path, root.appendingPathComponent("Integrations").path])
        #expect(loaded.diagnostics.isEmpty, Comment(rawValue: loaded.diagnostics.map(\.description).joined(separator: "\n")))
        #expect(loaded.playbooks.count >= 6)
        #expect(Set(loaded.integrations.map(\.name)).isSuperset(of: ["slack", "teams", "pagerduty", "opsgenie", "webhook"]))
    }
}
