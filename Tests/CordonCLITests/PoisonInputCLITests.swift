import Foundation
import Testing

/// Inputs that used to crash `cordon` (SIGILL from a trap) are handled or refused.
@Suite struct PoisonInputCLITests {
    static let fixture = "Fixtures/playbooks/guardduty-iam-credential-compromise/fires-iam-user-tor-ip-caller.json"

    /// The shipped fixture with its severity replaced by `literal`.
    static func finding(severity literal: String) throws -> String {
        var text = try String(contentsOfFile: CLI.packageRoot.appendingPathComponent(fixture).path, encoding: .utf8)
        let range = try #require(text.range(of: #""severity"\s*:\s*[0-9.]+"#, options: .regularExpression))
        text.replaceSubrange(range, with: #""severity": \#(literal)"#)
        return text
    }

    @Test(arguments: ["8e100000000", "-8e100000000", "1e-100000000"])
    func aFindingWithAHugeSeverityRunsThePlaybook(_ literal: String) async throws {
        let file = try CLI.temporaryFile(try Self.finding(severity: literal))
        for mode in [["--dry-run"], ["--cloud", "simulated"]] {
            let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-poison-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: dataDir) }
            let run = try await CLI.run(["process", "--data-dir", dataDir] + mode + [file])
            // 0 or 1 (a step may fail: the simulated inventory has no such user), never a signal.
            #expect(run.status == 0 || run.status == 1, "\(mode): exit \(run.status)\n\(run.stdout)\(run.stderr)")
            #expect(run.stdout.contains("guardduty-iam-credential-compromise"), "\(run.stdout)\(run.stderr)")
            let verify = try await CLI.run(["journal", "verify", "--data-dir", dataDir])
            #expect(verify.status == 0, "\(verify.stdout)")
        }
    }

    /// A pattern with a number no double holds is refused, as EventBridge refuses it,
    /// with a message saying why — not a trap; events with such numbers are answered.
    @Test(arguments: ["8e100000000", "-8e100000000", "1e-100000000"])
    func aPatternWithAHugeNumberIsRefusedAndAnEventWithOneIsAnswered(_ literal: String) async throws {
        let pattern = try CLI.temporaryFile(#"{"a": [{"numeric": ["<", \#(literal)]}]}"#)
        let refused = try await CLI.run(["match", "--pattern", pattern], stdin: "{\"a\":5}\n")
        #expect(refused.status == 2, "exit \(refused.status): \(refused.stderr)")
        #expect(refused.stderr.contains("cannot be compared"), "\(refused.stderr)")
        let usable = try CLI.temporaryFile(#"{"a": [{"numeric": ["<", 1e300]}]}"#)
        let result = try await CLI.run(["match", "--pattern", usable], stdin: "{\"a\":5}\n{\"a\":\(literal)}\n")
        #expect(result.status == 0, "exit \(result.status): \(result.stderr)")
        #expect(result.stdout.split(separator: "\n").map(String.init) == ["match", "no match"], "\(result.stdout)\(result.stderr)")
    }

    @Test func theLargestSeedRunsADrill() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-seed-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try await CLI.run(["drill", "Fixtures/drills/01-compromised-ec2-instance.yaml", "--seed", "18446744073709551615", "--data-dir", dir, "--format", "json"])
        #expect(r.status == 0 || r.status == 1, "exit \(r.status): \(r.stderr)")
        #expect(r.stdout.contains("\"seed\": 18446744073709551615"), "\(r.stdout.prefix(400))")
    }

    @Test func aMaxBodyBeyondWhatIntakeReadsIsRefused() async throws {
        let r = try await CLI.run(["run", "--listen", "127.0.0.1:0", "--api-key-secret", "K", "--max-body", "9223372036854775807", "--data-dir", "/nonexistent"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("--max-body must be 1 to 268435456"), "\(r.stderr)")
    }
}
