import CordonCore
import CordonJournal
import CordonTestSupport
import Foundation
import GRDB
import Testing

/// `--anchor file:PATH`: every checkpoint's head reaches the witness; `journal verify
/// --anchor` finds truncation and rewrites the journal alone cannot show; a witness that
/// fails never stops containment.
@Suite struct WitnessCLITests {
    static let findings = [
        "Fixtures/playbooks/guardduty-ec2-quarantine/fires-backdoor-cc-prod-instance.json",
        "Fixtures/playbooks/guardduty-ec2-quarantine/fires-bitcoin-tool-staging-instance.json",
        "Fixtures/playbooks/guardduty-ec2-quarantine/fires-tor-client-eu-west-1.json",
    ]

    let root = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-witness-\(UUID().uuidString)")
    var data: String { root.appendingPathComponent("data").path }
    var witnessFile: String { root.appendingPathComponent("witness/heads.jsonl").path }

    func process(_ file: String, anchor: String) async throws -> CLI.Result {
        try await CLI.run(["process", "--dry-run", "--data-dir", data, "--anchor", anchor, file])
    }

    func heads() throws -> [Checkpoint] {
        try String(contentsOfFile: witnessFile, encoding: .utf8).split(separator: "\n").map { try Checkpoint(line: String($0)) }
    }

    func tamper(_ sql: String) throws {
        let db = try DatabaseQueue(path: data + "/journal.sqlite", configuration: .waiting)
        try db.write { try $0.execute(sql: sql) }
    }

    @Test func everyCheckpointIsWitnessedAndTruncationShows() async throws {
        try FileManager.default.createDirectory(atPath: root.appendingPathComponent("witness").path, withIntermediateDirectories: true)
        for file in Self.findings {
            let result = try await process(file, anchor: "file:" + witnessFile)
            #expect(result.status == 0, "\(result.stderr)")
        }
        let witnessed = try heads()
        let journal = try SQLiteJournal(directory: DataDirectory(data), readOnly: true)
        let checkpoints = try await journal.checkpoints(from: 0)
        // Each command's last checkpoint reached the witness, in order.
        #expect(witnessed.count >= Self.findings.count)
        #expect(witnessed.map(\.seq) == witnessed.map(\.seq).sorted())
        #expect(witnessed.last == checkpoints.last)
        let verified = try await CLI.run(["journal", "verify", "--data-dir", data, "--anchor", "file:" + witnessFile])
        #expect(verified.status == 0, "\(verified.stdout)")
        #expect(verified.stdout.contains("witness file:\(witnessFile) saw seq \(witnessed.last?.seq ?? -1)"))

        // Cut back to the second command's checkpoint, records and checkpoints after it
        // gone: the journal alone still verifies; the witness shows what was lost.
        let cut = witnessed[witnessed.count - 2].seq
        let last = try #require(witnessed.last).seq
        try tamper("DELETE FROM records WHERE seq > \(cut); DELETE FROM checkpoints WHERE seq > \(cut); DELETE FROM incidents WHERE first_seq > \(cut)")
        #expect(try await CLI.run(["journal", "verify", "--data-dir", data]).status == 0)
        let caught = try await CLI.run(["journal", "verify", "--data-dir", data, "--anchor", "file:" + witnessFile])
        #expect(caught.status == 1)
        #expect(
            caught.stdout.contains("seq \(cut + 1): truncated: the journal ends at seq \(cut), but witness file:\(witnessFile) saw it signed up to seq \(last)"),
            "\(caught.stdout)")
    }

    @Test func removedCheckpointsShow() async throws {
        try FileManager.default.createDirectory(atPath: root.appendingPathComponent("witness").path, withIntermediateDirectories: true)
        for file in Self.findings.prefix(2) { #expect(try await process(file, anchor: "file:" + witnessFile).status == 0) }
        let last = try #require(try heads().last).seq
        // The newest checkpoints removed, records kept: within the unsigned tail's bound.
        let previous = try #require(try heads().dropLast().last).seq
        try tamper("DELETE FROM checkpoints WHERE seq > \(previous)")
        let removed = try await CLI.run(["journal", "verify", "--data-dir", data, "--anchor", "file:" + witnessFile])
        #expect(removed.status == 1)
        #expect(removed.stdout.contains("checkpoints removed: the journal's newest checkpoint is at seq \(previous), but witness"), "\(removed.stdout)")
        _ = last
    }

    @Test func aFailingWitnessNeverStopsContainmentAndCatchesUpLater() async throws {
        // The witness's directory does not exist yet: writing to it fails.
        let result = try await process(Self.findings[0], anchor: "file:" + witnessFile)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("did not take checkpoint seq"), "\(result.stderr)")
        #expect(result.stderr.contains("the next command that writes the journal sends it"))
        #expect(try await CLI.run(["incidents", "--data-dir", data]).stdout.contains("inc-"))
        // Once the witness can be written, the next command sends what it missed.
        try FileManager.default.createDirectory(atPath: root.appendingPathComponent("witness").path, withIntermediateDirectories: true)
        #expect(try await process(Self.findings[1], anchor: "file:" + witnessFile).status == 0)
        let journal = try SQLiteJournal(directory: DataDirectory(data), readOnly: true)
        #expect(try heads().last?.seq == (try await journal.checkpoints(from: 0)).last?.seq)
        let verified = try await CLI.run(["journal", "verify", "--data-dir", data, "--anchor", "file:" + witnessFile])
        #expect(verified.status == 0, "\(verified.stdout)")
    }

    /// A runner sends checkpoints as it signs them: a witness that cannot be written is
    /// retried while incidents go on, and catches up once it can; the last checkpoint, at
    /// shutdown, reaches it too.
    @Test func aRunnerWitnessesWhileRunningAndRetriesAFailingWitness() async throws {
        let s = try RunCLITests.Setup()
        let witnessDir = s.root.appendingPathComponent("witness")
        let witness = witnessDir.appendingPathComponent("heads.jsonl").path
        let stderrPath = s.root.appendingPathComponent("stderr.log").path
        #expect(FileManager.default.createFile(atPath: stderrPath, contents: nil))
        let runner = try s.start(stderr: FileHandle(forWritingAtPath: stderrPath), extra: ["--anchor", "file:" + witness])
        // Enough findings for the writer to sign while running (every 100 records).
        for i in 0..<60 { try s.drop(i) }
        try await s.waitForCompleted(60)
        #expect(s.effectCount() == 60)
        let deadline = Date().addingTimeInterval(30)
        func logged() -> String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
        while !logged().contains("witness did not take checkpoint seq") && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(logged().contains("witness did not take checkpoint seq"), "\(logged())")
        // The witness can be written now: the runner's retry gets there.
        try FileManager.default.createDirectory(at: witnessDir, withIntermediateDirectories: true)
        while !FileManager.default.fileExists(atPath: witness) && Date() < deadline.addingTimeInterval(30) { try await Task.sleep(for: .milliseconds(100)) }
        #expect(try heads(at: witness).isEmpty == false)
        #expect(runner.isRunning)
        runner.interrupt()
        await CLI.waitForExit(runner)
        #expect(runner.terminationStatus == 0)
        let journal = try SQLiteJournal(directory: DataDirectory(s.data), readOnly: true)
        #expect(try heads(at: witness).last == (try await journal.checkpoints(from: 0)).last)
        let verified = try await CLI.run(["journal", "verify", "--data-dir", s.data, "--anchor", "file:" + witness])
        #expect(verified.status == 0, "\(verified.stdout)")
    }

    func heads(at path: String) throws -> [Checkpoint] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { try Checkpoint(line: String($0)) }
    }
}
