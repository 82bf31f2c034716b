import Foundation

/// Everything loaded from playbook and integration files, with every problem found.
public struct LoadedConfig: Sendable {
    public var playbooks: [Playbook] = []
    public var integrations: [Integration] = []
    public var registry = ActionRegistry()
    public var diagnostics: [Diagnostic] = []
    /// The files read, in order.
    public var files: [String] = []
    /// Drill scenarios among the files (checked by the drill loader, not here).
    public var scenarioFiles: [String] = []

    public var errors: [Diagnostic] { diagnostics.filter { $0.severity == .error } }
    public var isValid: Bool { errors.isEmpty }

    public init() {}
}

/// Loads playbooks and integrations from files and directories, checking everything
/// (shape, references, actions, inputs, patterns, templates) and reporting every
/// problem with its file, line and column, not just the first.
public struct ConfigLoader: Sendable {
    public var yaml = YAMLParser()
    /// The actions playbooks may use before the integration files add theirs: the
    /// built-in catalogue (`ActionRegistry.builtIn`, assembled where the actions live).
    public var actions: ActionRegistry

    public init(actions: ActionRegistry) {
        self.actions = actions
    }

    /// The YAML files below `paths` (files are taken as given; directories are searched
    /// for `.yaml` and `.yml`, through symbolic links — an `/etc/cordon` layout often
    /// links its playbook directories — each real directory once, hidden entries
    /// skipped), sorted, without duplicates.
    public static func yamlFiles(_ paths: [String]) -> (files: [String], diagnostics: [Diagnostic]) {
        var files: [String] = []
        var diagnostics: [Diagnostic] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                diagnostics.append(Diagnostic(SourceLocation(file: path, line: 1, column: 1), "no such file or directory"))
                continue
            }
            if isDirectory.boolValue {
                var visited: Set<String> = []
                var found: [String] = []
                walk(path.hasSuffix("/") ? String(path.dropLast()) : path, relative: "", visited: &visited, into: &found)
                let base = path.hasSuffix("/") ? path : path + "/"
                files += found.sorted().map { base + $0 }
            } else {
                files.append(path)
            }
        }
        var seen: Set<String> = []
        return (files.filter { seen.insert(URL(fileURLWithPath: $0).standardized.path).inserted }, diagnostics)
    }

    /// The YAML files below `directory`, as paths relative to where the walk began.
    private static func walk(_ directory: String, relative: String, visited: inout Set<String>, into found: inout [String]) {
        // A directory reached twice (a link back up the tree) is read once.
        let real = URL(fileURLWithPath: directory).resolvingSymlinksInPath().path
        guard visited.insert(real).inserted, visited.count <= 10_000 else { return }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for entry in entries where !entry.hasPrefix(".") {
            let path = directory + "/" + entry
            let name = relative.isEmpty ? entry : relative + "/" + entry
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                walk(path, relative: name, visited: &visited, into: &found)
            } else if entry.hasSuffix(".yaml") || entry.hasSuffix(".yml") {
                found.append(name)
            }
        }
    }

    /// Loads integrations first (their actions join the registry), then playbooks.
    /// - Parameters:
    ///   - paths: files and directories to check (playbooks and/or integrations).
    ///   - integrationPaths: more integration files/directories whose actions playbooks may use.
    public func load(_ paths: [String], integrationPaths: [String] = []) -> LoadedConfig {
        var config = LoadedConfig()
        config.registry = actions
        let (given, missing) = Self.yamlFiles(paths)
        let (extra, _) = Self.yamlFiles(integrationPaths.filter { FileManager.default.fileExists(atPath: $0) })
        config.diagnostics += missing
        var documents: [(file: String, value: YAMLValue, checked: Bool)] = []
        var seen: Set<String> = []
        for (file, checked) in given.map({ ($0, true) }) + extra.map({ ($0, false) }) {
            guard seen.insert(URL(fileURLWithPath: file).standardized.path).inserted else { continue }
            if checked { config.files.append(file) }
            do {
                let data: [UInt8]
                switch BoundedFile.read(file, limit: yaml.maxBytes, what: "a YAML file") {
                case .success(let bytes): data = bytes
                case .failure(let error): throw YAMLError(location: SourceLocation(file: file, line: 1, column: 1), message: error.message)
                }
                documents.append((file, try yaml.parse(data, file: file), checked))
            } catch let error as YAMLError {
                if checked { config.diagnostics.append(Diagnostic(error.location, error.message)) }
            } catch {
                if checked {
                    config.diagnostics.append(Diagnostic(SourceLocation(file: file, line: 1, column: 1), "cannot read: \(error.localizedDescription)"))
                }
            }
        }
        // Integrations first.
        var integrationNames: [String: SourceLocation] = [:]
        for doc in documents where Self.isIntegration(doc.value) {
            var checker = IntegrationChecker(file: doc.file)
            if let integration = checker.load(doc.value) {
                if let first = integrationNames[integration.name] {
                    checker.diagnostics.append(Diagnostic(integration.location, "integration name \"\(integration.name)\" is already used by \(first)"))
                } else {
                    integrationNames[integration.name] = integration.location
                    config.integrations.append(integration)
                    for spec in integration.actionSpecs {
                        if config.registry[spec.name] != nil, spec.definedIn != config.registry[spec.name]?.definedIn {
                            checker.diagnostics.append(Diagnostic(integration.location, "action \(spec.name) is already defined (\(config.registry[spec.name]!.definedIn))"))
                        }
                        config.registry.add(spec)
                    }
                }
            }
            if doc.checked { config.diagnostics += checker.diagnostics }
        }
        var playbookNames: [String: SourceLocation] = [:]
        for doc in documents where !Self.isIntegration(doc.value) && doc.checked {
            if Self.isScenario(doc.value) {
                // Drill scenarios are checked by the drill loader (`cordon validate`).
                config.scenarioFiles.append(doc.file)
                continue
            }
            guard Self.isPlaybook(doc.value) else {
                config.diagnostics.append(
                    Diagnostic(doc.value.location, "neither a playbook (with trigger and steps) nor an integration (with actions)"))
                continue
            }
            var checker = PlaybookChecker(file: doc.file, registry: config.registry)
            if let playbook = checker.load(doc.value) {
                if let first = playbookNames[playbook.name] {
                    checker.diagnostics.append(Diagnostic(playbook.location, "playbook name \"\(playbook.name)\" is already used by \(first)"))
                } else {
                    playbookNames[playbook.name] = playbook.location
                    config.playbooks.append(playbook)
                }
            }
            config.diagnostics += checker.diagnostics
        }
        config.diagnostics.sort()
        return config
    }

    static func isIntegration(_ value: YAMLValue) -> Bool { value["actions"] != nil && value["trigger"] == nil }
    static func isPlaybook(_ value: YAMLValue) -> Bool { value["trigger"] != nil || value["steps"] != nil }
    /// A drill scenario: a `timeline` of injections and no trigger.
    public static func isScenario(_ value: YAMLValue) -> Bool { value["timeline"] != nil && value["trigger"] == nil }
}

/// Where template paths may point, for load-time checks.
struct TemplateScope {
    enum Kind { case playbook, integration }
    var kind: Kind
    var vars: [String] = []
    var steps: [String] = []
    /// Steps defined before the current one.
    var earlierSteps: [String] = []
    var currentStep: String? = nil
    var inputs: [String] = []
    var secrets: [String]? = nil

    static let eventRoots = ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]
    static let stepFields = ["status", "output", "error", "attempts", "started_at", "finished_at"]
    static let incidentFields = [
        "id", "key", "title", "severity", "playbook", "state", "status", "opened_at", "steps", "rollback", "url", "findings", "rounds", "follows", "dry_run",
    ]

    /// A message for each bad reference in the template.
    func problems(_ template: Template) -> [String] {
        var out: [String] = []
        for e in template.expressions {
            let path = e.path
            let root = path.root
            func unknown(_ what: String, _ name: String, _ known: [String]) {
                var m = "template \"\(template.source)\": unknown \(what) \"\(name)\""
                if let s = suggest(name, from: known) { m += " (did you mean \"\(s)\"?)" }
                if !known.isEmpty { m += "; known: " + known.joined(separator: ", ") }
                out.append(m)
            }
            switch (root, kind) {
            case ("secret", _):
                guard let name = path.key(at: 1), path.components.count == 2 else {
                    out.append("template \"\(template.source)\": write a secret as secret.NAME"); continue
                }
                if let secrets, !secrets.contains(name) {
                    out.append("template \"\(template.source)\": secret \(name) is not declared in this integration's secrets")
                }
            case ("incident", _):
                guard let field = path.key(at: 1) else { out.append("template \"\(template.source)\": write incident.FIELD"); continue }
                if !Self.incidentFields.contains(field) { unknown("incident field", field, Self.incidentFields) }
            case ("vars", .playbook):
                guard let name = path.key(at: 1) else { out.append("template \"\(template.source)\": write vars.NAME"); continue }
                if !vars.contains(name) { unknown("var", name, vars) }
            case ("steps", .playbook):
                guard let id = path.key(at: 1) else { out.append("template \"\(template.source)\": write steps.ID.output…"); continue }
                if id == currentStep {
                    out.append("template \"\(template.source)\": a step cannot refer to its own result (steps.\(id))")
                } else if !earlierSteps.contains(id) {
                    if steps.contains(id) {
                        out.append("template \"\(template.source)\": step \"\(id)\" runs later; a step can only use the results of earlier steps")
                    } else {
                        unknown("step", id, earlierSteps)
                    }
                } else if let field = path.key(at: 2), !Self.stepFields.contains(field) {
                    unknown("step field", field, Self.stepFields)
                } else if path.components.count < 3 {
                    out.append("template \"\(template.source)\": write steps.\(id).output… or steps.\(id).status")
                }
            case ("inputs", .integration):
                guard let name = path.key(at: 1) else { out.append("template \"\(template.source)\": write inputs.NAME"); continue }
                if !inputs.contains(name) { unknown("input", name, inputs) }
            case (_, .playbook):
                if !Self.eventRoots.contains(root) {
                    unknown("name", root, Self.eventRoots + ["vars", "steps", "incident", "secret"])
                }
            case (_, .integration):
                unknown("name", root, ["inputs", "incident", "secret"])
            }
        }
        return out
    }
}

/// Finds the YAML node a dotted pattern path (`detail.severity`, `$or[1].type`) points at.
func node(in value: YAMLValue, atPatternPath path: String) -> YAMLValue {
    var current = value
    guard !path.isEmpty else { return value }
    for part in path.split(separator: ".") {
        var key = Substring(part)
        var index: Int? = nil
        if let open = part.firstIndex(of: "["), part.hasSuffix("]") {
            key = part[part.startIndex..<open]
            index = Int(part[part.index(after: open)..<part.index(before: part.endIndex)])
        }
        guard let next = current[String(key)] else { return current }
        current = next
        if let index, let items = current.items, items.indices.contains(index) { current = items[index] }
    }
    return current
}
