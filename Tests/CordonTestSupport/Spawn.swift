import Foundation
import Synchronization

/// Starting child processes from tests that run in parallel in one process.
///
/// Foundation's `Pipe` is not close-on-exec, and its `Process` does not close the other
/// descriptors in the child: a child started by one test while another test holds a pipe
/// inherits that pipe's ends. A long-lived child (a Python server) holding the write end
/// of another command's stdout keeps its reader from ever seeing end-of-file, and the test
/// hangs with the command long gone (seen here in parallel runs of the suite, and the
/// cause of a CI run that never ended: `cordon journal verify` a zombie, its stdout still
/// open in a moto server started at the same moment).
///
/// So every pipe a test gives a child is made here, close-on-exec, and every child is
/// started here, under one lock: no child can start while a pipe exists without the flag.
/// The child given a pipe end as a standard stream gets a copy without it (`dup2`).
public enum Spawn {
    private static let lock = NSLock()

    /// A pipe neither end of which other children inherit.
    public static func pipe() -> Pipe {
        lock.withLock {
            let pipe = Pipe()
            for fd in [pipe.fileHandleForReading.fileDescriptor, pipe.fileHandleForWriting.fileDescriptor] {
                _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC)
            }
            return pipe
        }
    }

    /// Starts `process` (`Process.run`) while no pipe is being made.
    public static func run(_ process: Process) throws {
        try lock.withLock { try process.run() }
    }

    /// Waits up to `seconds` for `process` to exit without blocking a shared thread; true
    /// when it did.
    public static func exited(_ process: Process, within seconds: Double) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning {
            if Date() >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    /// Waits for `process` to exit; one still running after `seconds` is killed (SIGKILL)
    /// and the answer is false, so that a hang becomes a failure that names the command
    /// instead of a test run that never ends.
    public static func waitForExit(_ process: Process, seconds: Double) async -> Bool {
        if await exited(process, within: seconds) { return true }
        kill(process.processIdentifier, SIGKILL)
        _ = await exited(process, within: 10)
        return false
    }

    /// What `capture` saw of a finished command.
    public struct Captured: Sendable {
        public var status: Int32
        public var stdout: Data
        public var stderr: Data
        /// Killed after the time allowed.
        public var timedOut: Bool

        /// stdout as text, followed by a note when the command was killed.
        public var stdoutText: String { String(decoding: stdout, as: UTF8.self) + killedNote }
        /// stderr as text, followed by a note when the command was killed.
        public var stderrText: String { String(decoding: stderr, as: UTF8.self) + killedNote }

        private var killedNote: String { timedOut ? "\n[killed: did not finish in time]" : "" }
    }

    /// Runs `process` to completion, feeding it `stdin` (then end-of-file) and collecting
    /// both outputs (`merge`: stderr into stdout). One still running after `timeout`
    /// seconds is killed. Blocks the calling thread: call it off the cooperative pool.
    public static func capture(_ process: Process, stdin: Data? = nil, merge: Bool = false, timeout: Double = 300) throws -> Captured {
        let out = pipe(), err = merge ? nil : pipe(), input = pipe()
        process.standardOutput = out
        process.standardError = err ?? out
        process.standardInput = input
        try run(process)
        let outReader = Reader(out.fileHandleForReading)
        let errReader = err.map { Reader($0.fileHandleForReading) }
        if let stdin { input.fileHandleForWriting.write(stdin) }
        try? input.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while process.isRunning {
            if Date() >= deadline {
                timedOut = true
                kill(process.processIdentifier, SIGKILL)
                break
            }
            usleep(5_000)
        }
        process.waitUntilExit()
        return Captured(
            status: process.terminationStatus, stdout: outReader.finish(), stderr: errReader?.finish() ?? Data(), timedOut: timedOut)
    }

    /// Drains a pipe on a thread of its own, so that neither output can fill up and block
    /// the child.
    private final class Reader: Sendable {
        private let data = Mutex(Data())
        private let done = DispatchSemaphore(value: 0)

        init(_ handle: FileHandle) {
            Thread.detachNewThread { [self] in
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    data.withLock { $0.append(chunk) }
                }
                done.signal()
            }
        }

        /// What was read: all of it once the child's end closed, or (should something
        /// else still hold that end open) what came within 10 s of the exit.
        func finish() -> Data {
            _ = done.wait(timeout: .now() + 10)
            return data.withLock { $0 }
        }
    }
}

/// A tool from PATH (openssl, sha256sum, jq), run to completion.
public enum Shell {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    public static func run(_ tool: String, _ arguments: [String], directory: URL? = nil, stdin: Data? = nil) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        if let directory { process.currentDirectoryURL = directory }
        let captured = try Spawn.capture(process, stdin: stdin)
        return Result(status: captured.status, stdout: String(decoding: captured.stdout, as: UTF8.self), stderr: captured.stderrText)
    }
}
