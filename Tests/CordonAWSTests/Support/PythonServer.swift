import Foundation
import XCTest

/// A Python server started once per test process: it prints its port on the first line
/// of stdout and exits when its stdin closes (so it dies with the test process, even
/// after a crash); `stop()` closes stdin and waits.
final class PythonServer: @unchecked Sendable {
    let process: Process
    let stdinPipe: Pipe
    let port: Int
    let stderrPath: String

    init(name: String, script: String, extraEnvironment: [String: String] = [:]) throws {
        let dir = FileManager.default.temporaryDirectory
        let scriptURL = dir.appendingPathComponent("cordon-\(name)-\(getpid()).py")
        try script.write(to: scriptURL, atomically: true, encoding: .utf8)
        stderrPath = dir.appendingPathComponent("cordon-\(name)-\(getpid()).log").path
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", scriptURL.path]
        var env = ProcessInfo.processInfo.environment
        for (k, v) in extraEnvironment { env[k] = v }
        process.environment = env
        stdinPipe = Pipe()
        let out = Pipe()
        process.standardInput = stdinPipe
        process.standardOutput = out
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
        // The first line is the port (or an error line starting with "error:").
        var line = Data()
        let handle = out.fileHandleForReading
        while true {
            let byte = handle.readData(ofLength: 1)
            if byte.isEmpty || byte == Data([0x0A]) { break }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard let port = Int(text.trimmingCharacters(in: .whitespaces)) else {
            let log = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
            process.terminate()
            throw ServerError(message: "\(name) did not start: \(text) \(log.suffix(2000))")
        }
        self.port = port
        // Keep draining stdout so the child never blocks on a full pipe.
        DispatchQueue.global().async { _ = handle.readDataToEndOfFile() }
    }

    func stop() {
        try? stdinPipe.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    struct ServerError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }
}

/// moto_server (moto 5) on a free loopback port, shared by every test in the process.
enum Moto {
    static let script = #"""
        import sys
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as e:
            print("error: moto is not installed (pip install 'moto[server]'): %s" % e, flush=True)
            sys.exit(1)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        print(server.get_host_and_port()[1], flush=True)
        sys.stdin.read()
        server.stop()
        """#

    nonisolated(unsafe) private static var started: Result<PythonServer, PythonServer.ServerError>?
    private static let lock = NSLock()

    /// The running server; a test that needs moto fails (never skips) when it cannot start.
    static func server() throws -> PythonServer {
        try lock.withLock {
            if started == nil {
                do {
                    let s = try PythonServer(name: "moto", script: script)
                    started = .success(s)
                    TestEnd.register { s.stop() }
                } catch let e as PythonServer.ServerError {
                    started = .failure(e)
                } catch {
                    started = .failure(PythonServer.ServerError(message: "cannot start python3: \(error)"))
                }
            }
            return try started!.get()
        }
    }

    /// A moto_server of its own (a test that seeds a whole inventory, or turns on IAM
    /// enforcement, must not share state with the others); stopped with the bundle.
    static func dedicated(_ name: String) throws -> PythonServer {
        let s = try PythonServer(name: "moto-\(name)", script: script)
        TestEnd.register { s.stop() }
        return s
    }

    /// The environment for a moto server on `port`, with dummy credentials.
    static func environment(port: Int, _ extra: [String: String] = [:]) -> [String: String] {
        var env = [
            "AWS_ENDPOINT_URL": "http://127.0.0.1:\(port)",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "HOME": "/nonexistent",
        ]
        for (k, v) in extra { env[k] = v }
        return env
    }

    /// An environment pointing every service at moto with dummy credentials.
    static func environment(_ extra: [String: String] = [:]) throws -> [String: String] {
        let port = try server().port
        var env = [
            "AWS_ENDPOINT_URL": "http://127.0.0.1:\(port)",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "HOME": "/nonexistent",
        ]
        for (k, v) in extra { env[k] = v }
        return env
    }
}

/// Stops servers when the test bundle finishes.
final class TestEnd: NSObject, XCTestObservation, @unchecked Sendable {
    nonisolated(unsafe) static var actions: [() -> Void] = []
    nonisolated(unsafe) static var registered = false
    static let lock = NSLock()

    static func register(_ action: @escaping () -> Void) {
        lock.withLock {
            actions.append(action)
            if !registered {
                registered = true
                let observer = TestEnd()
                if Thread.isMainThread {
                    MainActor.assumeIsolated { XCTestObservationCenter.shared.addTestObserver(observer) }
                } else {
                    DispatchQueue.main.async { MainActor.assumeIsolated { XCTestObservationCenter.shared.addTestObserver(observer) } }
                }
            }
        }
    }

    func testBundleDidFinish(_ testBundle: Bundle) {
        let all = TestEnd.lock.withLock { TestEnd.actions }
        for a in all { a() }
    }
}
