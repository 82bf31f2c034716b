import Foundation

/// A moto_server (moto 5, `ThreadedMotoServer`) of its own on a free loopback port, for
/// a CLI test that drives `cordon` against it; it exits when its stdin closes (`stop()`,
/// or the test process ending). A test that needs moto fails, never skips, without it.
final class MotoProcess: Sendable {
    let port: Int
    let process: Process
    let stdin: Pipe

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

    struct StartFailure: Error, CustomStringConvertible {
        var description: String
    }

    private init(port: Int, process: Process, stdin: Pipe) {
        self.port = port
        self.process = process
        self.stdin = stdin
    }

    /// Starts one on a thread of its own (reading its first line blocks).
    static func start() async throws -> MotoProcess {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                do { continuation.resume(returning: try startBlocking()) } catch { continuation.resume(throwing: error) }
            }
        }
    }

    private static func startBlocking() throws -> MotoProcess {
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
            throw StartFailure(description: "moto did not start (pip install 'moto[server]'): \(String(decoding: line, as: UTF8.self))")
        }
        Thread.detachNewThread { _ = handle.readDataToEndOfFile() }
        return MotoProcess(port: port, process: process, stdin: input)
    }

    var endpoint: String { "http://127.0.0.1:\(port)" }

    /// What `cordon` needs to reach it, with dummy credentials; every other AWS endpoint
    /// variable cleared.
    var environment: [String: String] {
        var env = ["AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"]
        for service in ["EC2", "IAM", "STS", "SNS", "S3", "CLOUDTRAIL", "SQS"] { env["AWS_ENDPOINT_URL_\(service)"] = "" }
        for name in ["AWS_SESSION_TOKEN", "AWS_PROFILE"] { env[name] = "" }
        return env
    }

    func stop() {
        try? stdin.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}
