import CordonCore
import Foundation

/// Who runs incidents on a data directory: one process at a time. `cordon run` holds the
/// lock for as long as it runs; `cordon process`, and `cordon approve` when it continues
/// an incident itself, hold it while they work. Everyone else only journals (a decision,
/// a close) and leaves the running to the holder, which follows the journal.
///
/// An advisory `flock` on `DATA/runner.lock`, released by the kernel when the holder
/// exits, even by `kill -9`; the file says who holds it (`ROLE PID HOST SINCE`), so that
/// a refusal can name them.
public final class DataDirectoryLock: Sendable {
    public let role: String
    private let fd: Int32

    /// The holder of a data directory's lock, as its file says.
    public struct Holder: Sendable, CustomStringConvertible {
        public var role: String
        public var pid: Int32
        public var host: String
        public var since: String
        public var description: String { "cordon \(role) (pid \(pid) on \(host), since \(since))" }

        /// Whether the process the file names runs (on another host: cannot tell, so yes).
        var isAlive: Bool {
            guard host == ProcessInfo.processInfo.hostName else { return true }
            return kill(pid, 0) == 0 || errno == EPERM
        }
    }

    public struct Busy: Error, Sendable, CustomStringConvertible {
        public var holder: Holder?
        public var description: String { holder.map { "\($0) holds the data directory" } ?? "another cordon process holds the data directory" }
    }

    private init(role: String, fd: Int32) {
        self.role = role
        self.fd = fd
    }

    deinit { close(fd) }

    static func path(_ directory: DataDirectory) -> String { directory.url.appendingPathComponent("runner.lock").path }

    /// Takes the lock, creating the data directory if need be. Without `wait`, throws
    /// `Busy` naming the holder when it is taken; with it, waits for it (calling `waiting`
    /// once with the holder), unless the holder is a `cordon run`, which does not end by
    /// itself (`Busy` then too). A holder is named only when its process is alive: the file
    /// keeps the text of one that was killed, and a new holder writes its own a moment
    /// after it takes the lock (or a probe, `holder(of:)`, holds it for a moment).
    public static func acquire(_ directory: DataDirectory, role: String, wait: Bool = false, waiting: (Holder?) -> Void = { _ in }) throws -> DataDirectoryLock {
        try FileManager.default.createDirectory(at: directory.url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let fd = open(path(directory), O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SQLiteJournal.Error(message: "cannot open \(path(directory)): \(String(cString: strerror(errno)))") }
        let unnamedFor = ContinuousClock.now + .seconds(1)
        var announced = false
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                close(fd)
                throw SQLiteJournal.Error(message: "cannot lock \(path(directory)): \(String(cString: strerror(errno)))")
            }
            let holder = Self.holder(fd).flatMap { $0.isAlive ? $0 : nil }
            // A runner does not end by itself; without `wait`, a named holder is an answer,
            // and an unnamed one is given a second to name itself or let go.
            if holder?.role == "run" || (!wait && (holder != nil || ContinuousClock.now > unnamedFor)) {
                close(fd)
                throw Busy(holder: holder)
            }
            if wait, !announced, holder != nil {
                waiting(holder)
                announced = true
            }
            usleep(50_000)
        }
        let line = "\(role) \(getpid()) \(ProcessInfo.processInfo.hostName) \(Timestamp.string(Date()))\n"
        _ = ftruncate(fd, 0)
        _ = line.withCString { pwrite(fd, $0, strlen($0), 0) }
        return DataDirectoryLock(role: role, fd: fd)
    }

    /// The holder of the lock, if the directory's lock is held (nil: free, or unknown).
    public static func holder(of directory: DataDirectory) -> Holder? {
        let fd = open(path(directory), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        // Held by someone if a shared lock cannot be had.
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil
        }
        return holder(fd).flatMap { $0.isAlive ? $0 : nil }
    }

    private static func holder(_ fd: Int32) -> Holder? {
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 511, 0) }
        guard n > 0 else { return nil }
        let parts = String(decoding: buffer[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ").map(String.init)
        guard parts.count >= 4, let pid = Int32(parts[1]) else { return nil }
        return Holder(role: parts[0], pid: pid, host: parts[2], since: parts[3])
    }
}
