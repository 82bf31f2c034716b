import AsyncHTTPClient
import CordonCore
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// The HTTP client every outgoing call of Cordon goes through (the AWS APIs, the
/// integrations, SNS subscription confirmation and signing certificates), configured once:
///
/// - no redirects: a redirect would carry a request's credentials (a signature, a webhook
///   secret, an SNS token) to a host nobody declared;
/// - no decompression: bodies are read as sent, within a byte limit;
/// - a connect timeout, and a connection attempt that fails is not retried by the pool:
///   the step's retry policy is the one place that retries, and the journal shows each
///   attempt and why;
/// - a deadline over the whole exchange, head and body (AsyncHTTPClient's own deadline
///   stops at the head), and a bounded body read.
///
/// Transport failures become `ActionError`s through `TransportFailure.classify`.
public final class CordonHTTPClient: Sendable {
    /// Shared by the process, made on first use (its client starts the event loop
    /// threads): a command that sends nothing never makes it.
    public static var shared: CordonHTTPClient {
        madeShared.withLock { made in
            if let made { return made }
            let client = CordonHTTPClient()
            made = client
            return client
        }
    }
    private static let madeShared = Mutex<CordonHTTPClient?>(nil)

    /// Shuts the shared client down if it was made (the command line, when its command
    /// returns); a later use makes a new one.
    public static func shutdownShared() async {
        let made = madeShared.withLock { made in
            defer { made = nil }
            return made
        }
        try? await made?.shutdown()
    }

    public static let defaultConnectTimeout: Duration = .seconds(5)

    let client: HTTPClient
    public let connectTimeout: Duration

    /// - Parameter tls: trust settings other than the system's (tests, private CAs).
    public init(connectTimeout: Duration = defaultConnectTimeout, tls: TLSConfiguration? = nil) {
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: Self.configuration(connectTimeout: connectTimeout, tls: tls))
        self.connectTimeout = connectTimeout
    }

    /// The configuration described above. There is no read timeout: `send`'s deadline
    /// covers the whole exchange.
    public static func configuration(connectTimeout: Duration, tls: TLSConfiguration? = nil) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: connectTimeout.timeAmount)
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.connectionPool.retryConnectionEstablishment = false
        if let tls { configuration.tlsConfiguration = tls }
        return configuration
    }

    /// Closes the connections. Call once, after the last request; requests after it fail.
    public func shutdown() async throws {
        try await client.shutdown()
    }

    /// How much of a response body is read.
    public enum BodyLimit: Sendable {
        /// The whole body, or a permanent `ResponseTooLarge` beyond this many bytes (an API
        /// answer that cannot be parsed in part).
        case refuseOver(Int)
        /// The first `keep` bytes; the rest is read and discarded up to `discard` more
        /// bytes, then the connection is dropped (`gaveUp`). A receiver's answer is
        /// evidence even when it is long.
        case keep(Int, discard: Int)
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: [(name: String, value: String)]
        /// The body as read: whole, or at most `keep` bytes.
        public var body: [UInt8]
        /// Bytes received in all (a lower bound when `gaveUp`).
        public var bodyBytes: Int
        public var truncated: Bool
        public var gaveUp: Bool

        public init(status: Int, headers: [(name: String, value: String)], body: [UInt8], bodyBytes: Int, truncated: Bool = false, gaveUp: Bool = false) {
            self.status = status
            self.headers = headers
            self.body = body
            self.bodyBytes = bodyBytes
            self.truncated = truncated
            self.gaveUp = gaveUp
        }

        public func header(_ name: String) -> String? {
            let lower = name.lowercased()
            return headers.first { $0.name.lowercased() == lower }?.value
        }
    }

    /// Sends one request and reads its body within `timeout`. `describe` names the request
    /// in errors (`slack.post_message: POST https://hooks.slack.com`, `ec2 DescribeInstances
    /// at https://ec2.us-east-1.amazonaws.com`) and must hold neither a path, a query nor a
    /// header: those are where credentials live.
    public func send(
        method: String, url: String, headers: [(String, String)], body: [UInt8]?, timeout: Duration, limit: BodyLimit, describe: String
    ) async throws(ActionError) -> Response {
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(body) }
        let client = self.client
        let prepared = request
        let result: Result<Response, ActionError> =
            await SystemClock().withTimeout(timeout) { () -> Result<Response, ActionError> in
                do {
                    let response = try await client.execute(prepared, deadline: .now() + timeout.timeAmount)
                    return .success(try await Self.read(response, limit: limit))
                } catch {
                    return .failure(TransportFailure.classify(error, describe: describe, timeout: timeout))
                }
            } ?? .failure(TransportFailure.timedOut(describe, timeout))
        return try result.get()
    }

    static func read(_ response: HTTPClientResponse, limit: BodyLimit) async throws -> Response {
        let status = Int(response.status.code)
        let headers = response.headers.map { (name: $0.name, value: $0.value) }
        switch limit {
        case .refuseOver(let max):
            let buffer = try await response.body.collect(upTo: max)
            return Response(status: status, headers: headers, body: Array(buffer.readableBytesView), bodyBytes: buffer.readableBytes)
        case .keep(let keep, let discard):
            var kept: [UInt8] = []
            var total = 0
            var gaveUp = false
            for try await chunk in response.body {
                total += chunk.readableBytes
                if kept.count < keep {
                    kept += chunk.readableBytesView.prefix(keep - kept.count)
                }
                if total > keep + discard {
                    gaveUp = true
                    break
                }
            }
            return Response(status: status, headers: headers, body: kept, bodyBytes: total, truncated: total > keep, gaveUp: gaveUp)
        }
    }
}

extension Duration {
    /// The same span in NIO's type, in whole nanoseconds (saturating).
    var timeAmount: TimeAmount {
        let (s, a) = (components.seconds, components.attoseconds)
        let (n, overflow) = s.multipliedReportingOverflow(by: 1_000_000_000)
        return .nanoseconds(overflow ? .max : n &+ a / 1_000_000_000)
    }
}
