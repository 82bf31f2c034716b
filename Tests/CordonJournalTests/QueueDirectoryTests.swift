import CordonCore
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
        let queue = try QueueDirectory(root: root)
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
        let queue = try QueueDirectory(root: root)
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
        let queues = try (0..<4).map { _ in try QueueDirectory(root: root) }
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
        let queue = try QueueDirectory(root: root)
        // A runner that died: its folder and an unlocked lock file.
        let dead = root.appendingPathComponent("processing/deadhost-1-abc")
        try FileManager.default.createDirectory(at: dead, withIntermediateDirectories: true)
        try "{}".write(to: dead.appendingPathComponent("left.json"), atomically: true, encoding: .utf8)
        try "".write(to: root.appendingPathComponent("processing/deadhost-1-abc.lock"), atomically: true, encoding: .utf8)
        // A live runner's files are left alone.
        let live = try QueueDirectory(root: root)
        try drop(root, "busy.json", "{}")
        let busy = try #require(try live.claim())
        #expect(try queue.recoverOrphans() == 1)
        #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("incoming/left.json").path))
        #expect(!FileManager.default.fileExists(atPath: dead.path))
        #expect(FileManager.default.fileExists(atPath: busy.url.path))
    }

    @Test func waitWakesWhenAFileArrives() async throws {
        let root = try TempDir().url
        let queue = try QueueDirectory(root: root)
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
}
