import ArgumentParser
import CordonCore
import CordonJournal
import Foundation

struct JournalBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "journal",
        abstract: "Journal append throughput (synchronous=FULL, group commit) and verify throughput.",
        discussion: """
            Appends --records records from --writers concurrent tasks to a fresh journal in \
            --dir (default: a temporary directory on the same disk as the working directory), \
            each append awaited until durable, then verifies the whole journal, and prints \
            records per second for both.
            """)

    @Option(help: "Records to append in all.")
    var records = 100_000

    @Option(help: "Concurrent writers.")
    var writers = 8

    @Option(help: "Appends each writer keeps in flight at once (1: every append awaited before the next).")
    var inFlight = 1

    @Option(help: "Directory for the journal (removed afterwards).")
    var dir: String = "./.build/bench-journal"

    func run() async throws {
        let path = dir + "/\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let journal = try SQLiteJournal(directory: DataDirectory(path))
        let perWriter = records / writers
        let clock = ContinuousClock()
        let appendTime = try await clock.measure {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for w in 0..<writers {
                    group.addTask {
                        // A typical step record (about 300 bytes canonical).
                        let data: JSONValue = [
                            "step": "isolate", "action": "aws.ec2.isolate_instance", "attempt": 1,
                            "target": .string("i-0\(w)abcdef0123456"), "outputs": ["previous_groups": ["sg-0123456789abcdef0"]],
                            "idempotency_key": "3f2a9c1e5b7d4f60a8e2c9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1",
                        ]
                        let incident = "incident-\(w)"
                        let record = NewRecord(incident: incident, kind: RecordKind.stepSucceeded, actor: "cordon-bench", data: data)
                        if inFlight <= 1 {
                            for _ in 0..<perWriter { try await journal.append(record) }
                        } else {
                            try await withThrowingTaskGroup(of: Void.self) { lanes in
                                for lane in 0..<inFlight {
                                    lanes.addTask {
                                        for _ in stride(from: lane, to: perWriter, by: inFlight) { try await journal.append(record) }
                                    }
                                }
                                try await lanes.waitForAll()
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        try await journal.close()
        let total = perWriter * writers
        let appendSeconds = appendTime.seconds
        print(String(format: "append: %d records from %d writers (%d in flight each) in %.2f s = %.0f records/s (synchronous=FULL, each append awaited until durable)", total, writers, inFlight, appendSeconds, Double(total) / appendSeconds))
        var report: VerificationReport? = nil
        let verifyTime = try clock.measure { report = try JournalVerifier(directory: DataDirectory(path)).verify() }
        let verifySeconds = verifyTime.seconds
        print(String(format: "verify: %d records, %d checkpoints in %.2f s = %.0f records/s (%@)", report!.records, report!.checkpoints, verifySeconds, Double(report!.records) / verifySeconds, report!.isValid ? "valid" : "INVALID"))
        if !report!.isValid { throw ExitCode(1) }
    }

}
