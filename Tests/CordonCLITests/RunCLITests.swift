import CordonCore
import CordonEngine
import CordonJournal
import CordonTestSupport
import Foundation
import Testing

@Suite(.serialized) struct RunCLITests {
    static let playbook = """
        name: record-everything
        version: 1
        description: test playbook using core actions only
        trigger: {source: [aws.guardduty]}
        incident: {key: "{{ detail.id }}"}
        steps:
          - id: note
            action: core.set
            with: {values: {finding: "{{ detail.id }}"}}
          - id: effect
            action: test.record
            with: {target: "{{ detail.id }}"}
          - id: log
            action: core.log
            with: {message: "handled {{ steps.note.output.values.finding }}"}
        """

    static let recorderIntegration = """
        name: test
        actions:
          record:
            inputs: {target: {required: true}}
            request: {method: POST, url: "http://127.0.0.1:9/{{ inputs.target }}"}
        """

    struct Setup {
        let root: URL
        var queue: URL { root.appendingPathComponent("queue") }
        var data: String { root.appendingPathComponent("data").path }
        var playbooks: String { root.appendingPathComponent("Playbooks").path }
        /// The "external system": one line per side effect.
        var recorder: String { root.appendingPathComponent("effects.log").path }

        init() throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-run-\(UUID().uuidString)")
            try FileManager.default.createDirectory(atPath: root.appendingPathComponent("Playbooks").path, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: root.appendingPathComponent("queue/incoming"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: root.appendingPathComponent("Integrations"), withIntermediateDirectories: true)
            try RunCLITests.recorderIntegration.write(to: root.appendingPathComponent("Integrations/test.yaml"), atomically: true, encoding: .utf8)
            try RunCLITests.playbook.write(toFile: playbooks + "/p.yaml", atomically: true, encoding: .utf8)
        }

        func drop(_ i: Int) throws {
            let text = #"{"version":"0","id":"e\#(i)","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"1","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":[],"detail":{"id":"f\#(i)","type":"Recon:EC2/PortProbeUnprotectedPort","severity":2,"updatedAt":"2026-03-01T10:00:00Z"}}"#
            let tmp = queue.appendingPathComponent(".f\(i).tmp")
            try text.write(to: tmp, atomically: true, encoding: .utf8)
            try FileManager.default.moveItem(at: tmp, to: queue.appendingPathComponent(String(format: "incoming/f%04d.json", i)))
        }

        func start(stderr: FileHandle? = nil, extra: [String] = []) throws -> Process {
            let p = Process()
            p.executableURL = CLI.testbed
            p.arguments = ["run", "--queue-dir", queue.path, "--data-dir", data, "--playbooks", playbooks, "--integrations", root.appendingPathComponent("Integrations").path] + extra
            var environment = ProcessInfo.processInfo.environment
            environment["CORDON_TEST_RECORDER_FILE"] = recorder
            p.environment = environment
            p.standardOutput = FileHandle.nullDevice
            p.standardError = stderr ?? FileHandle.nullDevice
            try Spawn.run(p)
            return p
        }

        func doneCount() -> Int {
            ((try? FileManager.default.contentsOfDirectory(atPath: queue.appendingPathComponent("done").path)) ?? []).count
        }

        func waitForDone(_ n: Int, seconds: Double = 60) async throws {
            let deadline = Date().addingTimeInterval(seconds)
            while doneCount() < n && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        }

        /// Side effects the recording action made so far.
        func effectCount() -> Int {
            ((try? String(contentsOfFile: recorder, encoding: .utf8)) ?? "").split(separator: "\n").count
        }

        /// Incidents the journal shows completed (read while a runner may be writing).
        func completedIncidents() async throws -> Int {
            guard FileManager.default.fileExists(atPath: data + "/journal.sqlite") else { return 0 }
            let journal = try SQLiteJournal(directory: DataDirectory(data), readOnly: true)
            return try await IncidentIndex.load(from: journal).incidents.values.filter { $0.status == "completed" }.count
        }

        func waitForCompleted(_ n: Int, seconds: Double = 60) async throws {
            let deadline = Date().addingTimeInterval(seconds)
            while try await completedIncidents() < n && Date() < deadline { try await Task.sleep(for: .milliseconds(200)) }
        }
    }

    /// Whether the package links jemalloc into the executables: as Package.swift decides.
    static var jemallocLinked: Bool {
        guard ProcessInfo.processInfo.environment["CORDON_ALLOCATOR"] != "system" else { return false }
        return ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"]
            .contains { FileManager.default.fileExists(atPath: $0 + "/libjemalloc.so") }
    }

    /// `--log-format json`: every line of standard error is a JSON object, and each
    /// incident event names its incident (and its step, for a step).
    @Test func logsIncidentEventsAsJSONLines() async throws {
        let s = try Setup()
        let stderrPath = s.root.appendingPathComponent("stderr.log").path
        #expect(FileManager.default.createFile(atPath: stderrPath, contents: nil))
        let runner = try s.start(stderr: FileHandle(forWritingAtPath: stderrPath), extra: ["--log-format", "json", "--log-level", "debug"])
        for i in 0..<3 { try s.drop(i) }
        try await s.waitForCompleted(3)
        runner.interrupt()
        await CLI.waitForExit(runner)
        #expect(runner.terminationStatus == 0)
        let lines = try String(contentsOfFile: stderrPath, encoding: .utf8).split(separator: "\n").map(String.init)
        var events: [[String: Any]] = []
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object != nil, "not a JSON object: \(line)")
            if let object { events.append(object) }
        }
        #expect(events.allSatisfy { $0["time"] is String && $0["level"] is String && $0["message"] is String })
        let opened = events.filter { $0["message"] as? String == "incident opened" }
        #expect(opened.count == 3, "\(lines)")
        #expect(opened.allSatisfy { ($0["incident"] as? String)?.hasPrefix("inc-") == true && $0["playbook"] as? String == "record-everything" })
        let steps = events.filter { $0["message"] as? String == "step succeeded" }
        #expect(steps.count == 9, "\(lines)")
        #expect(Set(steps.compactMap { $0["step"] as? String }) == ["note", "effect", "log"])
        #expect(events.filter { $0["message"] as? String == "finding received" }.count == 3, "debug level adds the findings received")
        // Names and ids only: the step's rendered message is in the journal, not the log.
        #expect(!lines.contains { $0.contains("handled f") })
    }

    @Test func processesTheQueueAndStopsCleanlyOnSIGTERM() async throws {
        let s = try Setup()
        let stderrPath = s.root.appendingPathComponent("stderr.log").path
        #expect(FileManager.default.createFile(atPath: stderrPath, contents: nil))
        let runner = try s.start(stderr: FileHandle(forWritingAtPath: stderrPath))
        for i in 0..<20 { try s.drop(i) }
        try await s.waitForDone(20)
        #expect(s.doneCount() == 20)
        try await s.waitForCompleted(20)
        runner.terminate()
        await CLI.waitForExit(runner)
        #expect(runner.terminationStatus == 0)
        // The start line says which allocator serves the runner: jemalloc when the build
        // found it (Package.swift), else the system's malloc.
        let stderr = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        #expect(stderr.contains("memory allocator \(Self.jemallocLinked ? "jemalloc" : "system malloc")"), "\(stderr)")
        let verify = try await CLI.run(["journal", "verify", "--data-dir", s.data])
        #expect(verify.status == 0, "\(verify.stdout)")
        let incidents = try await CLI.run(["incidents", "--data-dir", s.data])
        #expect(incidents.stdout.split(separator: "\n").count == 20)
        #expect(!incidents.stdout.contains("running"))
    }

    @Test func aDedupeWindowTooSmallToMeanAnythingIsRefused() async throws {
        let s = try Setup()
        let refused = try await CLI.run(["run", "--queue-dir", s.queue.path, "--data-dir", s.data, "--playbooks", s.playbooks, "--dedupe-window", "10"])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("--dedupe-window must be 1000 to 100000000"))
        #expect(!FileManager.default.fileExists(atPath: s.data + "/journal.sqlite"), "refused before the journal is opened")
    }

    /// A source that fails (here: `done/` replaced by a file, so an acknowledged file
    /// cannot be moved) stops the runner with exit status 1, not 0; what was journaled
    /// stays, and the journal verifies.
    @Test func aFailingSourceStopsTheRunWithStatusOne() async throws {
        let s = try Setup()
        let stderrPath = s.root.appendingPathComponent("stderr.log").path
        #expect(FileManager.default.createFile(atPath: stderrPath, contents: nil))
        let runner = try s.start(stderr: FileHandle(forWritingAtPath: stderrPath))
        for i in 0..<3 { try s.drop(i) }
        try await s.waitForDone(3)
        #expect(s.doneCount() == 3)
        let done = s.queue.appendingPathComponent("done")
        try FileManager.default.removeItem(at: done)
        try Data("not a directory".utf8).write(to: done)
        try s.drop(3)
        let deadline = Date().addingTimeInterval(60)
        while runner.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        if runner.isRunning { runner.interrupt() }
        await CLI.waitForExit(runner)
        let stderr = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        #expect(runner.terminationStatus == 1, "\(stderr)")
        #expect(stderr.contains("cannot move"), "\(stderr)")
        #expect(stderr.contains("stopped after an error"), "\(stderr)")
        let verify = try await CLI.run(["journal", "verify", "--data-dir", s.data])
        #expect(verify.status == 0, "\(verify.stdout)")
        let journal = try SQLiteJournal(directory: DataDirectory(s.data), readOnly: true)
        let received = try await journal.records(from: 1, limit: 1_000).filter { $0.kind == RecordKind.findingReceived }
        #expect(received.compactMap { $0.data["finding"]?["id"]?.stringValue }.sorted() == ["e0", "e1", "e2", "e3"], "the fourth finding was journaled before its file could not be moved")
    }

    /// kill -9 at random moments while hundreds of findings flow; after the last restart
    /// every finding is handled once, every incident is complete and the journal verifies.
    @Test func survivesKillDashNineAtRandomMoments() async throws {
        let s = try Setup()
        let total = 1000
        for i in 0..<total { try s.drop(i) }
        var random = SystemRandomNumberGenerator()
        for _ in 0..<5 {
            // Each runner is killed at a random moment soon after its first side effect.
            let before = s.effectCount()
            let runner = try s.start()
            let deadline = Date().addingTimeInterval(60)
            while s.effectCount() <= before && Date() < deadline { try await Task.sleep(for: .milliseconds(5)) }
            try await Task.sleep(for: .milliseconds(Int64.random(in: 0...30, using: &random)))
            kill(runner.processIdentifier, SIGKILL)
            await CLI.waitForExit(runner)
        }
        // The kills landed mid-stream: some side effects happened, not all.
        let effectsAfterKills = s.effectCount()
        #expect(effectsAfterKills > 0 && effectsAfterKills < total, "side effects after the kills: \(effectsAfterKills)")
        let last = try s.start()
        try await s.waitForDone(total, seconds: 120)
        try await s.waitForCompleted(total, seconds: 120)
        try await Task.sleep(for: .milliseconds(300))
        last.terminate()
        await CLI.waitForExit(last)
        #expect(s.doneCount() == total)
        let journal = try SQLiteJournal(directory: DataDirectory(s.data))
        let index = try await IncidentIndex.load(from: journal)
        #expect(index.incidents.count == total)
        #expect(index.incidents.values.allSatisfy { $0.status == "completed" }, "\(index.incidents.values.filter { $0.status != "completed" }.map { "\($0.id) \($0.status)" })")
        // Each finding opened exactly one incident and each step succeeded exactly once.
        var succeeded: [String: Int] = [:]
        var next: Int64 = 1
        while true {
            let batch = try await journal.records(from: next, limit: 1000)
            guard let lastRecord = batch.last else { break }
            for r in batch where r.kind == RecordKind.stepSucceeded { succeeded["\(r.incident ?? "")/\(r.data["step"]?.stringValue ?? "")", default: 0] += 1 }
            next = lastRecord.seq + 1
        }
        #expect(succeeded.count == total * 3)
        #expect(succeeded.values.allSatisfy { $0 == 1 })
        // Counted at the target: exactly one side effect per finding, none repeated.
        let effects = try String(contentsOfFile: s.recorder, encoding: .utf8).split(separator: "\n").map { $0.split(separator: " ")[1] }
        #expect(effects.count == total, "\(effects.count) side effects for \(total) findings")
        #expect(Set(effects).count == total)
        let verify = try await CLI.run(["journal", "verify", "--data-dir", s.data])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
    }
}
