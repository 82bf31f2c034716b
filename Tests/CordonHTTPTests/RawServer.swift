import CordonTestSupport
import Foundation
import NIOCore
import NIOPosix

/// A loopback TCP server that answers the first bytes of each connection with fixed
/// bytes (an HTTP response as written), or never answers when `reply` is nil.
struct RawServer {
    let channel: any Channel
    let port: Int

    static func start(reply: [UInt8]?) async throws -> RawServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Answer(reply: reply)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        guard let port = channel.localAddress?.port else { throw TestFailure("the server has no port") }
        return RawServer(channel: channel, port: port)
    }

    func stop() async throws {
        try await channel.close()
    }

    /// A 200 response with `body` and its length, plus `extra` header lines. It closes
    /// the connection: the server answers once per connection.
    static func response(body: [UInt8], extra: String = "") -> [UInt8] {
        Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\(extra)\r\n".utf8) + body
    }

    final class Answer: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let reply: [UInt8]?
        var answered = false

        init(reply: [UInt8]?) { self.reply = reply }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard let reply, !answered else { return }
            answered = true
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: reply)), promise: nil)
        }
    }
}

/// A loopback port bound by the returned socket, which does not listen: connecting to it
/// is refused. Close the socket when done.
func boundPort() throws -> (port: Int, fd: Int32) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard ok else {
        close(fd)
        throw TestFailure("cannot bind a loopback port")
    }
    return (Int(UInt16(bigEndian: addr.sin_port)), fd)
}
