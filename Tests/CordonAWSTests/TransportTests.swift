import CordonCore
import CordonTestSupport
import Foundation
import NIOCore
import XCTest

@testable import CordonAWS
@testable import CordonCloud
@testable import CordonSimulatedCloud

/// Transport and error behaviour against a local stub whose answer depends on the
/// query Action: throttling, 503, a hang, an oversized body, access denied.
final class TransportTests: XCTestCase {
    static let stubScript = #"""
        import sys, threading, time
        from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
        from urllib.parse import parse_qs

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *a): pass
            def send(self, status, body, ctype="text/xml", extra=()):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra: self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(n).decode())
                action = form.get("Action", [""])[0]
                target = self.headers.get("X-Amz-Target", "")
                if action == "Throttle":
                    self.send(400, b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>")
                elif action == "Ec2Throttle":
                    self.send(503, b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>x</RequestID></Response>")
                elif action == "Unavailable":
                    self.send(503, b"")
                elif action == "Denied":
                    self.send(403, b"<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors></Response>")
                elif action == "Hang":
                    time.sleep(30)
                elif action == "SlowBody":
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.write(b"<a>")
                    self.wfile.flush()
                    time.sleep(30)
                elif action == "Big":
                    self.send(200, b"<a>" + b"x" * (9 << 20) + b"</a>")
                elif action == "NotXML":
                    self.send(200, b"this is not xml")
                elif target.endswith("Json"):
                    self.send(400, b'{"__type":"com.amazonaws.cloudtrail.v20131101#TrailNotFoundException","message":"Unknown trail"}', "application/x-amz-json-1.1")
                elif target.endswith("JsonThrottle"):
                    self.send(400, b'{"message":"slow down"}', "application/x-amz-json-1.1", [("x-amzn-ErrorType", "ThrottlingException:http://internal.amazon.com/")])
                else:
                    self.send(200, b"<OkResponse><Echo>" + self.headers.get("Authorization", "").split("Signature=")[0].encode() + b"</Echo></OkResponse>")

        server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        print(server.server_address[1], flush=True)
        sys.stdin.read()
        """#

    nonisolated(unsafe) static var stub: PythonServer?
    static let lock = NSLock()

    static func stubPort() throws -> Int {
        try lock.withLock {
            if let stub { return stub.port }
            let s = try PythonServer(name: "stub", script: stubScript)
            stub = s
            TestEnd.register { s.stop() }
            return s.port
        }
    }

    static let http = AWSHTTPClient(connectTimeout: .seconds(2), requestTimeout: .seconds(2))
    /// For answers that come at once (a refused connection): generous timeouts, so that a
    /// busy test machine cannot turn the refusal into a timeout.
    static let patientHTTP = AWSHTTPClient(connectTimeout: .seconds(30), requestTimeout: .seconds(30))

    func client(_ service: AWSService = .ec2, port: Int, http: AWSHTTPClient = TransportTests.http) -> AWSServiceClient {
        AWSServiceClient(
            service: service, endpoint: AWSEndpoint(scheme: "http", host: "127.0.0.1:\(port)", signingRegion: "us-east-1"),
            credentials: StaticCredentialProvider(AWSCredentials(accessKeyId: "AKIDTEST", secretAccessKey: "SUPERSECRETKEY", sessionToken: "SESSIONTOKEN")),
            http: http)
    }

    func expectError(_ body: () async throws -> Void) async -> ActionError? {
        do {
            try await body()
            return nil
        } catch {
            guard let e = error as? ActionError else {
                XCTFail("not an ActionError: \(error)")
                return nil
            }
            return e
        }
    }

    func assertNoSecrets(_ e: ActionError?, file: StaticString = #filePath, line: UInt = #line) {
        let text = "\(e.map { "\($0.code) \($0.message)" } ?? "")"
        for secret in ["SUPERSECRETKEY", "SESSIONTOKEN", "Signature=", "Authorization"] {
            XCTAssertFalse(text.contains(secret), "error text leaks \(secret): \(text)", file: file, line: line)
        }
    }

    func testOK() async throws {
        let port = try Self.stubPort()
        let tree = try await client(port: port).query("Hello")
        XCTAssertEqual(tree.name, "OkResponse")
        XCTAssertTrue(tree.string("Echo")?.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDTEST/") == true)
    }

    func testThrottlingIsRetryable() async throws {
        let port = try Self.stubPort()
        let e = await expectError { _ = try await client(.iam, port: port).query("Throttle") }
        XCTAssertEqual(e?.code, "Throttling")
        XCTAssertEqual(e?.message, "Rate exceeded")
        XCTAssertEqual(e?.retryable, true)
        let e2 = await expectError { _ = try await client(port: port).query("Ec2Throttle") }
        XCTAssertEqual(e2?.code, "RequestLimitExceeded")
        XCTAssertEqual(e2?.retryable, true)
        assertNoSecrets(e2)
    }

    func test503WithoutBodyIsRetryable() async throws {
        let port = try Self.stubPort()
        let e = await expectError { _ = try await client(port: port).query("Unavailable") }
        XCTAssertEqual(e?.code, "ServiceUnavailable")
        XCTAssertEqual(e?.retryable, true)
    }

    func testAccessDeniedNamesTheIAMAction() async throws {
        let port = try Self.stubPort()
        let e = await expectError { _ = try await client(port: port).query("Denied") }
        XCTAssertEqual(e?.code, "UnauthorizedOperation")
        XCTAssertEqual(e?.retryable, false)
        XCTAssertEqual(e?.message, "You are not authorized to perform this operation. (Cordon needs ec2:Denied)")
        assertNoSecrets(e)
    }

    func testJSONErrors() async throws {
        let port = try Self.stubPort()
        let c = client(.cloudtrail, port: port)
        let e = await expectError { _ = try await c.json(targetPrefix: "X", "Json", ["Name": "t"]) }
        XCTAssertEqual(e?.code, "TrailNotFoundException")
        XCTAssertEqual(e?.message, "Unknown trail")
        XCTAssertEqual(e?.retryable, false)
        let e2 = await expectError { _ = try await c.json(targetPrefix: "X", "JsonThrottle", ["Name": "t"]) }
        XCTAssertEqual(e2?.code, "ThrottlingException")
        XCTAssertEqual(e2?.retryable, true)
    }

    func testHungServerTimesOut() async throws {
        let port = try Self.stubPort()
        let start = Date()
        let e = await expectError { _ = try await client(port: port).query("Hang") }
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertEqual(e?.code, "RequestTimeout")
        XCTAssertEqual(e?.retryable, true)
        XCTAssertTrue(e?.message.contains("timed out") == true, e?.message ?? "")
        XCTAssertLessThan(elapsed, 6)
        XCTAssertGreaterThan(elapsed, 1.5)
    }

    func testStalledBodyTimesOut() async throws {
        let port = try Self.stubPort()
        let start = Date()
        let e = await expectError { _ = try await client(port: port).query("SlowBody") }
        XCTAssertEqual(e?.code, "RequestTimeout")
        XCTAssertEqual(e?.retryable, true)
        XCTAssertLessThan(Date().timeIntervalSince(start), 6)
    }

    func testOversizedResponseIsRefused() async throws {
        let port = try Self.stubPort()
        let e = await expectError { _ = try await client(port: port).query("Big") }
        XCTAssertEqual(e?.code, "ResponseTooLarge")
        XCTAssertEqual(e?.retryable, false)
    }

    func testNonXMLBodyIsAnErrorNotACrash() async throws {
        let port = try Self.stubPort()
        let e = await expectError { _ = try await client(port: port).query("NotXML") }
        XCTAssertEqual(e?.code, "InvalidResponse")
    }

    func testConnectionRefusedIsRetryableAndClear() async throws {
        // Bound but not listening for the whole test: connections are refused, and no
        // other socket (nor the client's own ephemeral port) can take the port meanwhile.
        let (port, fd) = boundTCPPort()
        defer { close(fd) }
        let e = await expectError { _ = try await client(port: port, http: Self.patientHTTP).query("DescribeInstances") }
        XCTAssertEqual(e?.retryable, true)
        XCTAssertEqual(e?.code, "ConnectionRefused", "\(String(describing: e))")
        XCTAssertTrue(e?.message.contains("127.0.0.1:\(port)") == true, e?.message ?? "")
        XCTAssertTrue(e?.message.contains("ec2 DescribeInstances") == true, e?.message ?? "")
        assertNoSecrets(e)
    }
}

/// A loopback port bound by the returned socket, which does not listen: connecting to it
/// is refused. Close the socket when done.
func boundTCPPort() -> (port: Int, fd: Int32) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return (Int(UInt16(bigEndian: addr.sin_port)), fd)
}
