import Foundation

/// A moto server (moto 5, `ThreadedMotoServer`) on a free loopback port, one per test
/// process; it exits when its stdin closes, so it dies with the test process.
final class MotoServer: Sendable {
    let port: Int
    let process: Process
    let stdin: Pipe

    static let script = #"""
        import sys
        from moto.server import ThreadedMotoServer
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        print(server.get_host_and_port()[1], flush=True)
        sys.stdin.read()
        server.stop()
        """#

    private init(port: Int, process: Process, stdin: Pipe) {
        self.port = port
        self.process = process
        self.stdin = stdin
    }

    private static let shared = Mutex<Task<MotoServer, any Error>?>(nil)

    static func server() async throws -> MotoServer {
        let task = shared.withLock { current in
            if let current { return current }
            let t = Task { try await start() }
            current = t
            return t
        }
        return try await task.value
    }

    private static func start() async throws -> MotoServer {
        try await offPool {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-u", "-c", script]
            let input = Pipe()
            let output = Pipe()
            process.standardInput = input
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            try process.run()
            var line = Data()
            let handle = output.fileHandleForReading
            while true {
                let byte = handle.readData(ofLength: 1)
                if byte.isEmpty || byte == Data([0x0A]) { break }
                line.append(byte)
            }
            guard let port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespaces)) else {
                process.terminate()
                throw TestFailure("moto did not start (pip install 'moto[server]'): \(String(decoding: line, as: UTF8.self))")
            }
            Thread.detachNewThread { _ = handle.readDataToEndOfFile() }
            return MotoServer(port: port, process: process, stdin: input)
        }
    }

    var environment: [String: String] {
        [
            "AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:\(port)", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1", "HOME": "/nonexistent",
        ]
    }
}

import Synchronization
