import CordonCore
import CCordonSys
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A queue directory (`cordon run --queue-dir DIR`):
///
/// - producers write a file anywhere in DIR (not in `incoming/`), then rename it into
///   `DIR/incoming/` — a rename is atomic, so Cordon never sees half a file;
/// - a runner claims a file by renaming it into `DIR/processing/RUNNER/` (one rename
///   succeeds, so several runners never take the same file), journals its findings,
///   then moves it to `DIR/done/`; a file that cannot be decoded goes to `DIR/failed/`
///   with `NAME.error.json` beside it saying why;
/// - each runner holds a lock on `DIR/processing/RUNNER.lock` while it lives; files left
///   in the folder of a runner whose lock is free (it crashed or was killed) go back to
///   `incoming/` and are processed again (their findings are recognised as duplicates
///   where they were already handled).
public final class QueueDirectory: @unchecked Sendable {
    public let root: URL
    public let runnerID: String
    private let lockFD: Int32
    private var inotifyFD: Int32 = -1

    public var incoming: URL { root.appendingPathComponent("incoming") }
    public var processing: URL { root.appendingPathComponent("processing") }
    public var done: URL { root.appendingPathComponent("done") }
    public var failed: URL { root.appendingPathComponent("failed") }
    var mine: URL { processing.appendingPathComponent(runnerID) }
    // Plain paths for the per-file system calls (URL manipulation costs more than the rename).
    private let incomingPath: String
    private let minePath: String
    private let donePath: String

    public struct Claimed: Sendable {
        public var name: String
        /// Where the claimed file is now (in this runner's `processing/` folder).
        public var path: String
        public var url: URL { URL(fileURLWithPath: path) }
    }

    public struct Error: Swift.Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Opens a queue directory, making its subdirectories. The directory itself must exist
    /// unless `create` (a typo in a path should not silently become a queue nobody writes to).
    public init(root: URL, create: Bool = false) throws {
        self.root = root
        let base = root.standardizedFileURL.path
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if !fm.fileExists(atPath: root.path, isDirectory: &isDirectory) {
            guard create else {
                throw Error(message: "no queue directory \(root.path): create it (producers write into its incoming/), or give --create-queue-dir")
            }
            try fm.createDirectory(at: root, withIntermediateDirectories: true)
        } else if !isDirectory.boolValue {
            throw Error(message: "\(root.path) is not a directory")
        }
        for dir in ["incoming", "processing", "done", "failed"] {
            try fm.createDirectory(at: root.appendingPathComponent(dir), withIntermediateDirectories: true)
        }
        runnerID = "\(ProcessInfo.processInfo.hostName)-\(getpid())-\(UUID().uuidString.prefix(8))"
        incomingPath = base + "/incoming/"
        minePath = base + "/processing/" + runnerID + "/"
        donePath = base + "/done/"
        let lockPath = root.appendingPathComponent("processing/\(runnerID).lock").path
        lockFD = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0, flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            throw Error(message: "cannot lock \(lockPath): \(String(cString: strerror(errno)))")
        }
        try fm.createDirectory(at: mine, withIntermediateDirectories: true)
        inotifyFD = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        if inotifyFD >= 0, inotify_add_watch(inotifyFD, incoming.path, UInt32(IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE)) < 0 {
            close(inotifyFD)
            inotifyFD = -1
        }
        startSource()
    }

    deinit {
        if let source {
            // The descriptor is closed by the source's cancel handler: closing it while the
            // source may still be registered would let a new descriptor with the same
            // number (another queue's inotify) lose its events.
            source.cancel()
        } else if inotifyFD >= 0 {
            close(inotifyFD)
        }
        resumeAll()
        try? FileManager.default.removeItem(at: mine)
        unlink(root.appendingPathComponent("processing/\(runnerID).lock").path)
        close(lockFD)
    }

    /// Whether changes are watched with inotify (else `wait` polls).
    public var watching: Bool { inotifyFD >= 0 }

    /// Moves the files of runners that are gone back to `incoming/`; returns how many.
    @discardableResult
    public func recoverOrphans() throws -> Int {
        let fm = FileManager.default
        var moved = 0
        for entry in (try? fm.contentsOfDirectory(atPath: processing.path)) ?? [] where !entry.hasSuffix(".lock") && entry != runnerID {
            let lockPath = processing.appendingPathComponent("\(entry).lock").path
            let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { continue }  // that runner is alive
            let folder = processing.appendingPathComponent(entry)
            for file in (try? fm.contentsOfDirectory(atPath: folder.path)) ?? [] {
                if rename(folder.appendingPathComponent(file).path, incoming.appendingPathComponent(file).path) == 0 { moved += 1 }
            }
            try? fm.removeItem(at: folder)
            unlink(lockPath)
        }
        return moved
    }

    /// Names seen in `incoming/` not yet tried, in name order (listing a large directory
    /// for every claim would cost O(n²)).
    private let pending = Mutex<(names: [String], next: Int)>(([], 0))

    /// Claims the next file of `incoming/` (in name order), or nil when there is none.
    public func claim() throws -> Claimed? {
        for attempt in 0..<2 {
            while let name = pending.withLock({ p -> String? in
                guard p.next < p.names.count else { return nil }
                p.next += 1
                return p.names[p.next - 1]
            }) {
                let target = minePath + name
                if rename(incomingPath + name, target) == 0 {
                    return Claimed(name: name, path: target)
                }
                // ENOENT: another runner took it first.
            }
            guard attempt == 0 else { break }
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: incomingPath)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
            if names.isEmpty { return nil }
            pending.withLock { $0 = (names, 0) }
        }
        return nil
    }

    /// The file is journaled: move it to `done/`.
    public func complete(_ claimed: Claimed) throws {
        try move(claimed, to: donePath)
    }

    /// The file could not be (entirely) decoded: move it to `failed/` with NAME.error.json.
    public func fail(_ claimed: Claimed, reason: JSONValue) throws {
        let errorFile = failed.appendingPathComponent(claimed.name + ".error.json")
        try JSONWriter.pretty(reason).write(to: errorFile, atomically: true, encoding: .utf8)
        try move(claimed, to: failed.path + "/")
    }

    /// Moves a claimed file into `folder` (a path ending in `/`), keeping a file of the same
    /// name that is already there (the new one gets a time suffix).
    private func move(_ claimed: Claimed, to folder: String) throws {
        // One system call in the usual case (a separate existence check cost as much as a
        // third of the rename at thousands of files a second); renameat2 is Linux 3.15+,
        // with a check-then-rename fallback where the file system does not support it.
        var target = folder + claimed.name
        if cordon_rename_noreplace(claimed.path, target) == 0 { return }
        let error = errno
        let unsupported = error == EINVAL || error == ENOSYS
        guard error == EEXIST || unsupported else {
            throw Error(message: "cannot move \(claimed.path) to \(target): \(String(cString: strerror(error)))")
        }
        if error == EEXIST || access(target, F_OK) == 0 {
            target = folder + "\(claimed.name).\(Int(Date().timeIntervalSince1970 * 1000))"
        }
        guard rename(claimed.path, target) == 0 else {
            throw Error(message: "cannot move \(claimed.path) to \(target): \(String(cString: strerror(errno)))")
        }
    }

    /// Tasks waiting for files: resumed by the inotify read source or by their timeout,
    /// whichever comes first. No thread blocks while they wait.
    private let waiters = Mutex<(next: Int, generation: Int, pending: [Int: CheckedContinuation<Void, Never>])>((0, 0, [:]))

    /// Changes whenever something arrives in `incoming/`. Read it before `claim()` and pass
    /// it to `wait(timeout:after:)`, so that a file that arrives in between is not missed.
    public var generation: Int { waiters.withLock { $0.generation } }
    private var source: DispatchSourceRead?

    private func startSource() {
        guard inotifyFD >= 0, source == nil else { return }
        let fd = inotifyFD
        let src = DispatchSource.makeReadSource(fileDescriptor: fd, queue: .global())
        src.setEventHandler { [weak self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while read(fd, &buffer, buffer.count) > 0 {}
            self?.resumeAll()
        }
        src.setCancelHandler { close(fd) }
        src.resume()
        source = src
    }

    private func resumeAll() {
        let all = waiters.withLock { w -> [CheckedContinuation<Void, Never>] in
            w.generation += 1
            let list = Array(w.pending.values)
            w.pending.removeAll()
            return list
        }
        for c in all { c.resume() }
    }

    /// Waits until something arrives in `incoming/` (inotify) after `generation`, the
    /// timeout passes, or the task is cancelled. Returns at once if something already
    /// arrived since `generation`.
    public func wait(timeout: Duration, after generation: Int? = nil) async {
        guard inotifyFD >= 0 else {
            try? await Task.sleep(for: timeout)
            return
        }
        // The waiter's id, once registered: whoever removes it from `waiters` (an event,
        // the timeout, the cancellation) resumes it, exactly once.
        let registered = Registration()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let id = waiters.withLock { w -> Int? in
                    if let generation, w.generation != generation { return nil }
                    w.next += 1
                    w.pending[w.next] = continuation
                    return w.next
                }
                guard let id else {
                    continuation.resume()
                    return
                }
                registered.id.withLock { $0 = id }
                // Cancelled before the id was known to the cancellation handler.
                if Task.isCancelled { self.resume(id) }
                DispatchQueue.global().asyncAfter(deadline: .now() + timeout.seconds) { [weak self] in self?.resume(id) }
            }
        } onCancel: {
            if let id = registered.id.withLock({ $0 }) { self.resume(id) }
        }
    }

    private final class Registration: Sendable {
        let id = Mutex<Int?>(nil)
    }

    private func resume(_ id: Int) {
        waiters.withLock { $0.pending.removeValue(forKey: id) }?.resume()
    }
}
