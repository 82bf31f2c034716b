import CordonCore
import CordonHTTP
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// A minimal SMTP submission client (RFC 5321) on SwiftNIO: EHLO, STARTTLS (RFC 3207) or
/// implicit TLS, AUTH PLAIN / LOGIN (RFC 4954) only over TLS, MAIL, RCPT, DATA, QUIT.
/// Replies 4xx are retryable and 5xx permanent; every error names the stage and the
/// server's reply.
struct SMTPClient: Sendable {
    enum Security: String, Sendable {
        /// Plain connection, upgraded with STARTTLS; refused if the server does not offer it.
        case starttls
        /// TLS from the first byte (port 465).
        case tls
        /// No encryption (a local relay only); AUTH is refused.
        case none
    }

    var host: String
    var port: Int
    var security: Security
    var credentials: (user: String, password: String)?
    /// Extra CA certificates (PEM file) to trust, e.g. an internal relay's.
    var caFile: String?
    var connectTimeout: Duration = .seconds(10)
    var heloName: String = "cordon.localhost"

    var describe: String { "core.email: SMTP \(host):\(port)" }

    struct Reply: Sendable {
        var code: Int
        var lines: [String]
        var text: String { lines.joined(separator: " / ") }
    }

    func send(_ message: EmailMessage) async throws(ActionError) {
        do {
            try await dialogue(message)
        } catch let e as ActionError {
            throw e
        } catch {
            throw TransportFailure.classify(error, describe: describe, timeout: connectTimeout)
        }
    }

    private func tlsContext() throws -> NIOSSLContext {
        var config = TLSConfiguration.makeClientConfiguration()
        // Do not wait long for the server's close_notify when hanging up.
        config.shutdownTimeout = .seconds(1)
        if let caFile { config.additionalTrustRoots = [.file(caFile)] }
        return try NIOSSLContext(configuration: config)
    }

    private func dialogue(_ message: EmailMessage) async throws {
        let context: NIOSSLContext? = security == .none ? nil : try tlsContext()
        let host = self.host
        let implicitTLS = security == .tls
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.nanoseconds(connectTimeout.nanoseconds))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if implicitTLS, let context {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: host))
                    }
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        try await channel.executeThenClose { inbound, outbound in
            var reader = ReplyReader(iterator: inbound.makeAsyncIterator())
            func command(_ line: String, expect: Set<Int>, stage: String, shown: String? = nil) async throws -> Reply {
                do {
                    try await outbound.write(ByteBuffer(string: line + "\r\n"))
                } catch {
                    // The connection failed; the reason (a TLS alert, a reset) is on the
                    // inbound side.
                    _ = try await reader.next()
                    throw error
                }
                return try await expectReply(&reader, expect, stage: "\(stage) (\(shown ?? line))")
            }
            _ = try await expectReply(&reader, [220], stage: "greeting")
            var extensions = try await command("EHLO \(heloName)", expect: [250], stage: "EHLO").lines.dropFirst().map { $0.uppercased() }
            var encrypted = implicitTLS
            if security == .starttls {
                guard extensions.contains(where: { $0 == "STARTTLS" }) else {
                    throw ActionError.permanent("NoStartTLS", "\(describe) does not offer STARTTLS; refusing to send in clear text (set tls: none only for a local relay)")
                }
                _ = try await command("STARTTLS", expect: [220], stage: "STARTTLS")
                guard let context else { throw ActionError.permanent("TLSError", "\(describe): no TLS context") }
                let ch = channel.channel
                try await ch.eventLoop.submit {
                    try ch.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: host), position: .first)
                }.get()
                encrypted = true
                extensions = try await command("EHLO \(heloName)", expect: [250], stage: "EHLO after STARTTLS").lines.dropFirst().map { $0.uppercased() }
            }
            if let credentials {
                guard encrypted else {
                    throw ActionError.permanent("AuthWithoutTLS", "\(describe): refusing to send the SMTP password over an unencrypted connection (use tls: starttls or tls)")
                }
                let mechanisms = extensions.first { $0.hasPrefix("AUTH ") || $0.hasPrefix("AUTH=") }?.dropFirst(5).split(separator: " ").map(String.init) ?? []
                if mechanisms.contains("PLAIN") {
                    let token = Data(Array("\0\(credentials.user)\0\(credentials.password)".utf8)).base64EncodedString()
                    _ = try await command("AUTH PLAIN \(token)", expect: [235], stage: "AUTH", shown: "AUTH PLAIN …")
                } else if mechanisms.contains("LOGIN") {
                    _ = try await command("AUTH LOGIN", expect: [334], stage: "AUTH", shown: "AUTH LOGIN")
                    _ = try await command(Data(credentials.user.utf8).base64EncodedString(), expect: [334], stage: "AUTH", shown: "user name")
                    _ = try await command(Data(credentials.password.utf8).base64EncodedString(), expect: [235], stage: "AUTH", shown: "password")
                } else {
                    throw ActionError.permanent(
                        "NoAuth", "\(describe) offers no AUTH PLAIN or LOGIN (offers: \(mechanisms.isEmpty ? "no AUTH" : mechanisms.joined(separator: " ")))")
                }
            }
            _ = try await command("MAIL FROM:<\(message.from)>", expect: [250], stage: "MAIL FROM")
            for rcpt in message.to + message.cc {
                _ = try await command("RCPT TO:<\(rcpt)>", expect: [250, 251], stage: "RCPT TO")
            }
            _ = try await command("DATA", expect: [354], stage: "DATA")
            let text = EmailMessage.dotStuffed(message.rendered(host: heloName))
            try await outbound.write(ByteBuffer(string: text + ".\r\n"))
            _ = try await expectReply(&reader, [250], stage: "end of DATA")
            try? await outbound.write(ByteBuffer(string: "QUIT\r\n"))
            _ = try? await reader.next()
        }
    }

    private func expectReply(_ reader: inout ReplyReader, _ codes: Set<Int>, stage: String) async throws -> Reply {
        guard let reply = try await reader.next() else {
            throw ActionError.retryable("ConnectionClosed", "\(describe) closed the connection at \(stage)")
        }
        guard codes.contains(reply.code) else {
            let text = "\(describe) answered \(reply.code) at \(stage): \(reply.text.prefix(300))"
            if reply.code == 535 || reply.code == 534 || reply.code == 530 {
                throw ActionError.permanent("AuthFailed", text + " (check the SMTP user name and password secrets)")
            }
            throw (400..<500).contains(reply.code) ? ActionError.retryable("SMTP\(reply.code)", text) : ActionError.permanent("SMTP\(reply.code)", text)
        }
        return reply
    }

    /// Reads CRLF-terminated lines and groups them into replies (`250-…` continues,
    /// `250 …` ends). A reply is limited to 64 KiB.
    struct ReplyReader {
        var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
        var pending: [UInt8] = []

        mutating func line() async throws -> String? {
            while true {
                if let i = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    var lineBytes = Array(pending[..<i])
                    pending.removeFirst(i + 1)
                    if lineBytes.last == UInt8(ascii: "\r") { lineBytes.removeLast() }
                    return String(decoding: lineBytes, as: UTF8.self)
                }
                guard pending.count < 65_536 else { throw ActionError.permanent("BadReply", "the SMTP server sent a line longer than 64 KiB") }
                guard let chunk = try await iterator.next() else { return nil }
                pending += chunk.readableBytesView
            }
        }

        mutating func next() async throws -> Reply? {
            var lines: [String] = []
            var total = 0
            while let line = try await line() {
                total += line.utf8.count
                guard total < 65_536 else { throw ActionError.permanent("BadReply", "the SMTP server sent a reply longer than 64 KiB") }
                let bytes = Array(line.utf8)
                guard bytes.count >= 3, let code = Int(String(decoding: bytes[0..<3], as: UTF8.self)) else {
                    throw ActionError.permanent("BadReply", "the server's reply is not SMTP: \(line.prefix(120))")
                }
                lines.append(bytes.count > 4 ? String(decoding: bytes[4...], as: UTF8.self) : "")
                if bytes.count == 3 || bytes[3] == UInt8(ascii: " ") { return Reply(code: code, lines: lines) }
            }
            return nil
        }
    }
}
