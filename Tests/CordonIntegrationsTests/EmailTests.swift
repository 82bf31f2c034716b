import CordonCore
import CordonTestSupport
import Foundation
import Synchronization
import Testing

@testable import CordonIntegrations

/// `core.email` against aiosmtpd started by the tests: plain relay, STARTTLS with a
/// self-signed certificate made by openssl, AUTH PLAIN and LOGIN, and refusals.
@Suite(.serialized) struct EmailTests {
    static let script = #"""
        import json, os, socket, ssl, sys, uuid
        try:
            from aiosmtpd.controller import Controller
            from aiosmtpd.smtp import AuthResult
        except ImportError as e:
            print("error: aiosmtpd is not installed (pip install aiosmtpd): %s" % e, flush=True)
            sys.exit(1)
        out = os.environ["SMTP_OUT"]
        class Handler:
            async def handle_DATA(self, server, session, envelope):
                rec = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                       "data": envelope.content.decode("utf-8", "replace"),
                       "authenticated": bool(session.authenticated), "tls": session.ssl is not None}
                with open(os.path.join(out, uuid.uuid4().hex + ".json"), "w") as f: json.dump(rec, f)
                return "250 OK queued"
        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login == os.environ["SMTP_USER"].encode() and auth_data.password == os.environ["SMTP_PASS"].encode()
            return AuthResult(success=ok, handled=False)
        s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
        kw = {}
        if os.environ.get("SMTP_CERT"):
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(os.environ["SMTP_CERT"], os.environ["SMTP_KEY"])
            kw = dict(tls_context=ctx, require_starttls=True, authenticator=authenticator, auth_require_tls=True)
            if os.environ.get("SMTP_ONLY_LOGIN"): kw["auth_exclude_mechanism"] = ["PLAIN"]
        c = Controller(Handler(), hostname="127.0.0.1", port=port, server_hostname="localhost", **kw)
        c.start()
        print(port, flush=True)
        sys.stdin.read()
        c.stop()
        """#

    struct SMTP {
        let server: PythonServer
        let out: URL
        func messages() throws -> [JSONValue] {
            try FileManager.default.contentsOfDirectory(at: out, includingPropertiesForKeys: nil).map { try JSONParser.parse(Array(try Data(contentsOf: $0))) }
        }
    }

    static func start(tls: Bool, onlyLogin: Bool = false) async throws -> SMTP {
        try await offPool { try startBlocking(tls: tls, onlyLogin: onlyLogin) }
    }

    static func startBlocking(tls: Bool, onlyLogin: Bool) throws -> SMTP {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-smtp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        var env = ["SMTP_OUT": out.path, "SMTP_USER": "cordon", "SMTP_PASS": "smtp-pass-9a8b7c6d"]
        if tls {
            let cert = try SelfSigned.make()
            env["SMTP_CERT"] = cert.cert
            env["SMTP_KEY"] = cert.key
        }
        if onlyLogin { env["SMTP_ONLY_LOGIN"] = "1" }
        return SMTP(server: try PythonServer(name: "smtp", script: script, environment: env), out: out)
    }

    /// Each answer may take up to 30 s: the Python SMTP server shares two cores with the
    /// rest of the suite (10 s was once not enough for its first answer).
    func send(_ inputs: JSONObject, env: [String: String] = [:], key: String = "idem-mail-1") async -> Result<ActionOutcome, ActionError> {
        await outcome(EmailAction(timeout: .seconds(30)), actionRequest("core.email", inputs, secrets: SecretStore(environment: env), key: key))
    }

    func base(_ port: Int, _ extra: JSONObject = [:]) -> JSONObject {
        var i: JSONObject = [
            "server": .string("localhost:\(port)"), "from": "cordon@example.com", "to": ["soc@example.com", "oncall@example.com"],
            "subject": "Isolated i-0abc — Backdoor:EC2/C&CActivity.B!DNS", "body": "Cordon isolated i-0abc.\n.\nRoll back: cordon rollback inc-1",
        ]
        for (k, v) in extra { i[k] = v }
        return i
    }

    @Test func plainRelayWithoutTLS() async throws {
        let smtp = try await Self.start(tls: false)
        defer { smtp.server.stop() }
        let o = try await send(base(smtp.server.port, ["tls": "none"])).get()
        #expect(o.outputs["authenticated"] == false)
        let m = try #require(try smtp.messages().first)
        #expect(m["mail_from"] == "cordon@example.com")
        #expect(m["rcpt_tos"] == ["soc@example.com", "oncall@example.com"])
        let data = try #require(m["data"]?.stringValue)
        #expect(data.contains("Message-ID: <idem-mail-1@"))
        #expect(data.contains("Subject: =?utf-8?B?"))
        #expect(data.contains("Content-Transfer-Encoding: base64"))
    }

    @Test func startTLSWithAuthPlain() async throws {
        let smtp = try await Self.start(tls: true)
        defer { smtp.server.stop() }
        let cert = try await offPool { try SelfSigned.make() }
        let env = ["SMTP_USERNAME": "cordon", "SMTP_PASSWORD": "smtp-pass-9a8b7c6d"]
        let o = try await send(base(smtp.server.port, ["ca_file": .string(cert.cert)]), env: env).get()
        #expect(o.outputs["authenticated"] == true)
        #expect(o.outputs["tls"] == "starttls")
        let m = try #require(try smtp.messages().first)
        #expect(m["tls"] == true)
        #expect(m["authenticated"] == true)
        // The body arrives intact (base64, the lone "." line survives).
        let data = try #require(m["data"]?.stringValue)
        let b64 = data.components(separatedBy: "\r\n\r\n").dropFirst().joined().replacingOccurrences(of: "\r\n", with: "").replacingOccurrences(of: "\n", with: "")
        let body = String(decoding: Data(base64Encoded: b64) ?? Data(), as: UTF8.self)
        #expect(body == "Cordon isolated i-0abc.\r\n.\r\nRoll back: cordon rollback inc-1")
    }

    @Test func startTLSWithAuthLogin() async throws {
        let smtp = try await Self.start(tls: true, onlyLogin: true)
        defer { smtp.server.stop() }
        let cert = try await offPool { try SelfSigned.make() }
        let env = ["MAIL_USER": "cordon", "MAIL_PASS": "smtp-pass-9a8b7c6d"]
        let o = try await send(base(smtp.server.port, ["ca_file": .string(cert.cert), "username_secret": "MAIL_USER", "password_secret": "MAIL_PASS"]), env: env).get()
        #expect(o.outputs["authenticated"] == true)
        #expect(try smtp.messages().count == 1)
    }

    @Test func aWrongPasswordIsPermanentAndNeverShown() async throws {
        let smtp = try await Self.start(tls: true)
        defer { smtp.server.stop() }
        let cert = try await offPool { try SelfSigned.make() }
        let r = await send(base(smtp.server.port, ["ca_file": .string(cert.cert)]), env: ["SMTP_USERNAME": "cordon", "SMTP_PASSWORD": "wrong-password-1"])
        guard case .failure(let e) = r else { Issue.record("expected failure"); return }
        #expect(e.code == "AuthFailed" && !e.retryable, "\(e)")
        #expect(!e.message.contains("wrong-password-1"))
        #expect(try smtp.messages().isEmpty)
    }

    @Test func anUntrustedCertificateIsRefused() async throws {
        let smtp = try await Self.start(tls: true)
        defer { smtp.server.stop() }
        let r = await send(base(smtp.server.port), env: ["SMTP_USERNAME": "cordon", "SMTP_PASSWORD": "smtp-pass-9a8b7c6d"])
        guard case .failure(let e) = r else { Issue.record("expected failure"); return }
        #expect(e.code == "TLSError" && !e.retryable, "\(e)")
        #expect(e.message.contains("not trusted"), "\(e.message)")
        #expect(try smtp.messages().isEmpty)
    }

    @Test func noStartTLSOfferedIsRefusedAndAuthNeedsTLS() async throws {
        let smtp = try await Self.start(tls: false)
        defer { smtp.server.stop() }
        var r = await send(base(smtp.server.port))
        guard case .failure(let e) = r else { Issue.record("expected failure"); return }
        #expect(e.code == "NoStartTLS")
        r = await send(base(smtp.server.port, ["tls": "none"]), env: ["SMTP_USERNAME": "u", "SMTP_PASSWORD": "p-secret-1"])
        guard case .failure(let e2) = r else { Issue.record("expected failure"); return }
        #expect(e2.code == "AuthWithoutTLS")
        #expect(try smtp.messages().isEmpty)
    }

    @Test func headerInjectionAndBadAddressesArePermanent() async throws {
        for (field, value): (String, JSONValue) in [
            ("subject", "hello\r\nBcc: victim@example.com"), ("to", ["soc@example.com\r\nBcc: x@example.com"]), ("from", "a@b.c\nX: y"),
            ("to", ["not an address"]), ("to", ["<soc@example.com>"]), ("from", "cordon"),
        ] {
            let r = await send(base(1, [field: value, "tls": "none"]))
            guard case .failure(let e) = r else { Issue.record("\(field) \(value) was accepted"); continue }
            #expect(["HeaderInjection", "InvalidAddress"].contains(e.code), "\(e)")
            #expect(!e.retryable)
        }
    }

    @Test func connectionRefused() async throws {
        let port = try closedPort()
        let r = await send(base(port, ["server": .string("127.0.0.1:\(port)")]))
        guard case .failure(let e) = r else { Issue.record("expected failure"); return }
        #expect(e.code == "ConnectionRefused" && e.retryable, "\(e)")
    }

    @Test func dotStuffing() {
        #expect(EmailMessage.dotStuffed("a\r\n.\r\n..b\r\nc") == "a\r\n..\r\n...b\r\nc")
        #expect(EmailMessage.validAddress("first.last+tag@sub.example.com"))
        #expect(!EmailMessage.validAddress("a@-x.com"))
        #expect(!EmailMessage.validAddress("a..b@x.com"))
    }
}
