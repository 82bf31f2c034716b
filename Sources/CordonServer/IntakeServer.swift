import CordonCore
import CordonEngine
import CordonHTTP
import CordonIntake
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle

/// Settings of the HTTP intake (`cordon run --listen`).
public struct IntakeServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// The largest body accepted (413 above it).
    public var maxBody: Int
    public var authenticator: RequestAuthenticator
    /// SNS topics whose messages `POST /v1/sns` accepts (and whose subscriptions it confirms).
    public var snsTopics: Set<String>
    /// Hosts (`host` or `host:port`) besides `sns.<region>.amazonaws.com` whose
    /// SubscribeURL may be followed, over http or https (tests, local emulators).
    public var snsConfirmHosts: Set<String>
    /// PEM certificate used for every SNS message instead of fetching SigningCertURL.
    public var snsCertificatePEM: String?
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    /// Connections idle this long are closed.
    public var idleTimeout: Duration
    /// Bearer tokens that may read `/metrics` (besides the API keys).
    public var metricsTokens: [String] = []
    /// Serve `/metrics` to anyone (behind a firewall, say).
    public var metricsUnauthenticated = false
    /// Connections held at once; more are closed as they arrive.
    public var maxConnections = 1024
    /// A request's headers and body must arrive within this (for the first request of a
    /// connection, counted from its start); else 408 and the connection is closed.
    public var requestTimeout: Duration = .seconds(30)
    /// Bytes that bodies not yet authenticated (signed requests, SNS messages) may hold
    /// together; beyond it such requests get 503 until others finish.
    public var unauthenticatedBodyBudget = 32 << 20

    public init(
        host: String = "127.0.0.1", port: Int = 8080, maxBody: Int = 1 << 20, authenticator: RequestAuthenticator = RequestAuthenticator(),
        snsTopics: Set<String> = [], snsConfirmHosts: Set<String> = [], snsCertificatePEM: String? = nil, tlsCertificatePath: String? = nil,
        tlsKeyPath: String? = nil, idleTimeout: Duration = .seconds(60)
    ) {
        self.host = host
        self.port = port
        self.maxBody = maxBody
        self.authenticator = authenticator
        self.snsTopics = snsTopics
        self.snsConfirmHosts = snsConfirmHosts
        self.snsCertificatePEM = snsCertificatePEM
        self.tlsCertificatePath = tlsCertificatePath
        self.tlsKeyPath = tlsKeyPath
        self.idleTimeout = idleTimeout
    }

    public var usesTLS: Bool { tlsCertificatePath != nil && tlsKeyPath != nil }

    /// True for 127.0.0.0/8, ::1 and localhost.
    public var isLoopback: Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }
}

/// The webhook, SNS, health and metrics endpoints (Hummingbird 2).
///
/// Every accepted finding is journaled (durable) before the response: `202` carries the
/// finding ids. Requests that fail authentication (401), exceed the body limit (413) or
/// do not decode completely (400) journal nothing.
public final class IntakeServer: Sendable {
    public let configuration: IntakeServerConfiguration
    public let engine: Engine
    public let batcher: IntakeBatcher
    public let receipts: ReceiptQueue
    public let metrics: ServerMetrics
    /// nil when ready, else why not (`GET /readyz`).
    let readiness: @Sendable () async -> String?
    let logger: Logger
    let verifier: SNSVerifier
    let connections: ConnectionLimiter
    let unauthenticatedBodies: BodyBudget

    public init(
        configuration: IntakeServerConfiguration, engine: Engine, batcher: IntakeBatcher, receipts: ReceiptQueue, metrics: ServerMetrics,
        readiness: @escaping @Sendable () async -> String? = { nil }, logger: Logger = CordonLog.silent
    ) {
        self.configuration = configuration
        self.engine = engine
        self.batcher = batcher
        self.receipts = receipts
        self.metrics = metrics
        self.readiness = readiness
        self.logger = logger
        // The process's shared client, looked up at use (here and in `confirm`): a server
        // that sends nothing makes none, and `Cordon.runMain` shuts it down.
        self.verifier = SNSVerifier(localCertificatePEM: configuration.snsCertificatePEM, http: { .shared })
        self.connections = ConnectionLimiter(limit: configuration.maxConnections)
        self.unauthenticatedBodies = BodyBudget(capacity: configuration.unauthenticatedBodyBudget)
    }

    /// Serves until the calling task is cancelled, which shuts the server down
    /// gracefully; `onRunning` gets the bound port.
    public func run(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let app = try makeApplication(onRunning: onRunning)
        let group = ServiceGroup(services: [app], gracefulShutdownSignals: [], cancellationSignals: [], logger: Self.logger)
        // Cancelling the caller shuts the server down gracefully: it stops accepting,
        // lets requests in progress finish (their findings are durable), then returns.
        let serving = Task { try await group.run() }
        let result = await withTaskCancellationHandler {
            await serving.result
        } onCancel: {
            // A cancellation handler is synchronous; the shutdown it starts is not.
            Task { await group.triggerGracefulShutdown() }
        }
        try result.get()
    }

    static let logger: Logger = {
        var logger = Logger(label: "cordon.server")
        logger.logLevel = .error
        return logger
    }()

    func makeApplication(onRunning: @escaping @Sendable (Int) async -> Void) throws -> some ApplicationProtocol {
        let router = Router()
        router.post("/v1/findings") { request, _ in await self.findings(request) }
        router.post("/v1/sns") { request, _ in await self.sns(request) }
        router.get("/healthz") { _, _ in Self.json(.ok, ["status": "ok"]) }
        router.get("/readyz") { _, _ in
            if let reason = await self.readiness() { return Self.json(.serviceUnavailable, ["status": "not ready", "reason": .string(reason)]) }
            return Self.json(.ok, ["status": "ready"])
        }
        router.get("/metrics") { request, _ in
            if !self.configuration.metricsUnauthenticated,
                let reason = self.configuration.authenticator.checkMetrics(
                    header: { name in HTTPField.Name(name).flatMap { request.headers[$0] } }, tokens: self.configuration.metricsTokens)
            {
                var response = Self.error(.unauthorized, reason)
                response.headers[.wwwAuthenticate] = "Bearer"
                return response
            }
            return await self.metricsResponse()
        }
        let limiter = connections
        let requestTimeout = TimeAmount.nanoseconds(Self.nanoseconds(configuration.requestTimeout))
        let metrics = self.metrics
        let events = ConnectionEvents(refused: { metrics.connection("refused") }, timedOut: { metrics.connection("timed_out") })
        let http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: [ConnectionGuard(limiter: limiter, requestTimeout: requestTimeout, events: events)],
            idleTimeout: .nanoseconds(Self.nanoseconds(configuration.idleTimeout)))
        var server: HTTPServerBuilder = .http1(configuration: http1)
        if let certPath = configuration.tlsCertificatePath, let keyPath = configuration.tlsKeyPath {
            let chain = try NIOSSLCertificate.fromPEMFile(certPath).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
            server = try .tls(.http1(configuration: http1), tlsConfiguration: .makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key)))
        }
        return Application(
            router: router, server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "cordon", backlog: 1024),
            onServerRunning: { channel in
                limiter.serve(channel)
                await onRunning(channel.localAddress?.port ?? 0)
            }, logger: Self.logger)
    }

    static func nanoseconds(_ d: Duration) -> Int64 {
        let (seconds, attoseconds) = d.components
        let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : ns &+ attoseconds / 1_000_000_000
    }

    // MARK: - Responses

    static func json(_ status: HTTPResponse.Status, _ body: JSONValue) -> Response {
        var bytes = JSONWriter.bytes(body)
        bytes.append(0x0A)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func error(_ status: HTTPResponse.Status, _ message: String, issues: [DecodeIssue] = []) -> Response {
        var body: JSONObject = ["error": .string(message)]
        if !issues.isEmpty {
            body["issues"] = .array(
                issues.map { issue in
                    var o: JSONObject = ["message": .string(issue.message), "where": .string(issue.origin.description)]
                    if let line = issue.origin.line { o["line"] = .number(JSONNumber(line)) }
                    if let offset = issue.origin.byteOffset { o["offset"] = .number(JSONNumber(offset)) }
                    if !issue.origin.path.isEmpty { o["path"] = .string(issue.origin.path.joined(separator: ".")) }
                    return .object(o)
                })
        }
        return json(status, .object(body))
    }

    /// A value, or the response that ends the request.
    enum Step<T> {
        case success(T)
        case failure(Response)
    }

    /// A response that ends the connection (the guard closes it once written), for a
    /// request refused before its body was read: reading it would only waste memory.
    static func refusing(_ response: Response) -> Response {
        var response = response
        response.headers[.connection] = "close"
        return response
    }

    /// The body, or the 413 (or 503) response; never reads more than the limit. A body
    /// not yet authenticated is held within the budget of unauthenticated bodies, which
    /// `reserved` tells how much of to give back once the request is answered.
    func body(_ request: Request, source: String, budget: BodyBudget? = nil, reserved: inout Int) async -> Step<[UInt8]> {
        let limit = configuration.maxBody
        let tooLarge = Self.refusing(Self.error(.contentTooLarge, "body is larger than the limit of \(limit) bytes (--max-body)"))
        let declared = request.headers[.contentLength].flatMap { Int($0) }
        if let declared, declared > limit {
            metrics.finding(source: source, outcome: "too_large")
            return .failure(tooLarge)
        }
        func busy() -> Step<[UInt8]> {
            metrics.finding(source: source, outcome: "busy")
            var response = Self.refusing(
                Self.error(.serviceUnavailable, "too many unauthenticated request bodies are being received (--unauthenticated-body-budget); retry shortly"))
            response.headers[.retryAfter] = "1"
            return .failure(response)
        }
        if let budget, let declared {
            guard budget.reserve(declared) else { return busy() }
            reserved += declared
        }
        var bytes: [UInt8] = []
        do {
            for try await buffer in request.body {
                guard bytes.count + buffer.readableBytes <= limit else {
                    metrics.finding(source: source, outcome: "too_large")
                    return .failure(tooLarge)
                }
                if let budget, bytes.count + buffer.readableBytes > reserved {
                    let more = bytes.count + buffer.readableBytes - reserved
                    guard budget.reserve(more) else { return busy() }
                    reserved += more
                }
                bytes.append(contentsOf: buffer.readableBytesView)
            }
        } catch {
            metrics.finding(source: source, outcome: "error")
            return .failure(Self.error(.badRequest, "cannot read the body: \(error)"))
        }
        return .success(bytes)
    }

    func decode(_ bytes: [UInt8], source: String) -> Step<[Finding]> {
        var decoder = FindingDecoder()
        decoder.maxInputBytes = configuration.maxBody
        decoder.maxDecompressedBytes = max(configuration.maxBody, 8 * configuration.maxBody)
        let result = decoder.decode(bytes, source: "request")
        if !result.issues.isEmpty {
            metrics.finding(source: source, outcome: "malformed")
            let first = result.issues[0].description
            return .failure(
                Self.error(
                    .badRequest, "malformed input (nothing was journaled): \(first)\(result.issues.count > 1 ? " (and \(result.issues.count - 1) more)" : "")",
                    issues: result.issues))
        }
        if result.findings.isEmpty {
            metrics.finding(source: source, outcome: "malformed")
            return .failure(Self.error(.badRequest, "the body holds no findings"))
        }
        return .success(result.findings)
    }

    /// Journals (durable), hands the receipts to the handlers, and answers 202/200.
    func accept(_ findings: [Finding], source: String, status: HTTPResponse.Status) async -> Response {
        // Backpressure: when the handlers fall behind, answers wait (as the queue
        // directory's intake does) rather than the backlog growing without bound.
        guard await receipts.waitForRoom() else {
            return Self.error(.serviceUnavailable, "shutting down; nothing was accepted (retry later)")
        }
        let received: [Engine.Receipt]
        do {
            received = try await batcher.receive(findings)
        } catch {
            metrics.finding(source: source, outcome: "error", count: findings.count)
            logger.warning("\(source): journal write failed: \(error)")
            return Self.error(.serviceUnavailable, "the journal write failed; nothing was accepted (retry later)")
        }
        var duplicates = 0
        for receipt in received {
            if receipt.duplicate { duplicates += 1 }
            metrics.finding(source: source, outcome: receipt.duplicate ? "duplicate" : "accepted")
            if !receipt.pending.isEmpty { await receipts.submit(receipt) }
        }
        return Self.json(status, ["accepted": .array(received.map { .string($0.id) }), "duplicates": .number(JSONNumber(duplicates))])
    }

    // MARK: - Routes

    func findings(_ request: Request) async -> Response {
        let authenticator = configuration.authenticator
        let header = { (name: String) in HTTPField.Name(name).flatMap { request.headers[$0] } }
        func unauthorized(_ rejection: RequestAuthenticator.Rejection) -> Response {
            metrics.finding(source: "http", outcome: "unauthorized")
            var response = Self.refusing(Self.error(.unauthorized, rejection.message))
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        // The headers decide first: a request without valid credentials is refused
        // before a byte of its body is read.
        let admission: RequestAuthenticator.Admission
        switch authenticator.admit(header: header) {
        case .success(let a): admission = a
        case .failure(let rejection): return unauthorized(rejection)
        }
        var reserved = 0
        defer { if reserved > 0 { unauthenticatedBodies.release(reserved) } }
        let bytes: [UInt8]
        switch await body(request, source: "http", budget: admission == .needsBody ? unauthenticatedBodies : nil, reserved: &reserved) {
        case .success(let b): bytes = b
        case .failure(let response): return response
        }
        let credential: RequestAuthenticator.Credential
        switch admission {
        case .authenticated(let c): credential = c
        case .needsBody:
            switch authenticator.authenticate(header: header, body: bytes) {
            case .success(let c): credential = c
            case .failure(let rejection): return unauthorized(rejection)
            }
        }
        let response: Response
        switch decode(bytes, source: "http") {
        case .success(let findings): response = await accept(findings, source: "http", status: .accepted)
        case .failure(let failure): response = failure
        }
        // Nothing journaled: the sender may send this very request again.
        if response.status != .accepted { authenticator.release(credential) }
        return response
    }

    func sns(_ request: Request) async -> Response {
        // An SNS message is authenticated by the signature inside it: its body counts
        // against the budget of unauthenticated bodies until the request is answered.
        var reserved = 0
        defer { if reserved > 0 { unauthenticatedBodies.release(reserved) } }
        let bytes: [UInt8]
        switch await body(request, source: "sns", budget: unauthenticatedBodies, reserved: &reserved) {
        case .success(let b): bytes = b
        case .failure(let response): return response
        }
        let message: SNSMessage
        switch SNSMessage.parse(bytes) {
        case .success(let m): message = m
        case .failure(let e):
            metrics.finding(source: "sns", outcome: "malformed")
            return Self.error(.badRequest, e.message)
        }
        guard let topic = message["TopicArn"], configuration.snsTopics.contains(topic) else {
            metrics.finding(source: "sns", outcome: "unauthorized")
            logger.warning("sns: rejected a \(message.type) from topic \(message["TopicArn"] ?? "(none)"), which is not allowed (--sns-topic)")
            return Self.error(.forbidden, "topic \(message["TopicArn"] ?? "(none)") is not allowed here (--sns-topic)")
        }
        do {
            try await verifier.verify(message)
        } catch {
            metrics.finding(source: "sns", outcome: "unauthorized")
            logger.warning("sns: rejected a \(message.type) from \(topic): \(error.message)")
            return Self.error(HTTPResponse.Status(code: error.status), error.message)
        }
        switch message.type {
        case "SubscriptionConfirmation":
            return await confirm(message, topic: topic)
        case "UnsubscribeConfirmation":
            logger.info("sns: unsubscribed from \(topic)")
            return Self.json(.ok, ["status": "unsubscribed"])
        case "Notification":
            switch decode(bytes, source: "sns") {
            case .success(let findings): return await accept(findings, source: "sns", status: .ok)
            case .failure(let response): return response
            }
        default:
            metrics.finding(source: "sns", outcome: "malformed")
            return Self.error(.badRequest, "unknown SNS message Type \(message.type)")
        }
    }

    func confirm(_ message: SNSMessage, topic: String) async -> Response {
        guard let urlText = message["SubscribeURL"], let url = URLComponents(string: urlText), let host = url.host else {
            return Self.error(.badRequest, "SubscriptionConfirmation has no SubscribeURL")
        }
        let hostPort = url.port.map { "\(host):\($0)" } ?? host
        let allowed =
            (url.scheme == "https" && SNSVerifier.isAWSHost(host))
            || ((url.scheme == "https" || url.scheme == "http") && (configuration.snsConfirmHosts.contains(hostPort) || configuration.snsConfirmHosts.contains(host)))
        guard allowed else {
            logger.warning("sns: not confirming \(topic): SubscribeURL host \(hostPort) is not sns.<region>.amazonaws.com")
            return Self.error(.forbidden, "SubscribeURL must be https on sns.<region>.amazonaws.com")
        }
        do throws(ActionError) {
            // The URL carries the subscription's token: errors name its origin only.
            let describe = "sns: GET \(url.scheme ?? "https")://\(hostPort)"
            let response = try await CordonHTTPClient.shared.send(
                method: "GET", url: urlText, headers: [], body: nil, timeout: .seconds(10), limit: .refuseOver(64 << 10), describe: describe)
            guard (200..<300).contains(response.status) else {
                logger.warning("sns: confirming \(topic) failed: HTTP \(response.status)")
                return Self.error(.badGateway, "confirming the subscription failed: HTTP \(response.status)")
            }
        } catch {
            logger.warning("sns: confirming \(topic) failed: \(error)")
            return Self.error(.badGateway, "confirming the subscription failed: \(error)")
        }
        logger.info("sns: confirmed the subscription to \(topic)")
        return Self.json(.ok, ["status": "confirmed", "topic": .string(topic)])
    }

    func metricsResponse() async -> Response {
        let text = metrics.render(
            incidents: await engine.counts(),
            http: ServerMetrics.HTTPGauges(connections: connections.current, unauthenticatedBodyBytes: unauthenticatedBodies.current))
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// `IntakeServer` as a service (Hummingbird's `Application`, itself a service group):
/// on graceful shutdown it stops accepting connections and returns once the requests in
/// progress are answered.
extension IntakeServer {
    public func service(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) throws -> some Service {
        try makeApplication(onRunning: onRunning)
    }
}
