import AsyncHTTPClient
import CordonCore
import CordonTestSupport
import Foundation
import NIOCore
import Testing

@testable import CordonHTTP

/// The client's configuration and its classification of transport failures, against
/// local servers that answer, stall or never answer, and a port nothing listens on.
@Suite struct TransportFailureTests {
    static let secrets = ["supersecretpath", "tokenvalue123", "Bearer SECRET-HEADER"]

    /// A client with a short connect timeout of its own, shut down by each test.
    func withClient<T>(_ body: (CordonHTTPClient) async throws -> T) async throws -> T {
        let client = CordonHTTPClient(connectTimeout: .seconds(5))
        do {
            let value = try await body(client)
            try await client.shutdown()
            return value
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    func send(
        _ client: CordonHTTPClient, port: Int, timeout: Duration = .seconds(10), limit: CordonHTTPClient.BodyLimit = .refuseOver(1 << 20)
    ) async -> Result<CordonHTTPClient.Response, ActionError> {
        do throws(ActionError) {
            return .success(
                try await client.send(
                    method: "POST", url: "http://127.0.0.1:\(port)/hooks/supersecretpath?token=tokenvalue123",
                    headers: [("Authorization", "Bearer SECRET-HEADER")], body: Array("{}".utf8), timeout: timeout, limit: limit,
                    describe: "probe: POST http://127.0.0.1:\(port)"))
        } catch {
            return .failure(error)
        }
    }

    func failure(_ result: Result<CordonHTTPClient.Response, ActionError>) throws -> ActionError {
        switch result {
        case .success(let response): throw TestFailure("expected a failure, got HTTP \(response.status)")
        case .failure(let error): return error
        }
    }

    func expectNoSecrets(_ e: ActionError) {
        for secret in Self.secrets { #expect(!e.message.contains(secret), "\(e.message)") }
    }

    @Test func aRefusedConnectionFailsAtOnceAndIsRetryable() async throws {
        // Bound but not listening for the whole test: connections are refused, and no
        // other socket can take the port meanwhile.
        let (port, fd) = try boundPort()
        defer { close(fd) }
        let (e, elapsed) = try await withClient { client in
            let started = ContinuousClock.now
            let e = try failure(await send(client, port: port, timeout: .seconds(120)))
            return (e, ContinuousClock.now - started)
        }
        #expect(e.code == "ConnectionRefused" && e.retryable, "\(e)")
        #expect(e.message.hasPrefix("probe: POST http://127.0.0.1:\(port): connection refused"), "\(e.message)")
        // Not retried by the pool until the deadline, which would also end in
        // ConnectionRefused. The bound is loose: with every suite running at once on two
        // cores, even a refusal has been seen to take 26 s.
        #expect(elapsed < .seconds(60), "\(elapsed)")
        expectNoSecrets(e)
    }

    @Test func aServerThatAcceptsAndNeverAnswersTimesOut() async throws {
        let server = try await RawServer.start(reply: nil)
        let started = ContinuousClock.now
        let e = try await withClient { try failure(await send($0, port: server.port, timeout: .milliseconds(600))) }
        try await server.stop()
        #expect(e.code == "RequestTimeout" && e.retryable, "\(e)")
        #expect(e.message == "probe: POST http://127.0.0.1:\(server.port): no complete answer within 600ms (timed out)")
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test func aBodyThatStallsTimesOutTooTheDeadlineCoversIt() async throws {
        let server = try await RawServer.start(reply: Array("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n<a>".utf8))
        let e = try await withClient { try failure(await send($0, port: server.port, timeout: .milliseconds(600))) }
        try await server.stop()
        #expect(e.code == "RequestTimeout" && e.retryable, "\(e)")
    }

    @Test func anOversizedBodyIsPermanent() async throws {
        let server = try await RawServer.start(reply: RawServer.response(body: Array(repeating: UInt8(ascii: "x"), count: 200_000)))
        let e = try await withClient { try failure(await send($0, port: server.port, limit: .refuseOver(100_000))) }
        try await server.stop()
        #expect(e.code == "ResponseTooLarge" && !e.retryable, "\(e)")
        #expect(e.message == "probe: POST http://127.0.0.1:\(server.port): the response is larger than 100000 bytes (not read)")
    }

    @Test func aKeptBodyIsCutAndTheRestDiscardedOrGivenUp() async throws {
        let server = try await RawServer.start(reply: RawServer.response(body: Array(repeating: UInt8(ascii: "x"), count: 200_000)))
        let (kept, dropped) = try await withClient { client in
            let kept = try await send(client, port: server.port, limit: .keep(1000, discard: 1 << 20)).get()
            return (kept, try await send(client, port: server.port, limit: .keep(1000, discard: 10_000)).get())
        }
        try await server.stop()
        #expect(kept.status == 200 && kept.body.count == 1000 && kept.bodyBytes == 200_000 && kept.truncated && !kept.gaveUp)
        #expect(dropped.body.count == 1000 && dropped.truncated && dropped.gaveUp && dropped.bodyBytes > 11_000)
    }

    @Test func aRedirectIsReturnedNotFollowed() async throws {
        let redirect = "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n"
        let server = try await RawServer.start(reply: Array(redirect.utf8))
        let response = try await withClient { try await send($0, port: server.port).get() }
        try await server.stop()
        #expect(response.status == 302)
        #expect(response.header("location") == "http://127.0.0.1:1/elsewhere")
    }

    @Test func aCompressedBodyIsReadAsSent() async throws {
        let bytes: [UInt8] = [0x1f, 0x8b, 0x00, 0x01, 0x02]  // not a valid gzip stream
        let server = try await RawServer.start(reply: RawServer.response(body: bytes, extra: "Content-Encoding: gzip\r\n"))
        let response = try await withClient { try await send($0, port: server.port).get() }
        try await server.stop()
        #expect(response.body == bytes)
    }

    @Test func cancellingTheCallerIsRetryable() async throws {
        let server = try await RawServer.start(reply: nil)
        let e = try await withClient { client in
            let call = Task { await send(client, port: server.port, timeout: .seconds(30)) }
            try await Task.sleep(for: .milliseconds(300))
            call.cancel()
            return try failure(await call.value)
        }
        try await server.stop()
        #expect(e.code == "Cancelled" && e.retryable, "\(e)")
    }

    @Test func theConfigurationIsTheOneDescribed() {
        let configuration = CordonHTTPClient.configuration(connectTimeout: .seconds(2))
        #expect(configuration.timeout.connect == .seconds(2))
        #expect(configuration.timeout.read == nil)
        #expect(configuration.connectionPool.retryConnectionEstablishment == false)
    }

    @Test func clientErrorsMapToOneCodeEach() {
        let cases: [(HTTPClientError, String, Bool)] = [
            (.deadlineExceeded, "RequestTimeout", true), (.readTimeout, "RequestTimeout", true), (.writeTimeout, "RequestTimeout", true),
            (.connectTimeout, "ConnectTimeout", true), (.getConnectionFromPoolTimeout, "ConnectTimeout", true),
            (.tlsHandshakeTimeout, "TLSHandshakeTimeout", true), (.remoteConnectionClosed, "ConnectionClosed", true), (.cancelled, "Cancelled", true),
            (.invalidURL, "InvalidURL", false), (.emptyHost, "InvalidURL", false), (.emptyScheme, "InvalidURL", false),
            (.uncleanShutdown, "ConnectionError", true),
        ]
        for (error, code, retryable) in cases {
            let e = TransportFailure.classify(error, describe: "probe: GET https://example.com", timeout: .seconds(3))
            #expect(e.code == code && e.retryable == retryable, "\(error) → \(e)")
            #expect(e.message.hasPrefix("probe: GET https://example.com: "), "\(e.message)")
        }
        #expect(TransportFailure.classify(CancellationError(), describe: "x", timeout: .seconds(1)).code == "Cancelled")
        let big = TransportFailure.classify(NIOTooManyBytesError(maxBytes: 10), describe: "x", timeout: .seconds(1))
        #expect(big.code == "ResponseTooLarge" && !big.retryable && big.message == "x: the response is larger than 10 bytes (not read)")
    }

    @Test func anInvalidHeaderIsNotQuoted() {
        // AsyncHTTPClient's description of this error holds the header's value.
        let e = TransportFailure.classify(HTTPClientError.invalidHeaderFieldValues(["Bearer SECRET-HEADER\r\n"]), describe: "x", timeout: .seconds(1))
        #expect(e.code == "ConnectionError")
        expectNoSecrets(e)
    }
}
