import ArgumentParser
import CordonCore
import Foundation
import Logging

/// `cordon.yaml`: the settings of every command, between the command line (which wins)
/// and the built-in defaults.
///
/// Found at `--config FILE`, else `CORDON_CONFIG`, else `./cordon.yaml`, else
/// `/etc/cordon/cordon.yaml`; none is fine. Each setting stands for one command-line
/// option, and is given to the commands that have that option as if it came first on
/// their command line: a flag given on the command line comes after and wins (a list
/// given on the command line replaces the file's). Relative paths resolve against the
/// file's own directory.
struct ConfigFile {
    enum Kind: Sendable, Equatable {
        case string, path, integer, flag, duration, strings, paths
        case choice([String])
    }

    /// One setting: its key in the file, the option it stands for and the commands that have it.
    struct Setting: Sendable {
        var key: String
        var option: String
        var kind: Kind
        var commands: Set<String>
        var help: String
    }

    static let configCommands: Set<String> = ["process", "run", "approve", "rollback", "validate", "schema", "drill", "iam-policy"]
    static let dataCommands: Set<String> = [
        "process", "run", "incidents", "show", "approve", "rollback", "close", "timeline", "export", "journal verify", "journal key", "journal checkpoint",
        "journal rotate-key",
    ]
    static let cloudCommands: Set<String> = ["process", "run", "approve", "rollback"]
    static let roleCommands: Set<String> = cloudCommands.union(["iam-policy"])
    static let run: Set<String> = ["run"]
    static let loggingCommands: Set<String> = ["run", "process", "approve", "rollback", "close", "drill"]

    /// Every setting, in the order `cordon config show` prints them.
    static let settings: [Setting] = [
        Setting(key: "data_dir", option: "--data-dir", kind: .path, commands: dataCommands, help: "where Cordon keeps its journal, evidence and keys"),
        Setting(
            key: "signing_key", option: "--signing-key", kind: .path, commands: dataCommands.union(["iam-policy"]),
            help: "the journal's signing key: FILE (Ed25519 PEM, mode 0600) or kms:KEY_ARN"),
        Setting(
            key: "anchors", option: "--anchor", kind: .strings, commands: dataCommands.union(["iam-policy"]),
            help: "witnesses of every checkpoint: file:PATH, s3://BUCKET/PREFIX or tsa:URL"),
        Setting(key: "tsa_ca", option: "--tsa-ca", kind: .path, commands: dataCommands, help: "CA certificates tsa: witnesses' tokens chain to"),
        Setting(key: "playbooks", option: "--playbooks", kind: .path, commands: configCommands, help: "directory of playbooks"),
        Setting(key: "integrations", option: "--integrations", kind: .path, commands: configCommands, help: "directory of integration files"),
        Setting(key: "cloud", option: "--cloud", kind: .choice(["aws", "simulated"]), commands: cloudCommands, help: "aws or simulated"),
        Setting(key: "inventory", option: "--inventory", kind: .path, commands: cloudCommands, help: "inventory seeding the simulated cloud"),
        Setting(key: "assume_role_arn", option: "--assume-role-arn", kind: .string, commands: roleCommands, help: "role to assume per account, with {account}"),
        Setting(key: "external_id", option: "--external-id", kind: .string, commands: roleCommands, help: "external id for the assumed role"),
        Setting(key: "role_session_name", option: "--role-session-name", kind: .string, commands: roleCommands, help: "session name of the assumed role"),
        Setting(key: "principal_arns", option: "--principal-arn", kind: .strings, commands: ["iam-policy"], help: "the role or user Cordon runs as"),
        Setting(key: "queue_dir", option: "--queue-dir", kind: .path, commands: run, help: "the queue directory"),
        Setting(key: "create_queue_dir", option: "--create-queue-dir", kind: .flag, commands: run, help: "create the queue directory when missing"),
        Setting(key: "listen", option: "--listen", kind: .string, commands: run, help: "HOST:PORT of the webhook, SNS, health and metrics endpoints"),
        Setting(key: "max_body", option: "--max-body", kind: .integer, commands: run, help: "largest accepted request body in bytes"),
        Setting(key: "max_connections", option: "--max-connections", kind: .integer, commands: run, help: "HTTP connections held at once"),
        Setting(key: "request_timeout", option: "--request-timeout", kind: .duration, commands: run, help: "time a request has to arrive"),
        Setting(
            key: "unauthenticated_body_budget", option: "--unauthenticated-body-budget", kind: .integer, commands: run,
            help: "bytes of bodies held before their signature is checked"),
        Setting(key: "api_key_secrets", option: "--api-key-secret", kind: .strings, commands: run, help: "names of secrets holding accepted API keys"),
        Setting(key: "api_key_header", option: "--api-key-header", kind: .string, commands: run, help: "extra header carrying the API key"),
        Setting(key: "hmac_secrets", option: "--hmac-secret", kind: .strings, commands: run, help: "names of secrets holding HMAC keys"),
        Setting(key: "replay_window", option: "--replay-window", kind: .duration, commands: run, help: "how far a signature's time may be from now"),
        Setting(key: "metrics_token_secrets", option: "--metrics-token-secret", kind: .strings, commands: run, help: "names of secrets holding /metrics tokens"),
        Setting(key: "metrics_unauthenticated", option: "--metrics-unauthenticated", kind: .flag, commands: run, help: "serve /metrics without credentials"),
        Setting(key: "sns_topics", option: "--sns-topic", kind: .strings, commands: run, help: "SNS topics /v1/sns accepts"),
        Setting(key: "sns_cert_file", option: "--sns-cert-file", kind: .path, commands: run, help: "PEM certificate for SNS signatures (tests)"),
        Setting(key: "sns_confirm_hosts", option: "--sns-confirm-host", kind: .strings, commands: run, help: "more hosts whose SubscribeURLs may be followed"),
        Setting(key: "tls_cert", option: "--tls-cert", kind: .path, commands: run, help: "TLS certificate chain (PEM)"),
        Setting(key: "tls_key", option: "--tls-key", kind: .path, commands: run, help: "TLS private key (PEM)"),
        Setting(key: "sqs_url", option: "--sqs-url", kind: .string, commands: run, help: "SQS queue to long-poll"),
        Setting(key: "sqs_visibility_timeout", option: "--sqs-visibility-timeout", kind: .integer, commands: run, help: "seconds a message stays invisible"),
        Setting(key: "sqs_wait", option: "--sqs-wait", kind: .integer, commands: run, help: "seconds each long poll waits"),
        Setting(key: "concurrency", option: "--concurrency", kind: .integer, commands: run, help: "actions called at once"),
        Setting(key: "batch", option: "--batch", kind: .integer, commands: run, help: "files journaled in one commit"),
        Setting(key: "poll_interval", option: "--poll-interval", kind: .duration, commands: run, help: "how often incoming/ is read without inotify"),
        Setting(key: "shutdown_timeout", option: "--shutdown-timeout", kind: .duration, commands: run, help: "how long in-flight work may take after SIGTERM"),
        Setting(key: "dedupe_window", option: "--dedupe-window", kind: .integer, commands: run, help: "findings remembered to recognise duplicates"),
        Setting(
            key: "log_level", option: "--log-level", kind: .choice(Logger.Level.allCases.map(\.rawValue)), commands: loggingCommands,
            help: "least severe events logged"),
        Setting(
            key: "log_format", option: "--log-format", kind: .choice(["text", "json"]), commands: loggingCommands,
            help: "text or json lines on standard error"),
        Setting(key: "allow_empty", option: "--allow-empty", kind: .flag, commands: ["run", "validate"], help: "accept a playbook directory with no playbook"),
    ]

    static let searched = ["./cordon.yaml", "/etc/cordon/cordon.yaml"]

    /// The file's path and how it was found, or nil: `--config` (taken out of the
    /// arguments), `CORDON_CONFIG`, then the usual places.
    static func locate(_ arguments: inout [String], environment: [String: String]) throws -> (path: String, how: String)? {
        var given: String?
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a == "--" { break }
            if a == "--config" {
                guard i + 1 < arguments.count else { throw CordonError(.invalidInput, "--config needs a FILE") }
                given = arguments[i + 1]
                arguments.removeSubrange(i...(i + 1))
                continue
            }
            if a.hasPrefix("--config=") {
                given = String(a.dropFirst("--config=".count))
                arguments.remove(at: i)
                continue
            }
            i += 1
        }
        if let given {
            guard FileManager.default.fileExists(atPath: given) else { throw CordonError(.invalidInput, "--config \(given): no such file") }
            return (given, "--config")
        }
        if let env = environment["CORDON_CONFIG"], !env.isEmpty {
            guard FileManager.default.fileExists(atPath: env) else { throw CordonError(.invalidInput, "CORDON_CONFIG=\(env): no such file") }
            return (env, "CORDON_CONFIG")
        }
        for path in searched where FileManager.default.fileExists(atPath: path) { return (path, path) }
        return nil
    }

    /// A setting's value as command-line words (after `option`).
    enum Value {
        case one(String)
        case many([String])
        case flag
    }

    var path: String
    var values: [(setting: Setting, value: Value, location: SourceLocation)] = []
    var diagnostics: [Diagnostic] = []

    /// Reads and checks the file: every problem with its line and column.
    init(path: String) {
        self.path = path
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let base = URL(fileURLWithPath: absolute).standardized.deletingLastPathComponent()
        func resolve(_ p: String) -> String {
            if p.hasPrefix("/") { return p }
            if p.hasPrefix("~/"), let home = ProcessInfo.processInfo.environment["HOME"] { return home + p.dropFirst(1) }
            return base.appendingPathComponent(p).standardized.path
        }
        let document: YAMLValue
        switch BoundedFile.read(path, limit: 1 << 20, what: "a configuration file") {
        case .failure(let error):
            diagnostics.append(Diagnostic(SourceLocation(file: path, line: 1, column: 1), error.message))
            return
        case .success(let bytes):
            do {
                document = try YAMLParser().parse(bytes, file: path)
            } catch {
                diagnostics.append(Diagnostic(error.location, error.message))
                return
            }
        }
        if case .null = document.kind { return }
        guard let members = document.members else {
            diagnostics.append(Diagnostic(document.location, "a configuration file is a mapping of settings, not \(document.typeName)"))
            return
        }
        let byKey = Dictionary(Self.settings.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        for member in members {
            guard let setting = byKey[member.key] else {
                var message = "unknown setting \"\(member.key)\""
                if let s = Self.closest(member.key) { message += " (did you mean \"\(s)\"?)" }
                diagnostics.append(Diagnostic(member.keyLocation, message + "; `cordon schema config` lists them"))
                continue
            }
            let v = member.value
            func fail(_ what: String) { diagnostics.append(Diagnostic(v.location, "\(member.key): \(what), not \(v.typeName)")) }
            switch setting.kind {
            case .string, .path:
                guard let s = v.string, !s.isEmpty else { fail("expected a non-empty string"); continue }
                // A key spec naming a KMS key is not a path.
                values.append((setting, .one(setting.kind == .path && !s.hasPrefix("kms:") ? resolve(s) : s), member.keyLocation))
            case .choice(let choices):
                guard let s = v.string, choices.contains(s) else {
                    diagnostics.append(Diagnostic(v.location, "\(member.key): expected one of \(choices.joined(separator: ", "))"))
                    continue
                }
                values.append((setting, .one(s), member.keyLocation))
            case .integer:
                guard case .number(let n) = v.kind, let i = n.intValue else { fail("expected an integer"); continue }
                values.append((setting, .one(String(i)), member.keyLocation))
            case .duration:
                guard let s = v.string, DurationParser.parse(s) != nil else { fail("expected a duration such as 30s, 5m or 1h"); continue }
                values.append((setting, .one(s), member.keyLocation))
            case .flag:
                guard case .bool(let b) = v.kind else { fail("expected true or false"); continue }
                if b { values.append((setting, .flag, member.keyLocation)) }
            case .strings, .paths:
                var list: [String] = []
                if let s = v.string, !s.isEmpty {
                    list = [s]
                } else if let items = v.items, items.allSatisfy({ $0.string?.isEmpty == false }) {
                    list = items.compactMap(\.string)
                } else {
                    fail("expected a string or a list of strings")
                    continue
                }
                if case .paths = setting.kind { list = list.map(resolve) }
                values.append((setting, .many(list), member.keyLocation))
            }
        }
    }

    /// The setting whose key is nearest a mistyped one, when it is near.
    static func closest(_ key: String) -> String? {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var previous = Array(0...b.count)
            for i in 1...max(1, a.count) where !a.isEmpty {
                var current = [i] + Array(repeating: 0, count: b.count)
                for j in 1...max(1, b.count) where !b.isEmpty {
                    current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                }
                previous = current
            }
            return a.isEmpty ? b.count : (b.isEmpty ? a.count : previous[b.count])
        }
        let typed = Array(key.lowercased().replacingOccurrences(of: "-", with: "_"))
        let scored = settings.map { ($0.key, distance(typed, Array($0.key))) }.min { $0.1 < $1.1 }
        guard let (best, d) = scored, d <= max(2, best.count / 3) else { return nil }
        return best
    }

    /// The words to put before `command`'s own arguments (`user`), for the settings it
    /// has; a list the command line gives itself is not added to.
    func arguments(for command: String, user: [String]) -> [String] {
        var out: [String] = []
        for (setting, value, _) in values where setting.commands.contains(command) {
            let given = user.contains { $0 == setting.option || $0.hasPrefix(setting.option + "=") }
            switch value {
            case .one(let s): out += [setting.option, s]
            case .many(let list): if !given { for s in list { out += [setting.option, s] } }
            case .flag: if !given { out.append(setting.option) }
            }
        }
        return out
    }

    /// The command a command line names (`journal verify` for the journal's), and where
    /// its own arguments begin; nil for none (`--help`, `--version`).
    static func command(in arguments: [String]) -> (name: String, end: Int)? {
        guard let first = arguments.firstIndex(where: { !$0.hasPrefix("-") }) else { return nil }
        if arguments[first] == "journal" || arguments[first] == "config" {
            if first + 1 < arguments.count, !arguments[first + 1].hasPrefix("-") {
                return (arguments[first] + " " + arguments[first + 1], first + 2)
            }
        }
        return (arguments[first], first + 1)
    }

    /// The command line with the file's settings in it: what `main` parses.
    static func apply(_ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment) throws -> (arguments: [String], file: ConfigFile?) {
        var arguments = arguments
        guard let (path, _) = try locate(&arguments, environment: environment) else { return (arguments, nil) }
        let file = ConfigFile(path: path)
        if !file.diagnostics.isEmpty {
            for d in file.diagnostics.sorted() { printError(d.description) }
            throw CordonError(.invalidInput, "the configuration file \(path) is invalid")
        }
        guard let (name, end) = command(in: arguments) else { return (arguments, file) }
        let user = Array(arguments[end...])
        return (Array(arguments[..<end]) + file.arguments(for: name, user: user) + user, file)
    }

    /// The JSON Schema of the file (`cordon schema config`).
    static var jsonSchema: JSONValue {
        var properties = JSONObject()
        for s in settings {
            var p: JSONObject = ["description": .string("\(s.help) (\(s.option); \(s.commands.sorted().joined(separator: ", ")))")]
            switch s.kind {
            case .string, .path: p["type"] = "string"
            case .choice(let c): p["enum"] = .array(c.map(JSONValue.string))
            case .integer: p["type"] = "integer"
            case .flag: p["type"] = "boolean"
            case .duration: p["type"] = "string"; p["pattern"] = "^[0-9]+(\\.[0-9]+)?(ms|s|m|h|d)$"
            case .strings, .paths:
                p["oneOf"] = [["type": "string"], ["type": "array", "items": ["type": "string"]]]
            }
            properties[s.key] = .object(p)
        }
        return [
            "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "cordon.yaml", "type": "object",
            "additionalProperties": false, "properties": .object(properties),
        ]
    }
}

/// `cordon config show`: the settings in effect, where each comes from.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Show the configuration file's settings.", subcommands: [ConfigShowCommand.self])
}

struct ConfigShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print the settings in effect: from the configuration file, or the defaults.",
        discussion: """
            The file is --config FILE, else CORDON_CONFIG, else ./cordon.yaml, else \
            /etc/cordon/cordon.yaml. Secrets appear by name only: the file never holds a \
            secret's value. Options given on a command line override these.
            """)

    @Option(help: "text: key: value lines; json: an object.")
    var output: OutputFormat = .text

    func run() throws {
        var arguments = CommandLine.arguments
        let found = try ConfigFile.locate(&arguments, environment: ProcessInfo.processInfo.environment)
        let file = found.map { ConfigFile(path: $0.path) }
        if let file, !file.diagnostics.isEmpty {
            for d in file.diagnostics.sorted() { printError(d.description) }
            throw CordonError(.invalidInput)
        }
        var effective = JSONObject()
        var lines: [String] = []
        lines.append("# configuration file: \(found.map { "\($0.path) (\($0.how))" } ?? "none (defaults)")")
        for setting in ConfigFile.settings {
            guard let (_, value, _) = file?.values.first(where: { $0.setting.key == setting.key }) else { continue }
            let json: JSONValue
            switch value {
            case .one(let s): json = setting.kind == .integer ? (Int(s).map { .number(JSONNumber($0)) } ?? .string(s)) : .string(s)
            case .many(let list): json = .array(list.map(JSONValue.string))
            case .flag: json = true
            }
            effective[setting.key] = json
            lines.append("\(setting.key): \(JSONWriter.string(json))")
        }
        switch output {
        case .text: print(lines.joined(separator: "\n"))
        case .json: print(JSONWriter.pretty(["file": found.map { .string($0.path) } ?? .null, "settings": .object(effective)]))
        }
    }
}
