import CordonCore
import CordonEngine
import CordonJournal
import CordonTestSupport
import Foundation
import Testing

/// Decisions made with `cordon approve` while `cordon run` runs: the runner takes them in
/// within a second, the first decision is final, a timeout never overrides it, and a
/// second decision is refused naming the first. Side effects are counted at a local HTTP
/// receiver, not in the journal.
@Suite(.serialized) struct DecisionCLITests {
    /// Long enough for a loaded machine (the suite runs other heavy tests beside these,
    /// such as a 1,500-connection flood) to see the approval pending and decide before it.
    static let timeout = 30

    static let playbook = """
        name: approve-webhook
        version: 1
        description: A webhook that waits for a person's approval.
        trigger: {source: [aws.guardduty]}
        incident: {key: "{{ detail.id }}"}
        steps:
          - id: notify
            action: webhook.send
            with: {text: "finding {{ detail.id }}"}
            approval: {timeout: \(timeout)s, on_timeout: proceed}
            retry: {attempts: 1}
        """

    struct Runner {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-decide-\(UUID().uuidString)")
        var queue: URL { root.appendingPathComponent("queue") }
        var data: String { root.appendingPathComponent("data").path }
        var playbooks: String { root.appendingPathComponent("Playbooks").path }
        let receiver: RecordingReceiver

        init() throws {
            receiver = try RecordingReceiver()
            try FileManager.default.createDirectory(at: queue.appendingPathComponent("incoming"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: playbooks, withIntermediateDirectories: true)
            try DecisionCLITests.playbook.write(toFile: playbooks + "/p.yaml", atomically: true, encoding: .utf8)
        }

        var environment: [String: String] { ["WEBHOOK_URL": receiver.url, "WEBHOOK_SIGNING_SECRET": "test-signing-secret"] }

        func start() throws -> Process {
            let p = Process()
            p.executableURL = CLI.executable
            p.currentDirectoryURL = CLI.packageRoot
            p.arguments = ["run", "--queue-dir", queue.path, "--data-dir", data, "--playbooks", playbooks, "--poll-interval", "100ms"]
            var env = ProcessInfo.processInfo.environment
            for (k, v) in environment { env[k] = v }
            p.environment = env
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try Spawn.run(p)
            return p
        }

        func drop(_ id: String) throws {
            let text = #"{"version":"0","id":"\#(id)","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"1","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":[],"detail":{"id":"\#(id)","type":"Recon:EC2/PortProbeUnprotectedPort","severity":2,"updatedAt":"2026-03-01T10:00:00Z"}}"#
            let tmp = queue.appendingPathComponent(".\(id).tmp")
            try text.write(to: tmp, atomically: true, encoding: .utf8)
            try FileManager.default.moveItem(at: tmp, to: queue.appendingPathComponent("incoming/\(id).json"))
        }

        /// The incident of finding `id` once it awaits approval (its key is the finding id).
        func pending(_ id: String, seconds: Double = 60) async throws -> String {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                // The runner may be creating the journal: try again until it can be read.
                if FileManager.default.fileExists(atPath: data + "/journal.sqlite"), let journal = try? SQLiteJournal(directory: DataDirectory(data), readOnly: true),
                    let index = try? await IncidentIndex.load(from: journal),
                    let incident = index.incidents.values.first(where: { $0.key == id && $0.pendingApproval == "notify" })
                {
                    return incident.id
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw TestFailure("no approval pending for \(id) within \(seconds) s")
        }

        /// The incident's `approval.decided` records.
        func decisions(_ incident: String) async throws -> [JournalRecord] {
            let journal = try SQLiteJournal(directory: DataDirectory(data), readOnly: true)
            return try await journal.records(incident: incident).filter { $0.kind == RecordKind.approvalDecided }
        }

        func approve(_ incident: String, by: String, deny: Bool = false, reason: String? = nil) async throws -> CLI.Result {
            var arguments = ["approve", incident, "notify", "--by", by, "--data-dir", data, "--playbooks", playbooks]
            if deny { arguments.append("--deny") }
            if let reason { arguments += ["--reason", reason] }
            return try await CLI.run(arguments, environment: environment)
        }
    }

    @Test func aDenialFromAnotherProcessHoldsAndAnApprovalRunsOnceWithinASecond() async throws {
        let r = try Runner()
        defer {
            r.receiver.stop()
            try? FileManager.default.removeItem(at: r.root)
        }
        let runner = try r.start()
        try r.drop("f-deny")
        let denied = try await r.pending("f-deny")

        // Denied from another process: the runner holds the step, past the timeout too.
        let deny = try await r.approve(denied, by: "oncall", deny: true, reason: "not in prod")
        #expect(deny.status == 0, "\(deny.stdout)\(deny.stderr)")
        #expect(deny.stdout.contains("denied notify of \(denied) by oncall"), "\(deny.stdout)")
        #expect(deny.stdout.contains("cordon run (pid \(runner.processIdentifier)"), "the runner continues the incident: \(deny.stdout)")

        // Approved from another process: the runner calls the receiver within a second.
        try r.drop("f-approve")
        let approved = try await r.pending("f-approve")
        let approve = try await r.approve(approved, by: "lead")
        #expect(approve.status == 0, "\(approve.stdout)\(approve.stderr)")
        let deadline = Date().addingTimeInterval(10)
        while r.receiver.requests.isEmpty && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let decision = try #require(try await r.decisions(approved).first)
        let decidedAt = try #require(Timestamp.parse(decision.time)).timeIntervalSince1970
        let first = try #require(r.receiver.requests.first)
        #expect(first.body.contains("finding f-approve"))
        print("decision journaled → receiver called: \(Int((first.time - decidedAt) * 1000)) ms")
        #expect(first.time - decidedAt < 1.0, "the action started \(first.time - decidedAt) s after the decision")

        // Past the approval timeout: no timeout applied to either; one decision each.
        try await Task.sleep(for: .seconds(Self.timeout + 2))
        runner.terminate()
        await CLI.waitForExit(runner)
        #expect(runner.terminationStatus == 0)
        let bodies = r.receiver.requests.map(\.body)
        #expect(bodies.count == 1, "\(bodies)")
        #expect(!bodies.contains { $0.contains("f-deny") })
        #expect(try await r.decisions(denied).count == 1)
        #expect(try await r.decisions(approved).count == 1)
        let shown = try await CLI.run(["show", denied, "--data-dir", r.data])
        #expect(shown.stdout.contains("skipped           notify"), "\(shown.stdout)")
        #expect(shown.stdout.contains("approval denied"), "\(shown.stdout)")

        // A second decision is refused, naming the first.
        let again = try await r.approve(denied, by: "someone-else")
        #expect(again.status == 2)
        #expect(again.stderr.contains("already denied by user:oncall at"), "\(again.stderr)")
        #expect(again.stderr.contains("not in prod"), "\(again.stderr)")
        #expect(try await r.decisions(denied).count == 1)
        let verify = try await CLI.run(["journal", "verify", "--data-dir", r.data])
        #expect(verify.status == 0, "\(verify.stdout)")
    }

    /// Without a runner, `cordon approve` continues the incident itself, once; the
    /// approval's timeout, applied later by a runner, changes nothing.
    @Test func withoutARunnerTheApprovingCommandRunsTheStepOnce() async throws {
        let r = try Runner()
        defer {
            r.receiver.stop()
            try? FileManager.default.removeItem(at: r.root)
        }
        let runner = try r.start()
        try r.drop("f-alone")
        let incident = try await r.pending("f-alone")
        runner.terminate()
        await CLI.waitForExit(runner)
        let approve = try await r.approve(incident, by: "lead")
        #expect(approve.status == 0, "\(approve.stdout)\(approve.stderr)")
        #expect(approve.stdout.contains("succeeded         notify"), "\(approve.stdout)")
        #expect(r.receiver.requests.count == 1)
        // A runner started after the timeout applies nothing: the decision was made.
        try await Task.sleep(for: .seconds(Self.timeout))
        let later = try r.start()
        try await Task.sleep(for: .seconds(3))
        later.terminate()
        await CLI.waitForExit(later)
        #expect(r.receiver.requests.count == 1)
        #expect(try await r.decisions(incident).count == 1)
    }

    /// The data directory has one runner: a second is refused, naming the first.
    @Test func aSecondRunnerOnTheSameDataDirectoryIsRefused() async throws {
        let r = try Runner()
        defer {
            r.receiver.stop()
            try? FileManager.default.removeItem(at: r.root)
        }
        let runner = try r.start()
        try r.drop("f-one")
        _ = try await r.pending("f-one")
        let second = try await CLI.run(["run", "--queue-dir", r.queue.path, "--data-dir", r.data, "--playbooks", r.playbooks], environment: r.environment)
        #expect(second.status == 2)
        #expect(second.stderr.contains("cordon run (pid \(runner.processIdentifier)"), "\(second.stderr)")
        let process = try await CLI.run(["process", "--data-dir", r.data, "--playbooks", r.playbooks, "Fixtures/findings"], environment: r.environment)
        #expect(process.status == 2)
        #expect(process.stderr.contains("hand it findings through its queue directory"), "\(process.stderr)")
        runner.terminate()
        await CLI.waitForExit(runner)
    }
}
