import AsyncHTTPClient
import CordonCloud
import CordonCore
import Foundation
import NIOCore
import NIOHTTP1

/// A response as read from the wire (body capped).
public struct AWSResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }
}

/// The HTTP transport of the AWS clients: one shared AsyncHTTPClient with a connect
/// timeout, a per-request deadline and a response size cap. Whoever creates it calls
/// `shutdown()` once every request is done.
public final class AWSHTTPClient: Sendable {
    public let client: HTTPClient
    /// Deadline of one request, from sending to the last body byte.
    public let requestTimeout: TimeAmount
    /// Larger responses fail with `ResponseTooLarge`.
    public let maxResponseBytes: Int

    public static let defaultMaxResponseBytes = 8 << 20

    public init(connectTimeout: TimeAmount = .seconds(5), requestTimeout: TimeAmount = .seconds(30), maxResponseBytes: Int = defaultMaxResponseBytes) {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: connectTimeout, read: requestTimeout)
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        // A refused connection fails the call at once (as a retryable error) instead of
        // being retried silently until the connect timeout: the step's retry policy is
        // the one place that decides, and the journal shows each attempt and why.
        configuration.connectionPool.retryConnectionEstablishment = false
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.requestTimeout = requestTimeout
        self.maxResponseBytes = maxResponseBytes
    }

    /// Closes the connections. Call once, after the last request.
    public func shutdown() async throws {
        try await client.shutdown()
    }

    /// Sends a signed request. Transport failures become `ActionError`s: timeouts and
    /// connection failures are retryable; the message names the endpoint, never a header.
    public func send(_ request: AWSRequest, service: AWSService, operation: String, timeout: TimeAmount? = nil) async throws(ActionError) -> AWSResponse {
        var http = HTTPClientRequest(url: request.url)
        http.method = HTTPMethod(rawValue: request.method.uppercased())
        for (name, value) in request.headers { http.headers.add(name: name, value: value) }
        if !request.body.isEmpty || request.method.uppercased() == "POST" || request.method.uppercased() == "PUT" {
            http.body = .bytes(request.body)
        }
        let where_ = "\(service.rawValue) \(operation) at \(request.scheme)://\(request.host)"
        let limit = timeout ?? requestTimeout
        let client = self.client
        let prepared = http
        let maxBytes = maxResponseBytes
        // The deadline covers the body too (the client's own stops at the head).
        let result: Result<AWSResponse, ActionError> =
            await SystemClock().withTimeout(.nanoseconds(max(0, limit.nanoseconds))) { () -> Result<AWSResponse, ActionError> in
                do {
                    let response = try await client.execute(prepared, timeout: limit)
                    let buffer = try await response.body.collect(upTo: maxBytes)
                    let headers = response.headers.map { (name: $0.name, value: $0.value) }
                    return .success(AWSResponse(status: Int(response.status.code), headers: headers, body: Array(buffer.readableBytesView)))
                } catch {
                    return .failure(Self.transportError(error, where_: where_, limit: limit, maxBytes: maxBytes))
                }
            } ?? .failure(.retryable("RequestTimeout", "\(where_) did not answer within \(Self.seconds(limit)) (timed out)"))
        return try result.get()
    }

    static func seconds(_ t: TimeAmount) -> String {
        let ms = t.nanoseconds / 1_000_000
        return ms % 1000 == 0 ? "\(ms / 1000) s" : "\(ms) ms"
    }

    static func transportError(_ error: any Error, where_: String, limit: TimeAmount, maxBytes: Int) -> ActionError {
        if error is NIOTooManyBytesError {
            return .permanent("ResponseTooLarge", "\(where_) sent a response larger than \(maxBytes) bytes")
        }
        if let e = error as? HTTPClientError {
            switch e {
            case .deadlineExceeded, .readTimeout, .writeTimeout:
                return .retryable("RequestTimeout", "\(where_) did not answer within \(seconds(limit)) (timed out)")
            case .connectTimeout, .tlsHandshakeTimeout, .getConnectionFromPoolTimeout:
                return .retryable("ConnectTimeout", "cannot connect to \(where_): connection timed out")
            case .remoteConnectionClosed:
                return .retryable("ConnectionClosed", "\(where_) closed the connection before answering")
            case .cancelled:
                return .retryable("Cancelled", "\(where_): request cancelled")
            case .invalidURL, .emptyHost, .emptyScheme:
                return .permanent("InvalidEndpoint", "\(where_): invalid endpoint URL")
            default:
                return .retryable("ConnectionError", "\(where_) failed: \(e)")
            }
        }
        // Cancelled, a request may or may not have reached the service: like the
        // integrations' transport, the step may try again (with the same idempotency
        // key); a runner that is stopping leaves the intent to the next start instead.
        if error is CancellationError {
            return .retryable("Cancelled", "\(where_): request cancelled")
        }
        let text = String(describing: error)
        if text.localizedCaseInsensitiveContains("refused") {
            return .retryable("ConnectionRefused", "cannot connect to \(where_): connection refused (is the endpoint right and the service up?)")
        }
        return .retryable("ConnectionError", "cannot connect to \(where_): \(text)")
    }
}
