import Foundation

/// A local HTTP endpoint that answers 200 to every request and appends one JSON line per
/// request (`time`, seconds since 1970 as a double; `method`; `path`; `body`) to a file:
/// the side effects of notification steps, counted at the target.
public final class RecordingReceiver: Sendable {
    public let server: PythonServer
    public let file: String

    static let script = #"""
        import json, os, sys, threading, time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        path = os.environ["RECEIVER_FILE"]
        lock = threading.Lock()
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace")
                line = json.dumps({"time": time.time(), "method": "POST", "path": self.path, "body": body})
                with lock:
                    with open(path, "a") as f:
                        f.write(line + "\n")
                        f.flush()
                        os.fsync(f.fileno())
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')
            def log_message(self, *args):
                pass
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        print(server.server_address[1], flush=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sys.stdin.read()
        server.shutdown()
        """#

    public init() throws {
        file = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-received-\(UUID().uuidString).jsonl").path
        server = try PythonServer(name: "receiver", script: Self.script, environment: ["RECEIVER_FILE": file])
    }

    public var url: String { server.endpoint + "/hook" }

    /// The requests received so far: their times (seconds since 1970) and bodies.
    public var requests: [(time: Double, body: String)] {
        let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let t = o["time"] as? Double else { return nil }
            return (t, o["body"] as? String ?? "")
        }
    }

    public func stop() { server.stop() }
}
