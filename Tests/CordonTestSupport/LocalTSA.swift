import Foundation

/// A throwaway time-stamping PKI made with openssl in a temporary directory: a CA, an
/// optional intermediate CA, and a TSA certificate (extendedKeyUsage critical
/// timeStamping) with an `openssl ts` configuration that signs with it. Blocking (it runs
/// openssl): call it off the cooperative pool.
public struct TimestampPKI: Sendable {
    public enum KeyType: String, Sendable {
        /// RSA 2048; the TSA signs RSA PKCS#1 v1.5 over SHA-256 and names its certificate
        /// in a signingCertificate (SHA-1) attribute, openssl's default.
        case rsa
        /// ECDSA P-256 over SHA-256, the certificate named in signingCertificateV2 (SHA-256).
        case ecdsaP256
    }

    public let directory: String
    public let caCertificate: String
    /// The TSA's certificate, with the intermediate's after it when there is one: what
    /// `openssl ts -verify -untrusted` takes.
    public let untrusted: String
    /// The `openssl ts -reply` configuration (a `[tsa]` section).
    public let config: String
    /// The same, accepting only SHA-512 imprints: a SHA-256 request is rejected (badAlg).
    public let rejectingConfig: String

    public var caPEM: String { (try? String(contentsOfFile: caCertificate, encoding: .utf8)) ?? "" }

    public static func make(key: KeyType = .rsa, intermediate: Bool = false, name: String = "Cordon Test") throws -> TimestampPKI {
        let dir = try TempDir("tsa")
        let path = { (file: String) in dir.url.appendingPathComponent(file).path }
        let newKey = key == .rsa ? ["-newkey", "rsa:2048"] : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        try openssl(
            ["req", "-x509"] + newKey + [
                "-nodes", "-keyout", path("ca.key"), "-out", path("ca.pem"), "-days", "30", "-subj", "/CN=\(name) CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ])
        try dir.write("ca.ext", "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
        try dir.write("tsa.ext", "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n")
        func issue(_ subject: String, _ file: String, by issuer: String, ext: String) throws {
            try openssl(["req"] + newKey + ["-nodes", "-keyout", path("\(file).key"), "-out", path("\(file).csr"), "-subj", "/CN=\(subject)"])
            try openssl([
                "x509", "-req", "-in", path("\(file).csr"), "-CA", path("\(issuer).pem"), "-CAkey", path("\(issuer).key"), "-CAserial",
                path("serials"), "-CAcreateserial", "-out", path("\(file).pem"), "-days", "30", "-extfile", path(ext),
            ])
        }
        if intermediate { try issue("\(name) Intermediate CA", "intermediate", by: "ca", ext: "ca.ext") }
        try issue("\(name) TSA", "tsa", by: intermediate ? "intermediate" : "ca", ext: "tsa.ext")
        let chain = try String(contentsOfFile: path("tsa.pem"), encoding: .utf8)
            + (intermediate ? try String(contentsOfFile: path("intermediate.pem"), encoding: .utf8) : "")
        try dir.write("untrusted.pem", chain)
        try dir.write("tsaserial", "01\n")
        func config(digests: String) -> String {
            """
            [tsa]
            default_tsa = tsa_config
            [tsa_config]
            serial = \(path("tsaserial"))
            crypto_device = builtin
            signer_cert = \(path("tsa.pem"))
            \(intermediate ? "certs = \(path("intermediate.pem"))" : "")
            signer_key = \(path("tsa.key"))
            signer_digest = sha256
            default_policy = 1.3.6.1.4.1.99999.1
            digests = \(digests)
            accuracy = secs:1
            ordering = no
            tsa_name = no
            ess_cert_id_chain = no
            ess_cert_id_alg = \(key == .rsa ? "sha1" : "sha256")

            """
        }
        return TimestampPKI(
            directory: dir.path, caCertificate: path("ca.pem"), untrusted: path("untrusted.pem"),
            config: try dir.write("tsa.cnf", config(digests: "sha256, sha384, sha512")),
            rejectingConfig: try dir.write("tsa-reject.cnf", config(digests: "sha512")))
    }

    /// `openssl ts -verify -in RESPONSE -data DATA -CAfile CA [-untrusted TSA]`: whether
    /// openssl accepts `response` (a TimeStampResp's DER) for the bytes `data`, and what it
    /// printed. `caFile` defaults to this PKI's CA; without `untrusted` openssl finds the
    /// TSA's certificate (and the intermediate's) in the token.
    public func opensslVerify(response: [UInt8], data: [UInt8], caFile: String? = nil, untrusted: Bool = true) throws -> (ok: Bool, output: String) {
        let dir = try TempDir("tsa-verify", removeOnDeinit: true)
        let responseFile = dir.url.appendingPathComponent("receipt.tsr"), dataFile = dir.url.appendingPathComponent("head.txt")
        try Data(response).write(to: responseFile)
        try Data(data).write(to: dataFile)
        let result = try Self.run(
            ["ts", "-verify", "-in", responseFile.path, "-data", dataFile.path, "-CAfile", caFile ?? caCertificate]
                + (untrusted ? ["-untrusted", self.untrusted] : []))
        return (result.status == 0, result.stdoutText)
    }

    @discardableResult
    static func openssl(_ arguments: [String]) throws -> Spawn.Captured {
        let result = try run(arguments)
        guard result.status == 0 else { throw TestFailure("openssl \(arguments.prefix(2).joined(separator: " ")) failed: \(result.stdoutText.suffix(1500))") }
        return result
    }

    static func run(_ arguments: [String]) throws -> Spawn.Captured {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        return try Spawn.capture(process, merge: true, timeout: 60)
    }
}

/// A local time-stamping authority: HTTP on 127.0.0.1 that pipes each request body through
/// `openssl ts -reply` and answers `application/timestamp-reply`. It can also reject every
/// request (openssl's own rejection: status rejection, failInfo badAlg), answer garbage,
/// or never answer. A request without `Content-Type: application/timestamp-query` gets 415.
public final class LocalTSA: Sendable {
    public enum Behaviour: String, Sendable {
        case grant, reject, garbage, silent
    }

    public let pki: TimestampPKI
    public let server: PythonServer

    static let script = #"""
        import os, subprocess, sys, threading, time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        config, mode, work = os.environ["TSA_CONFIG"], os.environ["TSA_MODE"], os.environ["TSA_DIR"]
        lock = threading.Lock()
        count = [0]
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if mode == "silent":
                    time.sleep(3600)
                    return
                if mode == "garbage":
                    return self.answer(200, "text/html", b"<html><body>this is not a time-stamping authority</body></html>")
                if self.headers.get("Content-Type") != "application/timestamp-query":
                    return self.answer(415, "text/plain", b"expected application/timestamp-query")
                with lock:
                    count[0] += 1
                    query = os.path.join(work, "request-%d.tsq" % count[0])
                    reply = os.path.join(work, "response-%d.tsr" % count[0])
                    with open(query, "wb") as f:
                        f.write(body)
                    done = subprocess.run(["openssl", "ts", "-reply", "-config", config, "-queryfile", query, "-out", reply], capture_output=True)
                if done.returncode != 0:
                    return self.answer(500, "text/plain", done.stderr[-500:])
                with open(reply, "rb") as f:
                    self.answer(200, "application/timestamp-reply", f.read())
            def answer(self, status, kind, data):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            def log_message(self, *args):
                pass
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        print(server.server_address[1], flush=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sys.stdin.read()
        server.shutdown()
        """#

    /// Starts a TSA over `pki` (a fresh RSA one when nil). Blocking: call it off the pool.
    public init(pki: TimestampPKI? = nil, behaviour: Behaviour = .grant) throws {
        let pki = try pki ?? TimestampPKI.make()
        self.pki = pki
        // Each server its own directory for requests and responses: several share a PKI.
        let work = try TempDir("tsa-requests")
        let environment = [
            "TSA_CONFIG": behaviour == .reject ? pki.rejectingConfig : pki.config, "TSA_MODE": behaviour.rawValue, "TSA_DIR": work.path,
        ]
        server = try PythonServer(name: "tsa", script: Self.script, environment: environment)
    }

    public var url: String { server.endpoint + "/tsr" }
    /// `tsa:URL`, as a witness is configured.
    public var spec: String { "tsa:" + url }

    public func stop() { server.stop() }
}
