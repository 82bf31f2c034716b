import CordonCore
import CordonHTTP

/// How the integrations send: through `CordonHTTPClient` (its configuration, deadline and
/// failure codes), keeping the first `maxBodyBytes` of a response as evidence and reading
/// and discarding the rest up to `discardLimit` (then the connection is dropped and the
/// truncation noted).
public struct HTTPTransport: Sendable {
    /// Over the process's shared client, looked up at each request: building the actions
    /// of a command that calls no integration makes no client.
    public static let shared = HTTPTransport()

    /// nil: `CordonHTTPClient.shared`.
    let client: CordonHTTPClient?
    public let maxBodyBytes: Int
    public let discardLimit: Int

    public init(client: CordonHTTPClient? = nil, maxBodyBytes: Int = 1 << 20, discardLimit: Int = 16 << 20) {
        self.client = client
        self.maxBodyBytes = maxBodyBytes
        self.discardLimit = discardLimit
    }

    public typealias Response = CordonHTTPClient.Response

    /// Sends one request. `describe` names it in errors (`slack.post_message: POST
    /// https://hooks.slack.com`), never with its path, query or headers.
    func send(
        method: String, url: String, headers: [(String, String)], body: [UInt8]?, timeout: Duration, describe: String
    ) async throws(ActionError) -> Response {
        try await (client ?? .shared).send(
            method: method, url: url, headers: headers, body: body, timeout: timeout, limit: .keep(maxBodyBytes, discard: discardLimit),
            describe: describe)
    }
}
