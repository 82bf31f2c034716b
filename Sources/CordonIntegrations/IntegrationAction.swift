import CordonCore
import Foundation

/// One action of a declarative HTTP integration (`Integrations/NAME.yaml`), callable from
/// playbooks as `NAME.ACTION`.
///
/// Each attempt validates the inputs against the declaration, renders the request from
/// its templates (over `inputs`, `incident` and the declared `secret.*`), adds the
/// idempotency key and the signature the action declares, sends it with a connect
/// timeout and a deadline over the whole exchange, and checks the status: a `success`
/// status gives the outputs `status`, `headers` (selected) and `body` (bounded), with the
/// exchange (secrets redacted) as evidence; a `retry_on` status, a timeout or a network
/// failure is retryable (honouring `Retry-After`); anything else is permanent.
///
/// Not `checkable`: a service's deduplication (the idempotency key) is what makes a
/// resend after a crash harmless; see docs/integrations.md, "Delivery guarantees".
public struct IntegrationAction: Action {
    public let name: String
    public let definition: Integration.Action
    public let transport: HTTPTransport

    /// Deadline of one attempt when the action declares no `timeout`.
    public static let defaultTimeout: Duration = .seconds(10)
    /// Largest response body kept in the step's outputs (the evidence keeps up to the
    /// transport's `maxBodyBytes`).
    public static let maxOutputBodyBytes = 64 << 10
    /// Response headers copied into the outputs.
    public static let outputHeaders: Set<String> = [
        "content-type", "location", "retry-after", "x-request-id", "request-id", "x-amzn-requestid", "x-slack-req-id", "x-opsgenie-request-id",
    ]
    /// Request headers whose value is never written anywhere (only the scheme word stays).
    public static let credentialHeaders: Set<String> = ["authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"]

    public init(integration: String, definition: Integration.Action, transport: HTTPTransport = .shared) {
        self.name = "\(integration).\(definition.name)"
        self.definition = definition
        self.transport = transport
    }

    public func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        let inputs = try validate(request.inputs)
        let prepared = try prepare(inputs: inputs, request: request)
        let redact = Redactor(secrets: request.secrets, extra: prepared.derived)
        let started = ContinuousClock.now
        let response: HTTPTransport.Response
        do throws(ActionError) {
            response = try await transport.send(
                method: prepared.method, url: prepared.url, headers: prepared.headers, body: prepared.body, timeout: prepared.timeout,
                describe: prepared.describe)
        } catch {
            throw redact(error)
        }
        let elapsed = ContinuousClock.now - started
        let status = response.status
        guard definition.success.contains(status) else {
            let snippet = Self.snippet(response.body)
            let statusText = "\(status)\(Self.reason(status).map { " \($0)" } ?? "")"
            var message = "\(prepared.describe) answered HTTP \(statusText)"
            if !snippet.isEmpty { message += ": \(snippet)" }
            if definition.retryOn.contains(status) {
                let after = RetryAfter.parse(response.header("Retry-After"))
                if let after { message += " (Retry-After: \(DurationParser.format(after)))" }
                throw redact(.retryable("HTTP\(status)", message, after: after))
            }
            message += "; \(name) expects \(Self.statusList(definition.success))"
            if (400...499).contains(status) { message += " (a 4xx is not retried: the request or its credentials need fixing)" }
            throw redact(.permanent("HTTP\(status)", message))
        }

        // Outputs: status, selected headers, body (parsed JSON when it is JSON), bounded.
        var headers = JSONObject()
        for (n, v) in response.headers where Self.outputHeaders.contains(n.lowercased()) || n.lowercased().hasPrefix("x-ratelimit") {
            headers[n.lowercased()] = .string(v)
        }
        var outputs: JSONObject = ["status": .number(JSONNumber(status)), "headers": .object(headers)]
        let outputBody = Array(response.body.prefix(Self.maxOutputBodyBytes))
        outputs["body"] = Self.decodeBody(outputBody, contentType: response.header("Content-Type"), complete: !response.truncated && outputBody.count == response.body.count)
        if response.truncated || outputBody.count < response.body.count {
            outputs["body_note"] = .string(Self.truncationNote(response, kept: outputBody.count))
        }

        // Evidence: the exchange, with secrets and credentials redacted.
        var exchange: JSONObject = [
            "action": .string(name),
            "request": prepared.evidence,
            "response": [
                "status": .number(JSONNumber(status)),
                "headers": .array(response.headers.map { h in
                    [.string(h.name), .string(h.name.lowercased() == "set-cookie" ? "«redacted»" : h.value)]
                }),
                "body": Self.decodeBody(response.body, contentType: response.header("Content-Type"), complete: !response.truncated),
                "body_bytes": .number(JSONNumber(response.bodyBytes)),
                "truncated": .bool(response.truncated),
            ],
            "duration_ms": .number(JSONNumber(Int(elapsed.nanoseconds / 1_000_000))),
        ]
        if response.truncated { exchange["note"] = .string(Self.truncationNote(response, kept: response.body.count)) }
        var evidence: [JSONValue] = []
        if let ref = try? request.evidence.store(JSONWriter.bytes(redact(.object(exchange))), name: "http-exchange", mediaType: "application/json") {
            evidence.append(ref)
        }
        guard case .object(let safeOutputs) = redact(.object(outputs)) else { return ActionOutcome() }
        return ActionOutcome(outputs: safeOutputs, target: prepared.host, evidence: evidence)
    }

    // MARK: - Inputs

    /// The inputs by the declaration: unknown ones refused, defaults applied, required
    /// ones present, types checked; optional inputs not given are null.
    func validate(_ given: JSONObject) throws(ActionError) -> JSONObject {
        let declared = definition.inputs.map(\.name)
        for key in given.keys where !declared.contains(key) {
            throw .permanent("InvalidInput", "\(name) has no input \"\(key)\"; it takes \(declared.isEmpty ? "none" : declared.joined(separator: ", "))")
        }
        var out = JSONObject()
        for spec in definition.inputs {
            var value = given[spec.name]
            if value == nil || value == .null { value = spec.defaultValue }
            guard let value, value != .null else {
                if spec.required { throw .permanent("InvalidInput", "\(name) needs input \"\(spec.name)\" (\(spec.summary.isEmpty ? spec.type.rawValue : spec.summary))") }
                out[spec.name] = .null
                continue
            }
            guard spec.type.accepts(value) else {
                throw .permanent("InvalidInput", "\(name): input \"\(spec.name)\" must be \(spec.type.rawValue), not \(value.typeName)")
            }
            out[spec.name] = value
        }
        return out
    }

    // MARK: - The request

    struct Prepared: Sendable {
        var method: String
        var url: String
        var headers: [(String, String)]
        var body: [UInt8]?
        var timeout: Duration
        var secretsUsed: Set<String>
        /// Values derived from secrets for this request only (its signature).
        var derived: [(form: String, name: String)]
        /// `NAME.ACTION: METHOD scheme://host[:port]`: the request named without path,
        /// query or headers (where webhook secrets live).
        var describe: String
        var host: String
        /// The request as evidence (redacted by the caller; credentials already masked).
        var evidence: JSONValue
    }

    func prepare(inputs: JSONObject, request: ActionRequest) throws(ActionError) -> Prepared {
        var renderer = RequestRenderer(
            action: name, context: TemplateContext(root: ["inputs": .object(inputs), "incident": request.incident], secrets: request.secrets),
            secrets: request.secrets)
        let spec = definition.request
        let method = spec.method.uppercased()
        let target = try renderURL(spec, method: method, &renderer)
        var headers = try renderHeaders(spec, &renderer)
        let rendered = try renderBody(spec, &renderer)
        var bodyJSON = rendered.json
        let form = rendered.form
        var idempotency = try addIdempotencyKey(request.idempotencyKey, headers: &headers, body: &bodyJSON)
        let body = Self.encodeBody(json: bodyJSON, form: form, method: method, headers: &headers)
        if !Self.hasHeader(headers, "User-Agent") { headers.append(("User-Agent", "Cordon/\(Cordon.version)")) }
        var derived: [(form: String, name: String)] = []
        if let signature = definition.signature {
            derived = try sign(body ?? [], with: signature, secrets: request.secrets, headers: &headers)
            renderer.secretsUsed.insert(signature.secret)
        }
        if !idempotency.isEmpty { idempotency["key"] = .string(request.idempotencyKey) }
        let evidence = self.evidence(method: method, url: target.url, headers: headers, bodyJSON: bodyJSON, form: form, idempotency: idempotency)
        return Prepared(
            method: method, url: target.url, headers: headers, body: body, timeout: spec.timeout ?? Self.defaultTimeout, secretsUsed: renderer.secretsUsed,
            derived: derived, describe: target.describe, host: target.host, evidence: .object(evidence))
    }

    /// The URL with its query added, its host, and the request named for messages
    /// (`NAME.ACTION: METHOD scheme://host[:port]`).
    private func renderURL(
        _ spec: Integration.Request, method: String, _ renderer: inout RequestRenderer
    ) throws(ActionError) -> (url: String, host: String, describe: String) {
        var url = plainText(try renderer.render(spec.url, "url"))
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(), ["http", "https"].contains(scheme),
            let host = components.host, !host.isEmpty
        else {
            throw .permanent("InvalidURL", "\(name): the url does not render to an http or https URL (\(renderer.redact(url).prefix(200)))")
        }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        let describe = "\(name): \(method) \(scheme)://\(hostPart)\(components.port.map { ":\($0)" } ?? "")"
        var query: [(String, String)] = []
        for (key, tree) in spec.query {
            let value = try renderer.render(tree, "query \(key)")
            switch value {
            case .null: continue
            case .array(let items): query += items.filter { $0 != .null }.map { (key, plainText($0)) }
            default: query.append((key, plainText(value)))
            }
        }
        if !query.isEmpty {
            url += (url.contains("?") ? "&" : "?") + query.map { "\(Self.percent($0.0))=\(Self.percent($0.1))" }.joined(separator: "&")
        }
        return (url, host, describe)
    }

    /// The declared headers that render to a value; a line break in one is refused.
    private func renderHeaders(_ spec: Integration.Request, _ renderer: inout RequestRenderer) throws(ActionError) -> [(String, String)] {
        var headers: [(String, String)] = []
        for (key, tree) in spec.headers {
            let value = try renderer.render(tree, "header \(key)")
            if value == .null { continue }
            let text = plainText(value)
            guard !text.contains("\r"), !text.contains("\n"), !text.contains("\0") else {
                throw .permanent("InvalidHeader", "\(name): header \(key) would contain a line break (header injection refused)")
            }
            headers.append((key, text))
        }
        return headers
    }

    /// The body: JSON, or form fields (those that render to a value), or neither.
    private func renderBody(
        _ spec: Integration.Request, _ renderer: inout RequestRenderer
    ) throws(ActionError) -> (json: JSONValue?, form: [(String, String)]?) {
        if let tree = spec.body { return (try renderer.render(tree, "body"), nil) }
        guard let fields = spec.form else { return (nil, nil) }
        var pairs: [(String, String)] = []
        for (key, tree) in fields {
            let value = try renderer.render(tree, "form \(key)")
            if value != .null { pairs.append((key, plainText(value))) }
        }
        return (nil, pairs)
    }

    /// Adds the step's idempotency key where the action declares it, unless the request
    /// sets the field itself (PagerDuty's dedup_key = incident id, so that `resolve`
    /// finds what `trigger` opened); answers what the evidence says about it.
    private func addIdempotencyKey(_ key: String, headers: inout [(String, String)], body bodyJSON: inout JSONValue?) throws(ActionError) -> JSONObject {
        switch definition.idempotency {
        case .header(let h)?:
            if Self.hasHeader(headers, h) { return ["header": .string(h), "source": "set by the request"] }
            headers.append((h, key))
            return ["header": .string(h), "source": "step idempotency key"]
        case .bodyField(let f)?:
            guard case .object(var object)? = bodyJSON else {
                throw .permanent("InvalidBody", "\(name): idempotency.body_field \(f) needs a JSON object body")
            }
            if let existing = object[f], existing != .null, existing != .string("") {
                return ["body_field": .string(f), "source": "set by the request"]
            }
            object[f] = .string(key)
            bodyJSON = .object(object)
            return ["body_field": .string(f), "source": "step idempotency key"]
        case nil:
            return [:]
        }
    }

    /// The bytes sent, with the Content-Type they imply unless the request sets one; an
    /// empty body for a POST, PUT or PATCH without one, none for other methods.
    static func encodeBody(json: JSONValue?, form: [(String, String)]?, method: String, headers: inout [(String, String)]) -> [UInt8]? {
        if let json {
            if !hasHeader(headers, "Content-Type") { headers.append(("Content-Type", "application/json")) }
            return JSONWriter.bytes(json)
        }
        if let form {
            if !hasHeader(headers, "Content-Type") { headers.append(("Content-Type", "application/x-www-form-urlencoded")) }
            return Array(FormEncoding.encode(form).utf8)
        }
        return ["POST", "PUT", "PATCH"].contains(method) ? [] : nil
    }

    static func hasHeader(_ headers: [(String, String)], _ n: String) -> Bool { headers.contains { $0.0.lowercased() == n.lowercased() } }

    /// Adds the signature header over the exact bytes sent; answers the values derived
    /// from the key for this request, to redact (a receiver may echo the signature).
    private func sign(
        _ body: [UInt8], with signature: Integration.Signature, secrets: SecretStore, headers: inout [(String, String)]
    ) throws(ActionError) -> [(form: String, name: String)] {
        guard let key = secrets.value(signature.secret) else {
            throw .permanent(
                "MissingSecret", "\(name): secret \(signature.secret) (the signing key) is not set (set \(signature.secret) or \(signature.secret)_FILE)")
        }
        let t = Int(Date().timeIntervalSince1970)
        let value = WebhookSignature.header(body: body, secret: key, timestamp: t)
        headers.append((signature.header, value))
        var derived: [(form: String, name: String)] = [(form: value, name: signature.secret)]
        for part in value.split(separator: ",") where part.contains("=") {
            derived.append((form: String(part.split(separator: "=", maxSplits: 1)[1]), name: signature.secret))
        }
        return derived
    }

    /// The request as evidence: credentials masked; the caller redacts secrets.
    private func evidence(
        method: String, url: String, headers: [(String, String)], bodyJSON: JSONValue?, form: [(String, String)]?, idempotency: JSONObject
    ) -> JSONObject {
        var evidenceHeaders = JSONObject()
        for (n, v) in headers {
            let masked: String
            if Self.credentialHeaders.contains(n.lowercased()) {
                masked = v.split(separator: " ", maxSplits: 1).count == 2 ? "\(v.split(separator: " ")[0]) «redacted»" : "«redacted»"
            } else {
                masked = v
            }
            evidenceHeaders[n] = .string(masked)
        }
        var evidence: JSONObject = ["method": .string(method), "url": .string(url), "headers": .object(evidenceHeaders)]
        if let bodyJSON { evidence["body"] = bodyJSON }
        if let form { evidence["form"] = .object(JSONObject(form.map { ($0.0, JSONValue.string($0.1)) }, uniquingKeysWith: { a, _ in a })) }
        if !idempotency.isEmpty { evidence["idempotency"] = .object(idempotency) }
        if let s = definition.signature { evidence["signature"] = ["header": .string(s.header), "algorithm": .string(s.algorithm)] }
        return evidence
    }

    // MARK: - Helpers

    static func percent(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: URLComponents.unreserved) ?? "" }

    static func decodeBody(_ bytes: [UInt8], contentType: String?, complete: Bool) -> JSONValue {
        if bytes.isEmpty { return .string("") }
        let looksJSON = contentType?.lowercased().contains("json") ?? false || bytes.first == UInt8(ascii: "{") || bytes.first == UInt8(ascii: "[")
        if complete, looksJSON, let value = try? JSONParser.parse(bytes) { return value }
        return .string(String(decoding: bytes, as: UTF8.self))
    }

    static func truncationNote(_ r: HTTPTransport.Response, kept: Int) -> String {
        r.gaveUp
            ? "response body larger than \(r.bodyBytes) bytes: kept the first \(kept) bytes, stopped reading the rest"
            : "response body of \(r.bodyBytes) bytes: kept the first \(kept) bytes, the rest was discarded"
    }

    /// The start of a body for an error message: one line, at most 300 characters.
    /// Statuses as people write them: consecutive ones as a range (`200–299, 304`).
    static func statusList(_ statuses: [Int]) -> String {
        var parts: [String] = []
        var run: (first: Int, last: Int)?
        for status in Set(statuses).sorted() {
            if let r = run, status == r.last + 1 {
                run = (r.first, status)
                continue
            }
            if let r = run { parts.append(r.first == r.last ? "\(r.first)" : "\(r.first)–\(r.last)") }
            run = (status, status)
        }
        if let r = run { parts.append(r.first == r.last ? "\(r.first)" : "\(r.first)–\(r.last)") }
        return parts.joined(separator: ", ")
    }

    static func snippet(_ body: [UInt8]) -> String {
        let text = String(decoding: body.prefix(600), as: UTF8.self)
            .replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
            .trimmingCharacters(in: .whitespaces)
        return text.count > 300 ? String(text.prefix(300)) + "…" : text
    }

    static func reason(_ status: Int) -> String? {
        [
            400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
            409: "Conflict", 410: "Gone", 413: "Payload Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Entity",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
        ][status]
    }
}

/// The actions of loaded integrations, by playbook name (`NAME.ACTION`).
public enum IntegrationActions {
    public static func all(_ integrations: [Integration], transport: HTTPTransport = .shared) -> [String: any Action] {
        var out: [String: any Action] = [:]
        for integration in integrations {
            for action in integration.actions {
                let a = IntegrationAction(integration: integration.name, definition: action, transport: transport)
                out[a.name] = a
            }
        }
        return out
    }
}

/// Renders an action's request templates over one context (`inputs`, `incident` and the
/// declared secrets), collecting the secrets they used.
private struct RequestRenderer {
    /// `NAME.ACTION`, for messages.
    let action: String
    let context: TemplateContext
    let secrets: SecretStore
    var secretsUsed: Set<String> = []

    /// Hides every known secret in a text that may hold one.
    var redact: Redactor { Redactor(secrets: secrets) }

    mutating func render(_ tree: TemplateTree, _ what: String) throws(ActionError) -> JSONValue {
        do throws(TemplateError) {
            let r = try tree.render(context)
            secretsUsed.formUnion(r.secretsUsed)
            return r.value
        } catch {
            throw .permanent("TemplateError", "\(action): \(what): \(redact(error.description))")
        }
    }
}
