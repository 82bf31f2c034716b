import AsyncHTTPClient
import CordonCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// The HTTP transport of the integrations: one AsyncHTTPClient per process with a connect
/// timeout, no redirects (a redirect would carry secrets to a host nobody declared), a
/// deadline over the whole exchange (head and body) and a bounded body read. Transport
/// failures become specific, redacted `ActionError`s.
public final class HTTPTransport: Sendable {
    /// Shared by every integration action of the process, made on first use (its client
    /// starts the event loop threads): a command that calls no integration never makes it.
    public static var shared: HTTPTransport {
        madeShared.withLock { made in
            if let made { return made }
            let transport = HTTPTransport()
            made = transport
            return transport
        }
    }
    private static let madeShared = Mutex<HTTPTransport?>(nil)

    /// Shuts the shared transport down if it was made (the command line, when its command
    /// returns); a later use makes a new one.
    public static func shutdownShared() async {
        let made = madeShared.withLock { made in
            defer { made = nil }
            return made
        }
        try? await made?.shutdown()
    }

    /// Closes the client's connections. Requests after it fail.
    public func shutdown() async throws {
        try await client.shutdown()
    }

    let client: HTTPClient
    public let connectTimeout: Duration
    /// Bytes of a response body kept; the rest is read and discarded (up to
    /// `discardLimit`, then the connection is dropped) and the truncation noted.
    public let maxBodyBytes: Int
    public let discardLimit: Int

    public init(connectTimeout: Duration = .seconds(5), maxBodyBytes: Int = 1 << 20, discardLimit: Int = 16 << 20, tls: TLSConfiguration? = nil) {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: .nanoseconds(Int64(connectTimeout.nanoseconds)))
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        // The engine retries (journaled, with backoff); the pool must fail a connection
        // attempt at once rather than retry it silently until the deadline.
        configuration.connectionPool.retryConnectionEstablishment = false
        if let tls { configuration.tlsConfiguration = tls }
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.connectTimeout = connectTimeout
        self.maxBodyBytes = maxBodyBytes
        self.discardLimit = discardLimit
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: [(name: String, value: String)]
        /// At most `maxBodyBytes`.
        public var body: [UInt8]
        /// Bytes received in all (a lower bound when `gaveUp`).
        public var bodyBytes: Int
        public var truncated: Bool
        public var gaveUp: Bool

        public func header(_ name: String) -> String? {
            let lower = name.lowercased()
            return headers.first { $0.name.lowercased() == lower }?.value
        }
    }

    /// Sends one request. `describe` names it in errors (`slack.post_message: POST
    /// https://hooks.slack.com`), never with its path, query or headers.
    func send(
        method: String, url: String, headers: [(String, String)], body: [UInt8]?, timeout: Duration, describe: String
    ) async throws(ActionError) -> Response {
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(body) }
        let client = self.client
        let keep = maxBodyBytes
        let discard = discardLimit
        let prepared = request
        // The deadline covers the body too (the client's own stops at the head).
        let result: Result<Response, ActionError> =
            await SystemClock().withTimeout(timeout) { () -> Result<Response, ActionError> in
                do {
                    let response = try await client.execute(prepared, deadline: .now() + .nanoseconds(Int64(timeout.nanoseconds)))
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
                    return .success(
                        Response(
                            status: Int(response.status.code), headers: response.headers.map { (name: $0.name, value: $0.value) }, body: kept,
                            bodyBytes: total, truncated: total > keep, gaveUp: gaveUp))
                } catch {
                    return .failure(Self.classify(error, describe: describe, timeout: timeout))
                }
            } ?? .failure(Self.timedOut(describe, timeout))
        return try result.get()
    }

    static func timedOut(_ describe: String, _ timeout: Duration) -> ActionError {
        .retryable("Timeout", "\(describe): no complete answer within \(DurationParser.format(timeout)) (timed out; the receiver accepted the connection but did not respond)")
    }

    /// A specific message per failure: refused, DNS, TLS, timeouts, closed connections.
    static func classify(_ error: any Error, describe: String, timeout: Duration) -> ActionError {
        if error is CancellationError { return .retryable("Cancelled", "\(describe): cancelled") }
        if let e = error as? HTTPClientError {
            switch e {
            case .deadlineExceeded, .readTimeout, .writeTimeout:
                return timedOut(describe, timeout)
            case .connectTimeout, .getConnectionFromPoolTimeout:
                return .retryable("ConnectTimeout", "\(describe): cannot connect (connection attempt timed out; is the host reachable?)")
            case .tlsHandshakeTimeout:
                return .retryable("TLSHandshakeTimeout", "\(describe): the TLS handshake timed out")
            case .remoteConnectionClosed:
                return .retryable("ConnectionClosed", "\(describe): the receiver closed the connection before answering")
            case .cancelled:
                return .retryable("Cancelled", "\(describe): cancelled")
            case .invalidURL, .emptyHost, .emptyScheme:
                return .permanent("InvalidURL", "\(describe): the URL is not a valid http or https URL")
            default:
                break
            }
        }
        if let tls = tlsProblem(error) {
            return .permanent("TLSError", "\(describe): TLS handshake failed: \(tls)")
        }
        let text = String(describing: error)
        if text.localizedCaseInsensitiveContains("refused") {
            return .retryable("ConnectionRefused", "\(describe): connection refused (nothing listens there: is the URL right and the service up?)")
        }
        if text.localizedCaseInsensitiveContains("resolve") || text.localizedCaseInsensitiveContains("getaddrinfo") || text.contains("NXDOMAIN") {
            return .retryable("HostNotFound", "\(describe): the host name does not resolve (\(text))")
        }
        if text.localizedCaseInsensitiveContains("unreachable") {
            return .retryable("HostUnreachable", "\(describe): network or host unreachable (\(text))")
        }
        return .retryable("ConnectionError", "\(describe): \(text)")
    }

    /// A readable reason when the error is a TLS failure.
    static func tlsProblem(_ error: any Error) -> String? {
        let text = String(describing: error)
        let isTLS = error is NIOSSLError || error is NIOSSLExtraError || text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("NIOSSL")
        guard isTLS else { return nil }
        if text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("certificate verify failed") {
            return "the server's certificate is not trusted (self-signed, expired or from an unknown CA)"
        }
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            return "the server's certificate does not name this host"
        }
        if text.contains("WRONG_VERSION_NUMBER") {
            return "the server does not speak TLS on this port (is the URL http rather than https?)"
        }
        return text
    }
}
