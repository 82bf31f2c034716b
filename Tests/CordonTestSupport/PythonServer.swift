import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A test failure with a message.
public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Runs blocking work (starting a process, waiting for openssl) on a thread of its own,
/// so that tests never block the cooperative pool.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// A Python server run as a subprocess: its script prints the port it listens on as the
/// first line of stdout (or an error line) and exits when its stdin closes, so it dies
/// with the test process even after a crash. Its stderr goes to `logPath` and is quoted
/// when it does not start. `stop()` closes stdin and waits, terminating (then killing)
/// it if it does not exit: it never hangs.
public final class PythonServer: Sendable {
    public let name: String
    public let port: Int
    /// Where the server's stderr goes.
    public let logPath: String
    private let process: Process
    private let stdinHandle: FileHandle
    private let stopped = Mutex(false)

    /// Starts `script` with `python3 -u`, with the test process's environment plus
    /// `environment`, and waits (up to `startTimeout` seconds) for its port.
    public init(name: String, script: String, environment: [String: String] = [:], startTimeout: TimeInterval = 60) throws {
        self.name = name
        let dir = FileManager.default.temporaryDirectory
        let id = UUID().uuidString.prefix(8)
        let scriptURL = dir.appendingPathComponent("cordon-\(name)-\(id).py")
        try script.write(to: scriptURL, atomically: true, encoding: .utf8)
        logPath = dir.appendingPathComponent("cordon-\(name)-\(id).log").path
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", scriptURL.path]
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let input = Spawn.pipe(), output = Spawn.pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle(forWritingAtPath: logPath)
        do { try Spawn.run(process) } catch { throw TestFailure("\(name): cannot start python3: \(error)") }

        // The first line is the port (or an error line starting with "error:"); read on a
        // thread of its own, which then keeps draining stdout so the child never blocks.
        let firstLine = FirstLine()
        let handle = output.fileHandleForReading
        Thread.detachNewThread {
            var line = Data()
            while true {
                let byte = handle.readData(ofLength: 1)
                if byte.isEmpty || byte == Data([0x0A]) { break }
                line.append(byte)
            }
            firstLine.set(line)
            _ = handle.readDataToEndOfFile()
        }
        let line = firstLine.wait(timeout: startTimeout)
        let text = line.map { String(decoding: $0, as: UTF8.self) }
        guard let text, let port = Int(text.trimmingCharacters(in: .whitespaces)) else {
            Self.end(process, grace: 0)
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            let what = text.map { "did not start: \($0)" } ?? "did not print its port within \(Int(startTimeout)) s:"
            throw TestFailure("\(name) \(what) \(log.suffix(2000))")
        }
        self.port = port
        self.process = process
        self.stdinHandle = input.fileHandleForWriting
    }

    /// `http://127.0.0.1:<port>`.
    public var endpoint: String { "http://127.0.0.1:\(port)" }

    /// The server's stderr so far.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Closes stdin and waits up to `timeout` seconds for the server to exit, then
    /// terminates it (and kills it if it still runs). Safe to call more than once.
    public func stop(timeout: TimeInterval = 10) {
        let first = stopped.withLock { done in
            defer { done = true }
            return !done
        }
        if first { try? stdinHandle.close() }
        Self.end(process, grace: timeout)
    }

    /// Waits `grace` seconds for `process` to exit, then SIGTERM, then SIGKILL.
    private static func end(_ process: Process, grace: TimeInterval) {
        if exited(process, within: grace) { return }
        process.terminate()
        if exited(process, within: 5) { return }
        kill(process.processIdentifier, SIGKILL)
        _ = exited(process, within: 5)
    }

    private static func exited(_ process: Process, within seconds: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning {
            if Date() >= deadline { return false }
            usleep(20_000)
        }
        return true
    }
}

/// The first line of a server's stdout, handed from its reader thread.
private final class FirstLine: Sendable {
    private let line = Mutex<Data?>(nil)
    private let ready = DispatchSemaphore(value: 0)

    func set(_ data: Data) {
        line.withLock { $0 = data }
        ready.signal()
    }

    /// The line, or nil when none came within `timeout` seconds.
    func wait(timeout: TimeInterval) -> Data? {
        guard ready.wait(timeout: .now() + timeout) == .success else { return nil }
        return line.withLock { $0 }
    }
}
