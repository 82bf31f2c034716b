import Foundation
import Synchronization

/// moto_server (moto 5, `ThreadedMotoServer`) on a free loopback port. A test that needs
/// moto fails, never skips, when it cannot start.
public enum Moto {
    public static let script = #"""
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

    private static let started = Mutex<Result<PythonServer, TestFailure>?>(nil)

    /// The server shared by every test in the process, started on first use (blocking:
    /// from async code, call it through `offPool`).
    public static func server() throws -> PythonServer {
        try started.withLock { started in
            if started == nil {
                do {
                    started = .success(try PythonServer(name: "moto", script: script))
                } catch let e as TestFailure {
                    started = .failure(e)
                } catch {
                    started = .failure(TestFailure("cannot start python3: \(error)"))
                }
            }
            return try started!.get()
        }
    }

    /// A moto_server of its own (a test that seeds a whole inventory, or turns on IAM
    /// enforcement, must not share state with the others). Blocking.
    public static func dedicated(_ name: String) throws -> PythonServer {
        try PythonServer(name: "moto-\(name)", script: script)
    }

    /// The environment for a moto server on `port` (every service), with dummy
    /// credentials and no home directory (so no ~/.aws config).
    public static func environment(port: Int, _ extra: [String: String] = [:]) -> [String: String] {
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

    /// The environment for the shared server (started if need be).
    public static func environment(_ extra: [String: String] = [:]) throws -> [String: String] {
        environment(port: try server().port, extra)
    }
}
