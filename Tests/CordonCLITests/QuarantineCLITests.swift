import CordonCore
import CordonEngine
import CordonJournal
import CordonTestSupport
import Foundation
import Testing

/// The safety net for crashes nobody has found yet: work in progress during two crashes
/// in a row is quarantined, and the runner comes up and keeps serving. The crash is a
/// real fault signal (SIGSEGV) delivered while an incident's step runs, which the
/// runner's handler records as it would a trap; `kill -9` is not a crash and never
/// quarantines anything (RunCLITests, OutbreakCLITests).
@Suite(.serialized) struct QuarantineCLITests {
    static let playbook = """
        name: slow
        version: 1
        description: A step that takes a while, so that the runner is in the middle of it.
        trigger: {source: [aws.guardduty]}
        incident: {key: "{{ detail.id }}"}
        steps:
          - id: hold
            action: core.wait
            with: {duration: "{{ detail.type }}"}
        """

    struct Setup {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-quarantine-\(UUID().uuidString)")
        var queue: URL { root.appendingPathComponent("queue") }
        var data: String { root.appendingPathComponent("data").path }
        var playbooks: String { root.appendingPathComponent("Playbooks").path }

        init() throws {
            try FileManager.default.createDirectory(at: queue.appendingPathComponent("incoming"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: playbooks, withIntermediateDirectories: true)
            try QuarantineCLITests.playbook.write(toFile: playbooks + "/p.yaml", atomically: true, encoding: .utf8)
        }

        /// A finding whose step waits `duration`.
        func drop(_ id: String, duration: String, updatedAt: String = "2026-03-01T10:00:00Z") throws {
            let text = #"{"version":"0","id":"\#(id)","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"1","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":[],"detail":{"id":"\#(id)","type":"\#(duration)","severity":2,"updatedAt":"\#(updatedAt)"}}"#
            let name = "\(id)-\(updatedAt.filter(\.isNumber))"
            let tmp = queue.appendingPathComponent(".\(name).tmp")
            try text.write(to: tmp, atomically: true, encoding: .utf8)
            try FileManager.default.moveItem(at: tmp, to: queue.appendingPathComponent("incoming/\(name).json"))
        }

        func start() throws -> ListenCLITests.Runner {
            try ListenCLITests.Runner(
                ["--queue-dir", queue.path, "--data-dir", data, "--playbooks", playbooks, "--listen", "127.0.0.1:0", "--api-key-secret", "QKEY",
                 "--poll-interval", "100ms", "--shutdown-timeout", "1s"],
                environment: ["QKEY": "quarantine-test-key"])
        }

        /// The incidents (none while the runner is still creating the journal).
        func incidents() async throws -> [IncidentIndex.Incident] {
            guard FileManager.default.fileExists(atPath: data + "/journal.sqlite"), let journal = try? SQLiteJournal(directory: DataDirectory(data), readOnly: true),
                let index = try? await IncidentIndex.load(from: journal)
            else { return [] }
            return Array(index.incidents.values)
        }

        /// Waits until the incident of finding `key` has its step running.
        func running(_ key: String, seconds: Double = 30) async throws {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if try await incidents().contains(where: { $0.key == key && $0.steps["hold"]?.status == "running" }) { return }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw TestFailure("the step of \(key) did not start within \(seconds) s")
        }

        /// Sends SIGSEGV and waits for the runner to die of it.
        func crash(_ runner: ListenCLITests.Runner) async {
            kill(runner.process.processIdentifier, SIGSEGV)
            await CLI.waitForExit(runner.process)
        }
    }

    @Test func workInProgressDuringTwoCrashesInARowIsQuarantinedAndTheRunnerServesOn() async throws {
        let s = try Setup()
        defer { try? FileManager.default.removeItem(at: s.root) }
        try s.drop("f-poison", duration: "60s")

        // First crash: the incident's step is running.
        let first = try s.start()
        try await s.running("f-poison")
        await s.crash(first)
        #expect(first.process.terminationReason == .uncaughtSignal, "\(first.text)")
        let log = (try? String(contentsOfFile: s.data + "/crashes.log", encoding: .utf8)) ?? ""
        #expect(log.contains("crash \(first.process.processIdentifier) signal \(SIGSEGV)"), "\(log)")
        let incident = try #require(try await s.incidents().first { $0.key == "f-poison" }?.id)
        #expect(log.contains("item i:\(incident)"), "\(log)")

        // Second crash: the step was taken up again (resumed) and is running again.
        let second = try s.start()
        #expect(try await second.port("http://127.0.0.1:") != nil, "\(second.text)")
        #expect(!second.text.contains("quarantined"), "one crash quarantines nothing: \(second.text)")
        try await s.running("f-poison")
        await s.crash(second)

        // The next start quarantines it, comes up, and serves new findings.
        let third = try s.start()
        let port = try #require(try await third.port("http://127.0.0.1:"), "\(third.text)")
        #expect(third.text.contains("quarantined 1 finding(s) or incident(s)"), "\(third.text)")
        try s.drop("f-next", duration: "1ms")
        let deadline = Date().addingTimeInterval(30)
        while try await !s.incidents().contains(where: { $0.key == "f-next" && $0.state == .contained }) && Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        let incidents = try await s.incidents()
        #expect(incidents.first { $0.key == "f-next" }?.state == .contained, "the runner serves on")
        let quarantined = try #require(incidents.first { $0.id == incident })
        #expect(quarantined.status == "quarantined")
        #expect(quarantined.quarantine?.contains("last two runs crashed") == true, "\(quarantined.quarantine ?? "")")
        let (status, metrics) = try await ListenCLITests.curl(["-H", "X-Cordon-Api-Key: quarantine-test-key", "http://127.0.0.1:\(port)/metrics"])
        #expect(status == 200)
        #expect(metrics.contains("cordon_quarantined 1.0\n"), "\(metrics)")
        #expect(metrics.contains(#"cordon_incidents{playbook="slow",state="contained"} 1.0"# + "\n"), "\(metrics)")
        // A newer version of the quarantined finding (same key): a new incident follows it.
        try s.drop("f-poison", duration: "1ms", updatedAt: "2026-03-01T11:00:00Z")
        let followDeadline = Date().addingTimeInterval(30)
        while try await !s.incidents().contains(where: { $0.follows == incident && $0.state == .contained }) && Date() < followDeadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await s.incidents().contains { $0.follows == incident && $0.state == .contained }, "containment goes on for the key")
        #expect(await third.stop() == 0, "\(third.text)")

        // Never taken up again automatically: a fourth start resumes nothing.
        let fourth = try s.start()
        #expect(try await fourth.port("http://127.0.0.1:") != nil)
        try await Task.sleep(for: .milliseconds(500))
        #expect(!fourth.text.contains("resuming"), "\(fourth.text)")
        #expect(await fourth.stop() == 0)
        let list = try await CLI.run(["incidents", "--data-dir", s.data])
        #expect(list.stdout.contains("\(incident)") && list.stdout.contains("quarantined"), "\(list.stdout)")
        let verify = try await CLI.run(["journal", "verify", "--data-dir", s.data, "--allow-unsigned-tail"])
        #expect(verify.status == 0, "\(verify.stdout)")
    }

    /// What was in progress at a crash is taken up one item at a time after it: a second
    /// crash then quarantines the one item being taken up, not everything that was
    /// resumed beside it.
    @Test func afterACrashOnlyTheItemInProgressAtTheNextOneIsQuarantined() async throws {
        let s = try Setup()
        defer { try? FileManager.default.removeItem(at: s.root) }
        try s.drop("f-a", duration: "60s")
        try s.drop("f-b", duration: "60s")
        let first = try s.start()
        try await s.running("f-a")
        try await s.running("f-b")
        await s.crash(first)
        let second = try s.start()
        #expect(try await second.port("http://127.0.0.1:") != nil, "\(second.text)")
        // One of the two is taken up (its step runs again); the other waits its turn.
        let deadline = Date().addingTimeInterval(30)
        var resumed: [IncidentIndex.Incident] = []
        while Date() < deadline {
            resumed = try await s.incidents().filter { $0.steps["hold"]?.attempts == 2 }
            if !resumed.isEmpty { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await s.incidents().filter { $0.steps["hold"]?.attempts == 2 }.count == 1, "one at a time")
        await s.crash(second)
        let third = try s.start()
        #expect(try await third.port("http://127.0.0.1:") != nil, "\(third.text)")
        #expect(third.text.contains("quarantined 1 finding(s) or incident(s)"), "\(third.text)")
        let incidents = try await s.incidents()
        #expect(incidents.filter { $0.status == "quarantined" }.map(\.id) == resumed.map(\.id))
        #expect(incidents.filter { $0.status == "running" }.count == 1, "the other is taken up")
        #expect(await third.stop() == 0)
    }
}
