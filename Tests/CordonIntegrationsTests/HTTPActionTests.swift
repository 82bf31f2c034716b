import CordonCore
import CordonTestSupport
import Foundation
import Testing

@testable import CordonIntegrations

/// The runtime on a test integration: inputs, rendering, idempotency, retries, failures.
@Suite struct HTTPActionTests {
    static func integration(url: String, extra: String = "", timeout: String = "2s") -> String {
        """
        name: probe
        secrets: [PROBE_URL, PROBE_TOKEN]
        actions:
          send:
            inputs:
              text: {required: true, type: string}
              count: {type: integer, default: 3}
              label: {type: string}
              flags: {type: string-list, default: [a, b]}
            request:
              method: POST
              url: "\(url)"
              headers:
                Authorization: "Bearer {{ secret.PROBE_TOKEN }}"
                X-Label: "{{ inputs.label }}"
              query:
                count: "{{ inputs.count }}"
                tag: "{{ inputs.flags }}"
              body:
                text: "{{ inputs.text }}"
                incident: "{{ incident.id }}"
                token_echo: "token={{ secret.PROBE_TOKEN }}"
              timeout: \(timeout)
            success: [200]
            retry_on: [429, 503]
            idempotency: {header: Idempotency-Key}
        \(extra)
        """
    }

    static let token = "tok-SECRET-4f1e2d3c"

    func probe(_ url: String, timeout: String = "20s", extra: String = "") throws -> any Action {
        let loaded = try loadIntegrations(["probe.yaml": Self.integration(url: url, extra: extra, timeout: timeout)])
        return try #require(IntegrationActions.all(loaded.integrations)["probe.send"])
    }

    func secrets(_ url: String) -> SecretStore { SecretStore(environment: ["PROBE_URL": url, "PROBE_TOKEN": Self.token]) }

    func fail(_ action: any Action, _ inputs: JSONObject = ["text": "hi"], url: String = "") async throws -> ActionError {
        let started = ContinuousClock.now
        let r = await outcome(action, actionRequest("probe.send", inputs, secrets: secrets(url)))
        #expect(ContinuousClock.now - started < .seconds(60), "must not hang")
        guard case .failure(let e) = r else { throw TestFailure("expected a failure, got \(r)") }
        return e
    }

    @Test func rendersHeadersQueryBodyAndTheIdempotencyKey() async throws {
        let server = try await Receivers.http()
        let action = try probe("http://127.0.0.1:\(server.port)/echo/x")
        let evidence = MemoryEvidence()
        let r = await outcome(action, actionRequest("probe.send", ["text": "héllo \"quoted\""], secrets: secrets(""), evidence: evidence, key: "K-1"))
        let o = try r.get()
        let echo = try #require(o.outputs["body"])
        #expect(echo["query"] == "count=3&tag=a&tag=b")
        #expect(echo["headers"]?["Idempotency-Key"] == "K-1")
        // The receiver got the token; the step's outputs show it redacted.
        #expect(echo["headers"]?["Authorization"] == "Bearer «secret:PROBE_TOKEN»")
        let raw = try await Receivers.log(server)["requests"]?.arrayValue?.last { $0["path"] == "/echo/x" }
        #expect(raw?["headers"]?["Authorization"] == .string("Bearer " + Self.token))
        #expect(echo["headers"]?["X-Label"] == nil, "an optional input not given leaves its header out")
        #expect(echo["headers"]?["Content-Type"] == "application/json")
        let body = try JSONParser.parse(try #require(echo["body"]?.stringValue))
        #expect(body["text"] == "héllo \"quoted\"")
        #expect(body["incident"] == "inc-0123456789ab")
        // Outputs and evidence never hold the token, nor the raw Authorization header.
        let stored = String(decoding: try #require(evidence.all.first), as: UTF8.self)
        #expect(!stored.contains(Self.token))
        #expect(stored.contains("Bearer «redacted»"))
        #expect(!JSONWriter.string(.object(o.outputs)).contains(Self.token))
        #expect(JSONWriter.string(.object(o.outputs)).contains("«secret:PROBE_TOKEN»"))
    }

    @Test func inputsAreCheckedAgainstTheDeclaration() async throws {
        let action = try probe("http://127.0.0.1:9/never")
        var e = try await fail(action, [:])
        #expect(e.code == "InvalidInput" && e.message.contains("needs input \"text\""))
        e = try await fail(action, ["text": "x", "bogus": 1])
        #expect(e.code == "InvalidInput" && e.message.contains("has no input \"bogus\""))
        e = try await fail(action, ["text": "x", "count": "three"])
        #expect(e.code == "InvalidInput" && e.message.contains("must be integer"))
        #expect(!e.retryable)
    }

    @Test func headerInjectionIsRefused() async throws {
        let action = try probe("http://127.0.0.1:9/never")
        let e = try await fail(action, ["text": "x", "label": "a\r\nX-Evil: 1"])
        #expect(e.code == "InvalidHeader")
        #expect(!e.retryable)
    }

    @Test func retryOnStatusesAreRetryableWithRetryAfter() async throws {
        let server = try await Receivers.http()
        var e = try await fail(try probe("http://127.0.0.1:\(server.port)/status/429/7"))
        #expect(e.code == "HTTP429" && e.retryable && e.retryAfter == .seconds(7))
        #expect(e.message.contains("answered HTTP 429 Too Many Requests"))
        e = try await fail(try probe("http://127.0.0.1:\(server.port)/status/503"))
        #expect(e.code == "HTTP503" && e.retryable && e.retryAfter == nil)
    }

    @Test func aClientErrorIsPermanentAndNamesTheStatus() async throws {
        let server = try await Receivers.http()
        let e = try await fail(try probe("http://127.0.0.1:\(server.port)/status/404"))
        #expect(e.code == "HTTP404" && !e.retryable)
        #expect(e.message == "probe.send: POST http://127.0.0.1:\(server.port) answered HTTP 404 Not Found: {\"error\": \"status 404\"}; probe.send expects 200 (a 4xx is not retried: the request or its credentials need fixing)")
    }

    @Test func connectionRefused() async throws {
        let port = try closedPort()
        let e = try await fail(try probe("http://127.0.0.1:\(port)/x"))
        #expect(e.code == "ConnectionRefused" && e.retryable)
        #expect(e.message.hasPrefix("probe.send: POST http://127.0.0.1:\(port): connection refused"))
    }

    @Test func anUntrustedCertificateIsATLSError() async throws {
        let server = try await Receivers.selfSignedHTTPS()
        let e = try await fail(try probe("https://127.0.0.1:\(server.port)/slack/x"))
        #expect(e.code == "TLSError" && !e.retryable)
        #expect(e.message.contains("TLS handshake failed: the server's certificate is not trusted"), "\(e.message)")
    }

    @Test func aReceiverThatNeverAnswersTimesOut() async throws {
        let server = try await Receivers.http()
        let started = ContinuousClock.now
        let e = try await fail(try probe("http://127.0.0.1:\(server.port)/hang", timeout: "700ms"))
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(e.code == "RequestTimeout" && e.retryable)
        #expect(e.message.contains("no complete answer within 700ms"))
    }

    @Test func aHugeBodyIsTruncatedWithANote() async throws {
        let server = try await Receivers.http()
        let action = try probe("http://127.0.0.1:\(server.port)/big", timeout: "30s")
        let evidence = MemoryEvidence()
        let o = try await outcome(action, actionRequest("probe.send", ["text": "x"], secrets: secrets(""), evidence: evidence)).get()
        #expect(o.outputs["status"] == 200)
        #expect(o.outputs["body"]?.stringValue?.utf8.count == IntegrationAction.maxOutputBodyBytes)
        #expect(o.outputs["body_note"]?.stringValue?.contains("3145728 bytes") == true)
        let exchange = try JSONParser.parse(try #require(evidence.all.first))
        #expect(exchange["response"]?["truncated"] == true)
        #expect(exchange["response"]?["body"]?.stringValue?.utf8.count == 1 << 20)
    }

    @Test func aSecretURLNeverAppearsInErrors() async throws {
        // The whole URL is a secret (as Slack's and Teams' webhooks are); errors name the
        // host only, and redact whatever else the transport says.
        let port = try closedPort()
        let url = "http://127.0.0.1:\(port)/hooks/T0/B0/supersecretwebhookpath"
        let loaded = try loadIntegrations(["probe.yaml": Self.integration(url: "{{ secret.PROBE_URL }}")])
        let action = try #require(IntegrationActions.all(loaded.integrations)["probe.send"])
        let e = try await fail(action, url: url)
        #expect(e.code == "ConnectionRefused")
        #expect(!e.message.contains("supersecretwebhookpath"))
    }

    @Test func retryAfterParsing() {
        #expect(RetryAfter.parse("120") == .seconds(120))
        #expect(RetryAfter.parse(" 0 ") == .seconds(0))
        let now = Date(timeIntervalSince1970: 1_445_412_480)  // Wed, 21 Oct 2015 07:28:00 GMT
        #expect(RetryAfter.parse("Wed, 21 Oct 2015 07:28:30 GMT", now: now) == .seconds(30))
        #expect(RetryAfter.parse("Wed, 21 Oct 2015 07:27:00 GMT", now: now) == .seconds(0))
        #expect(RetryAfter.parse("soon") == nil)
        #expect(RetryAfter.parse(nil) == nil)
    }

    @Test func signatureMatchesAKnownVector() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"key",b"1700000000.{}",hashlib.sha256).hexdigest())'
        #expect(WebhookSignature.header(body: Array("{}".utf8), secret: "key", timestamp: 1_700_000_000)
            == "t=1700000000,v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae")
        #expect(WebhookSignature.verify(header: WebhookSignature.header(body: [1, 2], secret: "k", timestamp: 100), body: [1, 2], secret: "k", now: 200))
        #expect(!WebhookSignature.verify(header: WebhookSignature.header(body: [1, 2], secret: "k", timestamp: 100), body: [1, 2], secret: "k", now: 1000))
    }
}

/// Values from the other end of a connection that used to overflow.
@Suite struct HostileResponseTests {
    @Test func aHugeRetryAfterIsAYearAtMost() throws {
        let year = Duration.seconds(366 * 86_400)
        #expect(RetryAfter.parse("10000000000000000") == year)
        #expect(RetryAfter.parse("99999999999999999999999") == year)
        #expect(DurationParser.format(try #require(RetryAfter.parse("10000000000000000"))) == "366d")
    }

    @Test func aSignatureTimestampAtTheEdgeOfIntIsInvalid() {
        #expect(!WebhookSignature.verify(header: "t=\(Int.min),v1=00", body: [], secret: "s", now: 1_767_225_600))
        #expect(!WebhookSignature.verify(header: "t=\(Int.max),v1=00", body: [], secret: "s", now: -5))
    }
}

@Suite struct StatusListTests {
    /// An unexpected status's message said which statuses count as delivered one by one:
    /// "expects 200, 201, 202, … 299" for the default.
    @Test func consecutiveStatusesReadAsARange() {
        #expect(IntegrationAction.statusList(Array(200...299)) == "200–299")
        #expect(IntegrationAction.statusList([204, 200, 201, 202, 302]) == "200–202, 204, 302")
        #expect(IntegrationAction.statusList([200]) == "200")
        #expect(IntegrationAction.statusList([]) == "")
    }
}
