/// A declarative HTTP integration (format: Integrations/README.md): each of its actions
/// becomes the playbook action `NAME.ACTION`.
public struct Integration: Sendable {
    public var name: String
    public var description: String?
    public var secrets: [String]
    public var actions: [Action]
    public var file: String
    public var location: SourceLocation

    public struct Action: Sendable {
        public var name: String
        public var description: String?
        public var inputs: [InputSpec]
        public var request: Request
        public var success: [Int]
        public var retryOn: [Int]
        public var idempotency: Idempotency?
        public var signature: Signature?
        public var location: SourceLocation
    }

    public struct Request: Sendable {
        public var method: String
        public var url: TemplateTree
        public var headers: [(name: String, value: TemplateTree)]
        public var query: [(name: String, value: TemplateTree)]
        public var body: TemplateTree?
        public var form: [(name: String, value: TemplateTree)]?
        public var timeout: Duration?
    }

    /// How the step's idempotency key reaches the service, so that a retry is deduplicated.
    public enum Idempotency: Sendable, Equatable {
        case header(String)
        case bodyField(String)
    }

    /// HMAC signing of the body (`t=…,v1=…`).
    public struct Signature: Sendable, Equatable {
        public var algorithm: String
        public var secret: String
        public var header: String
    }

    public static let identifier = "[a-z][a-z0-9_-]*"

    public static let shape: Shape = .object([
        .init("name", .string(pattern: identifier, help: "lowercase letters, digits, '_' and '-'"), required: true, "name; actions are NAME.ACTION"),
        .init("description", .string(), "what the integration talks to"),
        .init("secrets", .list(.string(pattern: "[A-Za-z_][A-Za-z0-9_]*", help: "letters, digits and '_'")), "secrets the templates use (from the environment or NAME_FILE)"),
        .init("actions", .map(actionShape, keyPattern: identifier, keyHelp: "lowercase letters, digits, '_' and '-'"), required: true, "the actions"),
    ])

    public static let actionShape: Shape = .object([
        .init("description", .string(), "what the action does"),
        .init(
            "inputs",
            .map(
                .object([
                    .init("type", .oneOf(ValueType.allCases.map(\.rawValue)), "the input's JSON type (default: string)"),
                    .init("required", .boolean, "whether a step must give it"),
                    .init("default", .any, "value when not given"),
                    .init("description", .string(), "what it is"),
                ]), keyPattern: "[A-Za-z_][A-Za-z0-9_]*", keyHelp: "letters, digits and '_'"),
            "inputs a step gives in `with`"),
        .init(
            "request",
            .object([
                .init("method", .oneOf(["GET", "POST", "PUT", "PATCH", "DELETE"]), required: true, "HTTP method"),
                .init("url", .template, required: true, "URL (templates allowed)"),
                .init("headers", .map(.template), "headers"),
                .init("query", .map(.templateValue), "query parameters"),
                .init("body", .templateValue, "JSON body"),
                .init("form", .map(.templateValue), "form body (application/x-www-form-urlencoded)"),
                .init("timeout", .duration, "total time allowed for one attempt (default 10s)"),
            ]), required: true, "the HTTP request"),
        .init("success", .list(.integer(min: 100, max: 599), minItems: 1), "status codes that mean success (default: 200-299)"),
        .init("retry_on", .list(.integer(min: 100, max: 599)), "status codes to retry (Retry-After is honoured)"),
        .init(
            "idempotency",
            .object([
                .init("header", .string(), "header that carries the idempotency key"),
                .init("body_field", .string(), "top-level body field that carries it"),
            ]), "how the service deduplicates retries"),
        .init(
            "signature",
            .object([
                .init("algorithm", .oneOf(["hmac-sha256"]), required: true, "signing algorithm"),
                .init("secret", .string(), required: true, "the secret holding the signing key"),
                .init("header", .string(), required: true, "header for t=…,v1=…"),
            ]), "sign the body"),
    ])

    /// The registry entries of this integration's actions.
    public var actionSpecs: [ActionSpec] {
        actions.map { action in
            ActionSpec(
                name: "\(name).\(action.name)", summary: action.description ?? "\(name) \(action.name)", kind: .notification,
                inputs: action.inputs,
                outputs: [OutputSpec("status", "HTTP status"), OutputSpec("headers", "selected response headers"), OutputSpec("body", "response body (bounded)")],
                definedIn: file)
        }
    }
}
