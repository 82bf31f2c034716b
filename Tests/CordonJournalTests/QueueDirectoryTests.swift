import CordonCore
import CordonEngine
import CordonIntake
import CordonJournal
import CordonTestSupport
import Foundation
import Synchronization
import Testing

@Suite struct QueueDirectoryTests {
    func drop(_ root: URL, _ name: String, _ text: String) throws {
        let tmp = root.appendingPathComponent(".\(name).tmp")
        try text.write(to: tmp, atomically: true, encoding: .utf8)
        try FileManager.default.moveItem(at: tmp, to: root.appendingPathComponent("incoming/\(name)"))
    }

    @Test func claimCompleteAndFail() throws {
        let root = try TempDir().url
        let queue = try QueueDirectory(root: root, create: true)
        try drop(root, "a.json", "{}")
        try drop(root, "b.json", "{}")
        try "x".write(to: root.appendingPathComponent("incoming/.partial"), atomically: true, encoding: .utf8)
        let a = try #require(try queue.claim())
        #expect(a.name == "a.json")
        #expect(FileManager.default.fileExists(atPath: a.url.path))
        try queue.complete(a)
        let b = try #require(try queue.claim())
        try queue.fail(b, reason: ["why": "test"])
        #expect(try queue.claim() == nil)  // the hidden file is never claimed
        #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("done/a.json").path))
        #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("failed/b.json").path))
        #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("failed/b.json.error.json").path))
    }

    @Test func aFileWithTheNameOfOneAlreadyDoneKeepsBoth() throws {
        let root = try TempDir().url
        let queue = try QueueDirectory(root: root, create: true)
        try drop(root, "a.json", "{\"n\":1}")
        try queue.complete(try #require(try queue.claim()))
        try drop(root, "a.json", "{\"n\":2}")
        try queue.complete(try #require(try queue.claim()))
        let done = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("done").path).sorted()
        #expect(done.count == 2)
        #expect(done.first == "a.json")
        #expect(done.last?.hasPrefix("a.json.") == true)
        // The first file was not replaced.
        #expect(try String(contentsOf: root.appendingPathComponent("done/a.json"), encoding: .utf8) == "{\"n\":1}")
    }

    @Test func concurrentRunnersNeverClaimAFileTwice() async throws {
        let root = try TempDir().url
        let queues = try (0..<4).map { _ in try QueueDirectory(root: root, create: true) }
        for i in 0..<400 { try drop(root, String(format: "f%04d.json", i), "{}") }
        final class Names: Sendable { let list = Mutex<[String]>([]) }
        let claimed = Names()
        await withTaskGroup(of: Void.self) { group in
            for queue in queues {
                group.addTask {
                    while let c = try? queue.claim() {
                        claimed.list.withLock { $0.append(c.name) }
                        try? queue.complete(c)
                    }
                }
            }
        }
        let names = claimed.list.withLock { $0 }
        #expect(names.count == 400)
        #expect(Set(names).count == 400)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("done").path).count == 400)
    }

    @Test func filesOfAStoppedRunnerAreTakenUpAgain() throws {
        let root = try TempDir().url
        let queue = try QueueDirectory(root: root, create: true)
        // A runner that died: its folder and an unlocked lock file.
        let dead = root.appendingPathComponent("processing/deadhost-1-abc")
        try FileManager.default.createDirectory(at: dead, withIntermediateDirectories: true)
        try "{}".write(to: dead.appendingPathComponent("left.json"), atomically: true, encoding: .utf8)
        try "".write(to: root.appendingPathComponent("processing/deadhost-1-abc.lock"), atomically: true, encoding: .utf8)
        // A live runner's files are left alone.
        let live = try QueueDirectory(root: root, create: true)
        try drop(root, "busy.json", "{}")
        let busy = try #require(try live.claim())
        #expect(try queue.recoverOrphans() == 1)
        #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("incoming/left.json").path))
        #expect(!FileManager.default.fileExists(atPath: dead.path))
        #expect(FileManager.default.fileExists(atPath: busy.url.path))
    }

    @Test func waitWakesWhenAFileArrives() async throws {
        let root = try TempDir().url
        let queue = try QueueDirectory(root: root, create: true)
        #expect(queue.watching)
        let generation = queue.generation
        let start = ContinuousClock.now
        // The producer on a thread of its own (GCD's global queues are as wide as the
        // machine has cores, and other tests in the suite may keep them busy).
        Thread.detachNewThread {
            usleep(200_000)
            try? self.drop(root, "x.json", "{}")
        }
        // Woken by inotify, long before the timeout (the bound is loose: the suite runs
        // CPU-heavy tests in parallel on few cores; latency is measured by the benchmark).
        await queue.wait(timeout: .seconds(120), after: generation)
        let elapsed = ContinuousClock.now - start
        #expect(elapsed < .seconds(60))
    }

    @Test func aWaitForFilesEndsWhenItsTaskIsCancelled() async throws {
        let root = try TempDir().url
        let queue = try QueueDirectory(root: root, create: true)
        #expect(queue.watching)
        let start = ContinuousClock.now
        // Cancelled while it waits…
        let waiting = Task { await queue.wait(timeout: .seconds(120)) }
        try await Task.sleep(for: .milliseconds(200))
        waiting.cancel()
        await waiting.value
        // …and cancelled before it starts waiting.
        let cancelled = Task {
            while !Task.isCancelled { await Task.yield() }
            await queue.wait(timeout: .seconds(120))
        }
        cancelled.cancel()
        await cancelled.value
        #expect(ContinuousClock.now - start < .seconds(60))
    }
}

/// A journal whose `durable()` waits until the test opens its gate: findings' commits
/// that the queue runner waits for before it acknowledges files, held back.
final class HeldDurableJournal: ForwardingJournal, @unchecked Sendable {
    let base: SQLiteJournal
    let open = Mutex(false)
    let held = Mutex(0)
    init(_ base: SQLiteJournal) { self.base = base }
    var wrapped: any Journal { base }

    func durable() async throws {
        held.withLock { $0 += 1 }
        while !open.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
        try await base.durable()
    }
}

@Suite struct QueueRunnerTests {
    @Test func filesThatArriveWhileABatchWaitsForItsAcknowledgementAreTakenAtOnce() async throws {
        let h = try EngineHarness(playbook: basicPlaybook)
        let journal = HeldDurableJournal(h.journal)
        let action = RecordingAction()
        let engine = Engine(
            config: h.config, actions: CoreActions.all.merging(["test.record": action]) { $1 }, journal: journal,
            evidence: h.journal.evidence, secrets: h.secrets, actor: "cordon/test")
        let root = try TempDir().url
        let queue = try QueueDirectory(root: root, create: true)
        #expect(queue.watching)
        // A long poll interval: only inotify can wake the intake in time.
        let runner = QueueRunner(queue: queue, engine: engine, concurrency: 4, pollInterval: .seconds(120))
        let stop = Mutex(false)
        let running = Task { try await runner.run(isStopping: { stop.withLock { $0 } }) }
        func drop(_ name: String, _ finding: Finding) throws {
            let tmp = root.appendingPathComponent(".\(name).tmp")
            try Data(finding.raw ?? JSONWriter.bytes(finding.event)).write(to: tmp)
            try FileManager.default.moveItem(at: tmp, to: root.appendingPathComponent("incoming/\(name)"))
        }
        func eventually(_ condition: () -> Bool) async throws -> Bool {
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                if condition() { return true }
                try await Task.sleep(for: .milliseconds(20))
            }
            return condition()
        }
        let done = root.appendingPathComponent("done")
        try drop("a.json", EngineHarness.finding(id: "f-a", instance: "i-a"))
        // Its two steps run (their intents are durable) while its batch waits to be
        // acknowledged.
        #expect(try await eventually { action.count == 2 && journal.held.withLock { $0 } >= 1 })
        // A file that arrives meanwhile is claimed and handled without waiting for that.
        try drop("b.json", EngineHarness.finding(id: "f-b", instance: "i-b"))
        #expect(try await eventually { action.count == 4 })
        // Neither file is acknowledged before its findings' commit is.
        #expect(try FileManager.default.contentsOfDirectory(atPath: done.path).isEmpty)
        journal.open.withLock { $0 = true }
        #expect(try await eventually { (try? FileManager.default.contentsOfDirectory(atPath: done.path).sorted()) == ["a.json", "b.json"] })
        // Cancelling the runner cuts the intake's wait for new files (120 s) short.
        stop.withLock { $0 = true }
        let stopped = ContinuousClock.now
        running.cancel()
        _ = await running.result
        #expect(ContinuousClock.now - stopped < .seconds(60))
        #expect(action.count == 4)
    }
}
