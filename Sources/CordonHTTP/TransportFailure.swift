import AsyncHTTPClient
import CordonCore
import NIOCore
import NIOSSL

/// The one classification of transport failures (no HTTP answer, or none in time): each
/// becomes an `ActionError` with a specific code, whether the step may retry it, and a
/// message that names the request by `describe` (`scheme://host[:port]`, never a path,
/// query or header).
///
/// | code | when | retried |
/// |---|---|---|
/// | `RequestTimeout` | no complete answer (head and body) within the deadline | yes |
/// | `ConnectTimeout` | the TCP connection was not established in time | yes |
/// | `TLSHandshakeTimeout` | connected, but the TLS handshake did not finish in time | yes |
/// | `ConnectionRefused` | nothing listens at the host and port | yes |
/// | `HostNotFound` | the host name does not resolve | yes |
/// | `HostUnreachable` | no route to the network or host | yes |
/// | `ConnectionClosed` | the server closed the connection before answering | yes |
/// | `Cancelled` | the calling task was cancelled | yes |
/// | `ConnectionError` | any other failure to connect or exchange | yes |
/// | `TLSError` | the certificate is not trusted or names another host, or the port does not speak TLS | no |
/// | `InvalidURL` | the URL has no host or scheme the client accepts | no |
/// | `ResponseTooLarge` | the body exceeds a `refuseOver` limit | no |
///
/// A cancelled request may or may not have reached the service, so the step may try
/// again (with the same idempotency key); a runner that is stopping leaves the intent to
/// the next start instead.
public enum TransportFailure {
    public static func classify(_ error: any Error, describe: String, timeout: Duration) -> ActionError {
        if error is CancellationError { return cancelled(describe) }
        if let e = error as? NIOTooManyBytesError {
            let bytes = e.maxBytes.map { " than \($0) bytes" } ?? ""
            return .permanent("ResponseTooLarge", "\(describe): the response is larger\(bytes) (not read)")
        }
        if let e = error as? HTTPClientError { return classify(e, describe: describe, timeout: timeout) }
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

    /// AsyncHTTPClient's own errors. Any other is described by its short form, which
    /// carries no associated values: those of an invalid header are the header's value.
    static func classify(_ e: HTTPClientError, describe: String, timeout: Duration) -> ActionError {
        switch e {
        case .deadlineExceeded, .readTimeout, .writeTimeout:
            return timedOut(describe, timeout)
        case .connectTimeout, .getConnectionFromPoolTimeout:
            return .retryable("ConnectTimeout", "\(describe): cannot connect (connection attempt timed out; is the host reachable?)")
        case .tlsHandshakeTimeout:
            return .retryable("TLSHandshakeTimeout", "\(describe): the TLS handshake timed out")
        case .remoteConnectionClosed:
            return .retryable("ConnectionClosed", "\(describe): the server closed the connection before answering")
        case .cancelled:
            return cancelled(describe)
        case .invalidURL, .emptyHost, .emptyScheme:
            return .permanent("InvalidURL", "\(describe): the URL is not a valid http or https URL")
        default:
            return .retryable("ConnectionError", "\(describe): \(e.shortDescription)")
        }
    }

    /// The deadline passed: before the connection was made, or (most often) with the
    /// server connected and silent.
    public static func timedOut(_ describe: String, _ timeout: Duration) -> ActionError {
        .retryable("RequestTimeout", "\(describe): no complete answer within \(DurationParser.format(timeout)) (timed out)")
    }

    static func cancelled(_ describe: String) -> ActionError {
        .retryable("Cancelled", "\(describe): cancelled")
    }

    /// A readable reason when the error is a TLS failure, else nil.
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
