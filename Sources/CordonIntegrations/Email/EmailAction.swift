import CordonCore
import Foundation

/// `core.email`: a plain-text message over SMTP submission, with STARTTLS (default) or
/// implicit TLS and AUTH PLAIN/LOGIN from secrets (`SMTP_USERNAME`, `SMTP_PASSWORD`, or the
/// names given in `username_secret` / `password_secret`; AUTH is used when both are set).
///
/// Not `checkable` (a sent mail cannot be read back): a resend after a crash is possible
/// and carries the same Message-ID, derived from the step's idempotency key.
public struct EmailAction: Action {
    public static let name = "core.email"
    /// Deadline of one attempt (connect to the end of DATA).
    public var timeout: Duration

    public init(timeout: Duration = .seconds(30)) { self.timeout = timeout }

    public func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        let inputs = request.inputs
        func string(_ key: String) -> String? { inputs[key]?.stringValue }
        func list(_ key: String) -> [String] {
            switch inputs[key] {
            case .string(let s)?: return [s]
            case .array(let items)?: return items.compactMap(\.stringValue)
            default: return []
            }
        }
        guard let server = string("server"), !server.isEmpty else { throw .permanent("InvalidInput", "core.email needs `server` (host or host:port)") }
        let security = SMTPClient.Security(rawValue: string("tls") ?? "starttls")
        guard let security else { throw .permanent("InvalidInput", "core.email: tls must be starttls, tls or none") }
        let (host, port) = try Self.hostPort(server, defaultPort: security == .tls ? 465 : 587)
        let message = EmailMessage(
            from: string("from") ?? "", to: list("to"), cc: list("cc"), subject: string("subject") ?? "", body: string("body") ?? "",
            idempotencyKey: request.idempotencyKey, incident: request.incident["id"]?.stringValue)
        try message.validate()

        let userSecret = string("username_secret") ?? "SMTP_USERNAME"
        let passwordSecret = string("password_secret") ?? "SMTP_PASSWORD"
        var credentials: (String, String)? = nil
        if let user = request.secrets.value(userSecret), let password = request.secrets.value(passwordSecret) {
            credentials = (user, password)
        }
        // A server may echo what AUTH sent: the credentials in base64.
        var derived: [(form: String, name: String)] = []
        if let (user, password) = credentials {
            derived.append((Data(Array("\0\(user)\0\(password)".utf8)).base64EncodedString(), passwordSecret))
            derived.append((Data(password.utf8).base64EncodedString(), passwordSecret))
            derived.append((Data(user.utf8).base64EncodedString(), userSecret))
        }
        let redact = Redactor(secrets: request.secrets, extra: derived)
        let client = SMTPClient(host: host, port: port, security: security, credentials: credentials, caFile: string("ca_file"))
        let deadline = timeout
        let describe = client.describe
        let result: Result<Void, ActionError> = await withTaskGroup(of: Result<Void, ActionError>?.self) { group in
            group.addTask {
                do throws(ActionError) { try await client.send(message); return .success(()) } catch { return .failure(error) }
            }
            group.addTask {
                do { try await Task.sleep(for: deadline) } catch { return nil }
                return .failure(.retryable("RequestTimeout", "\(describe): no complete answer within \(DurationParser.format(deadline)) (timed out)"))
            }
            var outcome: Result<Void, ActionError> = .failure(.retryable("Cancelled", "\(describe): cancelled"))
            for await next in group {
                if let next { outcome = next; break }
            }
            group.cancelAll()
            return outcome
        }
        if case .failure(let error) = result { throw redact(error) }
        let recipients = message.to + message.cc
        return ActionOutcome(
            outputs: [
                "recipients": .array(recipients.map(JSONValue.string)), "server": .string("\(host):\(port)"),
                "message_id": .string("<\(request.idempotencyKey.prefix(64))@\(client.heloName)>"), "tls": .string(security.rawValue),
                "authenticated": .bool(credentials != nil),
            ],
            target: recipients.joined(separator: ", "))
    }

    static func hostPort(_ server: String, defaultPort: Int) throws(ActionError) -> (String, Int) {
        var host = server
        var port = defaultPort
        if server.hasPrefix("[") {
            guard let close = server.firstIndex(of: "]") else { throw .permanent("InvalidInput", "core.email: bad server \"\(server)\"") }
            host = String(server[server.index(after: server.startIndex)..<close])
            let rest = server[server.index(after: close)...]
            if rest.hasPrefix(":") {
                guard let p = Int(rest.dropFirst()) else { throw .permanent("InvalidInput", "core.email: bad port in \"\(server)\"") }
                port = p
            }
        } else if let colon = server.lastIndex(of: ":") {
            host = String(server[..<colon])
            guard let p = Int(server[server.index(after: colon)...]) else { throw .permanent("InvalidInput", "core.email: bad port in \"\(server)\"") }
            port = p
        }
        guard !host.isEmpty, (1...65535).contains(port), !host.contains(where: { $0.isWhitespace || $0 == "/" }) else {
            throw .permanent("InvalidInput", "core.email: server must be host or host:port, not \"\(server)\"")
        }
        return (host, port)
    }
}

extension EmailAction {
    /// What `core.email` takes and gives.
    public static let spec = ActionSpec(
        name: "core.email",
        summary: "Send a plain-text e-mail over SMTP (STARTTLS by default; AUTH PLAIN/LOGIN from secrets)",
        kind: .notification,
        inputs: [
            InputSpec("server", .string, required: true, "SMTP server, host or host:port (port 587, or 465 with tls: tls)"),
            InputSpec("from", .string, required: true, "sender address"),
            InputSpec("to", .stringList, required: true, "recipient addresses"),
            InputSpec("cc", .stringList, "copy recipients"),
            InputSpec("subject", .string, required: true, "subject (one line)"),
            InputSpec("body", .string, required: true, "plain-text body"),
            InputSpec("tls", .string, default: "starttls", "starttls (required), tls (implicit, port 465) or none (local relay; no AUTH)"),
            InputSpec("username_secret", .string, default: "SMTP_USERNAME", "secret holding the SMTP user name (AUTH when both secrets are set)"),
            InputSpec("password_secret", .string, default: "SMTP_PASSWORD", "secret holding the SMTP password"),
            InputSpec("ca_file", .string, "PEM file of extra CA certificates to trust (an internal relay)"),
        ],
        outputs: [
            OutputSpec("recipients", "the addresses the server accepted"), OutputSpec("message_id", "the Message-ID sent"),
            OutputSpec("server", "host:port"), OutputSpec("tls", "the TLS mode"), OutputSpec("authenticated", "whether AUTH was used"),
        ])
}
