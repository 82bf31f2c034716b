import HTTPTypes
import NIOCore
import NIOHTTPTypes
import Synchronization

/// How many connections the HTTP intake holds at once (`--max-connections`), shared by
/// the guards of all connections. When all places are taken the server stops accepting,
/// so that new connections wait in the kernel's listen backlog rather than being refused,
/// and accepts again as soon as a place is free; a connection accepted while accepting
/// was being stopped is closed at once.
public final class ConnectionLimiter: Sendable {
    public let limit: Int
    private struct State {
        var open = 0
        var paused = false
        var server: (any Channel)?
    }
    private let state = Mutex(State())

    public init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// The listening channel, whose accepting is paused and resumed.
    func serve(_ channel: any Channel) {
        state.withLock { $0.server = channel }
    }

    /// Takes a place; false (and nothing taken) when all are taken.
    func acquire() -> Bool {
        let (taken, pause) = state.withLock { s -> (Bool, (any Channel)?) in
            guard s.open < limit else { return (false, nil) }
            s.open += 1
            guard s.open == limit, !s.paused, let server = s.server else { return (true, nil) }
            s.paused = true
            return (true, server)
        }
        pause?.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        return taken
    }

    func release() {
        let resume = state.withLock { s -> (any Channel)? in
            s.open = max(0, s.open - 1)
            guard s.paused, s.open < limit, let server = s.server else { return nil }
            s.paused = false
            return server
        }
        resume?.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
    }

    /// The connections held now.
    public var current: Int { state.withLock { $0.open } }
}

/// The memory that bodies of requests not yet authenticated may hold together: a signed
/// request (its MAC covers the body) and an SNS message (its signature is inside it).
/// An API key is checked before the body is read, so its requests do not count.
public final class BodyBudget: Sendable {
    public let capacity: Int
    private let used = Mutex<Int>(0)

    public init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    /// Takes `bytes`; false (and nothing taken) when that would pass the capacity.
    public func reserve(_ bytes: Int) -> Bool {
        guard bytes >= 0 else { return false }
        return used.withLock { used in
            guard bytes <= capacity - used else { return false }
            used += bytes
            return true
        }
    }

    public func release(_ bytes: Int) {
        used.withLock { $0 = max(0, $0 - bytes) }
    }

    /// The bytes held now.
    public var current: Int { used.withLock { $0 } }
}

/// What a connection guard reports (to the metrics).
public struct ConnectionEvents: Sendable {
    public var refused: @Sendable () -> Void = {}
    public var timedOut: @Sendable () -> Void = {}
    public init(refused: @escaping @Sendable () -> Void = {}, timedOut: @escaping @Sendable () -> Void = {}) {
        self.refused = refused
        self.timedOut = timedOut
    }
}

/// One connection's guard, in the HTTP/1 pipeline after the HTTP types codec:
/// - it takes a place from the limiter, and closes the connection at once when there is
///   none (the client sees it closed and retries), which happens only to connections
///   accepted while the limiter was stopping the server from accepting;
/// - each request must arrive whole — headers and body — within the request timeout,
///   counted for the first request from the connection's start (so headers sent a byte
///   at a time are cut off too), for later ones from their headers. A request cut off
///   before it was answered gets `408` and the connection is closed;
/// - a response with `Connection: close` (the early refusals: 401, 413, 503) ends the
///   connection: its output is closed once the response is written and nothing more is
///   read from it (what the client still sends costs neither memory nor CPU); it is
///   closed after `linger`, which leaves the client time to read the answer before the
///   reset that closing a socket with unread data sends.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let limiter: ConnectionLimiter
    let requestTimeout: TimeAmount
    let linger: TimeAmount
    let events: ConnectionEvents

    private var admitted = false
    private var deadline: Scheduled<Void>?
    private var requestOpen = false
    private var responseStarted = false
    private var closeAfterResponse = false
    /// Past this point nothing more is read or written: the connection is ending.
    private var ending = false

    init(limiter: ConnectionLimiter, requestTimeout: TimeAmount, linger: TimeAmount = .seconds(1), events: ConnectionEvents) {
        self.limiter = limiter
        self.requestTimeout = requestTimeout
        self.linger = linger
        self.events = events
    }

    private var started = false

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    /// Takes a place, or closes the connection; starts the first request's deadline.
    private func start(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        admitted = limiter.acquire()
        guard admitted else {
            ending = true
            events.refused()
            context.close(promise: nil)
            return
        }
        arm(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        if admitted {
            admitted = false
            limiter.release()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        if admitted {
            admitted = false
            limiter.release()
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A connection that is ending drops what it still receives.
        guard !ending else { return }
        switch unwrapInboundIn(data) {
        case .head:
            requestOpen = true
            responseStarted = false
            arm(context)
        case .body:
            break
        case .end:
            requestOpen = false
            deadline?.cancel()
            deadline = nil
        }
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        // A connection that is ending reads no more from its socket.
        guard !ending else { return }
        context.read()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !ending else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        switch unwrapOutboundIn(data) {
        case .head(let head):
            responseStarted = true
            if head.headerFields[.connection]?.lowercased() == "close" { closeAfterResponse = true }
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            guard closeAfterResponse else {
                context.write(data, promise: promise)
                return
            }
            ending = true
            deadline?.cancel()
            deadline = nil
            context.writeAndFlush(data, promise: promise)
            end(context)
        }
    }

    /// Starts the deadline of the request being received, unless one runs.
    private func arm(_ context: ChannelHandlerContext) {
        guard deadline == nil else { return }
        let loop = context.eventLoop.assumeIsolated()
        let bound = context.loopBound
        deadline = loop.scheduleTask(in: requestTimeout) { [self] in
            deadline = nil
            timeout(bound.value)
        }
    }

    private func timeout(_ context: ChannelHandlerContext) {
        guard !ending else { return }
        ending = true
        events.timedOut()
        if requestOpen && !responseStarted {
            let head = HTTPResponse(status: .requestTimeout, headerFields: [.connection: "close", .contentLength: "0"])
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            end(context)
        } else {
            context.close(promise: nil)
        }
    }

    /// Closes the output now and the connection after the linger time. A lingering
    /// connection reads nothing and gives its place back at once.
    private func end(_ context: ChannelHandlerContext) {
        if admitted {
            admitted = false
            limiter.release()
        }
        let bound = context.loopBound
        context.close(mode: .output, promise: nil)
        context.eventLoop.assumeIsolated().scheduleTask(in: linger) {
            bound.value.close(promise: nil)
        }
    }
}
