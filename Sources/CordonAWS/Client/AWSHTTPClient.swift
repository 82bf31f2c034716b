import CordonCloud
import CordonCore
import CordonHTTP
import Foundation
import NIOCore

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

/// The HTTP transport of the AWS clients: `CordonHTTPClient` (its configuration, deadline
/// and failure codes) with a per-request deadline and a response size cap. It uses the
/// process's shared client (`shared(requestTimeout:)`, which whoever made the shared
/// client shuts down) or its own (`init`, which its creator closes with `shutdown()`
/// once every request is done).
public final class AWSHTTPClient: Sendable {
    /// Its own client; nil: `CordonHTTPClient.shared`, looked up at each request.
    let own: CordonHTTPClient?
    /// Deadline of one request, from sending to the last body byte.
    public let requestTimeout: TimeAmount
    /// Larger responses fail with `ResponseTooLarge`.
    public let maxResponseBytes: Int

    public static let defaultMaxResponseBytes = 8 << 20

    /// With a client of its own, which `shutdown()` closes.
    public init(connectTimeout: TimeAmount = .seconds(5), requestTimeout: TimeAmount = .seconds(30), maxResponseBytes: Int = defaultMaxResponseBytes) {
        self.own = CordonHTTPClient(connectTimeout: .nanoseconds(connectTimeout.nanoseconds))
        self.requestTimeout = requestTimeout
        self.maxResponseBytes = maxResponseBytes
    }

    private init(sharedWith requestTimeout: TimeAmount, maxResponseBytes: Int) {
        self.own = nil
        self.requestTimeout = requestTimeout
        self.maxResponseBytes = maxResponseBytes
    }

    /// Over `CordonHTTPClient.shared` (its connect timeout): `shutdown()` leaves it open.
    public static func shared(requestTimeout: TimeAmount = .seconds(30), maxResponseBytes: Int = defaultMaxResponseBytes) -> AWSHTTPClient {
        AWSHTTPClient(sharedWith: requestTimeout, maxResponseBytes: maxResponseBytes)
    }

    /// Closes its own client's connections; nothing for the shared one. Call once, after
    /// the last request.
    public func shutdown() async throws {
        try await own?.shutdown()
    }

    /// Sends a signed request. Transport failures become `ActionError`s
    /// (`TransportFailure`): the message names the service, the operation and the
    /// endpoint, never a header.
    public func send(_ request: AWSRequest, service: AWSService, operation: String, timeout: TimeAmount? = nil) async throws(ActionError) -> AWSResponse {
        let method = request.method.uppercased()
        let body: [UInt8]? = !request.body.isEmpty || method == "POST" || method == "PUT" ? request.body : nil
        let deadline = Duration.nanoseconds(max(0, (timeout ?? requestTimeout).nanoseconds))
        let response = try await (own ?? .shared).send(
            method: method, url: request.url, headers: request.headers.map { ($0.name, $0.value) }, body: body, timeout: deadline,
            limit: .refuseOver(maxResponseBytes), describe: "\(service.rawValue) \(operation) at \(request.scheme)://\(request.host)")
        return AWSResponse(status: response.status, headers: response.headers, body: response.body)
    }
}
