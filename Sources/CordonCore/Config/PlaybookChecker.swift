/// Builds a `Playbook` from YAML, collecting every problem.
struct PlaybookChecker {
    let file: String
    let registry: ActionRegistry
    var diagnostics: [Diagnostic] = []

    init(file: String, registry: ActionRegistry) {
        self.file = file
        self.registry = registry
    }

    mutating func error(_ at: SourceLocation, _ message: String) { diagnostics.append(Diagnostic(at, message)) }

    mutating func load(_ root: YAMLValue) -> Playbook? {
        var shape = ShapeChecker()
        shape.check(root, Playbook.shape, path: "")
        diagnostics += shape.diagnostics
        let shapeOK = shape.diagnostics.isEmpty

        let name = root["name"]?.string ?? ""
        let version = root["version"].flatMap { if case .number(let n) = $0.kind { return n.intValue } else { return nil } } ?? 0
        let description = root["description"]?.string ?? ""
        let trigger = pattern(root["trigger"], what: "trigger")

        // Steps are known up front so that references to later steps say so.
        let stepNodes = root["steps"]?.items ?? []
        let stepIDs = stepNodes.compactMap { $0["id"]?.string }
        var seenIDs: [String: SourceLocation] = [:]
        for node in stepNodes {
            guard let id = node["id"]?.string, let at = node["id"]?.location else { continue }
            if let first = seenIDs[id] {
                error(at, "duplicate step id \"\(id)\" (first at line \(first.line))")
            } else {
                seenIDs[id] = at
            }
        }

        // vars, in order: each may use the event and the vars before it.
        var vars: [(name: String, value: TemplateTree)] = []
        var scope = TemplateScope(kind: .playbook, steps: stepIDs)
        for member in root["vars"]?.members ?? [] {
            if let tree = templateTree(member.value, scope: scope) { vars.append((member.key, tree)) }
            scope.vars.append(member.key)
        }

        var incident = Playbook.IncidentSpec()
        if let node = root["incident"] {
            incident.key = template(node["key"], scope: scope)
            incident.title = template(node["title"], scope: scope)
            incident.severity = template(node["severity"], scope: scope)
            incident.closeAfter = node["close_after"]?.string.flatMap(DurationParser.parse)
        }

        var steps: [Playbook.Step] = []
        for (index, node) in stepNodes.enumerated() {
            var stepScope = scope
            stepScope.earlierSteps = Array(stepIDs.prefix(index))
            stepScope.currentStep = node["id"]?.string
            if let step = self.step(node, scope: stepScope) { steps.append(step) }
        }

        guard shapeOK, let trigger, diagnostics.isEmpty else { return nil }
        return Playbook(
            name: name, version: version, description: description, trigger: trigger, incident: incident, vars: vars,
            steps: steps, file: file, location: root.location)
    }

    mutating func step(_ node: YAMLValue, scope: TemplateScope) -> Playbook.Step? {
        guard let id = node["id"]?.string, let actionName = node["action"]?.string else { return nil }
        let actionNode = node["action"]!
        let spec = registry[actionName]
        if spec == nil {
            var message = "step \"\(id)\": unknown action \"\(actionName)\""
            if let s = suggest(actionName, from: registry.names) {
                message += " (did you mean \"\(s)\"?)"
            } else if actionName.contains(".") {
                let integration = String(actionName.split(separator: ".").first ?? "")
                message += "; no built-in action has that name and no integration named \"\(integration)\" defines it"
            }
            error(actionNode.location, message)
        }

        var with: [(name: String, value: TemplateTree)] = []
        let withNode = node["with"]
        for member in withNode?.members ?? [] {
            if let spec, spec.input(member.key) == nil {
                var message = "step \"\(id)\": \(actionName) has no input \"\(member.key)\""
                if let s = suggest(member.key, from: spec.inputs.map(\.name)) { message += " (did you mean \"\(s)\"?)" }
                message += "; inputs: " + spec.inputs.map(\.name).joined(separator: ", ")
                error(member.keyLocation, message)
                continue
            }
            guard let tree = templateTree(member.value, scope: scope) else { continue }
            // Literal values are type-checked now; templated ones when rendered.
            if case .literal(let literal) = tree, let input = spec?.input(member.key), !input.type.accepts(literal) {
                error(member.value.location, "step \"\(id)\": input \"\(member.key)\" of \(actionName) takes \(input.type.rawValue), not \(JSONWriter.string(literal))")
            }
            with.append((member.key, tree))
        }
        if let spec {
            let given = Set(with.map(\.name))
            for input in spec.inputs where input.required && input.defaultValue == nil && !given.contains(input.name) {
                error((withNode ?? node).location, "step \"\(id)\": \(actionName) needs input \"\(input.name)\"" + (input.summary.isEmpty ? "" : " (\(input.summary))"))
            }
            for group in spec.exactlyOneOf {
                let present = group.filter(given.contains)
                if present.count != 1 {
                    error((withNode ?? node).location, "step \"\(id)\": \(actionName) needs exactly one of \(group.joined(separator: ", "))\(present.isEmpty ? "" : "; found \(present.joined(separator: ", "))")")
                }
            }
        }

        let when = stepPattern(node["when"], what: "when", step: id, scope: scope)
        var approval: Playbook.Approval? = nil
        if let a = node["approval"], a.members != nil {
            approval = Playbook.Approval(
                when: stepPattern(a["when"], what: "approval.when", step: id, scope: scope),
                timeout: a["timeout"]?.string.flatMap(DurationParser.parse),
                onTimeout: a["on_timeout"]?.string.flatMap(Playbook.OnTimeout.init(rawValue:)) ?? .abort)
        }
        var retry = Playbook.Retry.default
        if let r = node["retry"] {
            if case .number(let n)? = r["attempts"]?.kind, let i = n.intValue { retry.attempts = i }
            if let d = r["backoff"]?.string.flatMap(DurationParser.parse) { retry.backoff = d }
            if let d = r["max_backoff"]?.string.flatMap(DurationParser.parse) { retry.maxBackoff = d }
            if retry.maxBackoff < retry.backoff {
                error(r.location, "step \"\(id)\": retry.max_backoff (\(DurationParser.format(retry.maxBackoff))) is shorter than retry.backoff (\(DurationParser.format(retry.backoff)))")
            }
        }
        return Playbook.Step(
            id: id, description: node["description"]?.string, action: actionName, with: with, when: when, approval: approval,
            retry: retry, timeout: node["timeout"]?.string.flatMap(DurationParser.parse),
            onError: node["on_error"]?.string.flatMap(Playbook.OnError.init(rawValue:)) ?? .abort, location: node.location)
    }

    mutating func pattern(_ node: YAMLValue?, what: String) -> EventPattern? {
        guard let node, node.members != nil else { return nil }
        do {
            return try EventPattern(json: node.json)
        } catch {
            let at = CordonCore.node(in: node, atPatternPath: error.path)
            self.error(at.location, "\(what): \(error)")
            return nil
        }
    }

    /// A `when` pattern: its references to steps must be to earlier steps.
    mutating func stepPattern(_ node: YAMLValue?, what: String, step: String, scope: TemplateScope) -> EventPattern? {
        guard let node, let compiled = pattern(node, what: "step \"\(step)\": \(what)") else { return nil }
        for path in compiled.fieldPaths where path.hasPrefix("steps.") {
            let parts = path.split(separator: ".")
            guard parts.count >= 2 else { continue }
            let id = String(parts[1])
            let at = CordonCore.node(in: node, atPatternPath: "steps.\(id)").location
            if id == step {
                error(at, "step \"\(step)\": \(what) cannot test the step's own result")
            } else if !scope.earlierSteps.contains(id) {
                error(at, scope.steps.contains(id)
                    ? "step \"\(step)\": \(what) tests step \"\(id)\", which runs later"
                    : "step \"\(step)\": \(what) tests unknown step \"\(id)\"")
            } else if parts.count >= 3, !TemplateScope.stepFields.contains(String(parts[2])) {
                error(at, "step \"\(step)\": \(what): steps.\(id) has no field \"\(parts[2])\"; fields: \(TemplateScope.stepFields.joined(separator: ", "))")
            }
        }
        return compiled
    }

    mutating func template(_ node: YAMLValue?, scope: TemplateScope) -> Template? {
        guard let node else { return nil }
        let text: String
        switch node.kind {
        case .string(let s): text = s
        case .number(let n): text = n.literal
        default: return nil
        }
        do {
            let t = try Template(text)
            for problem in scope.problems(t) { error(node.location, problem) }
            return t
        } catch {
            self.error(node.location, "\(error)")
            return nil
        }
    }

    mutating func templateTree(_ node: YAMLValue, scope: TemplateScope) -> TemplateTree? {
        do {
            let tree = try TemplateTree(node.json)
            for t in tree.templates {
                for problem in scope.problems(t) { error(node.location, problem) }
            }
            return tree
        } catch {
            self.error(node.location, "\(error)")
            return nil
        }
    }
}

/// Builds an `Integration` from YAML, collecting every problem.
struct IntegrationChecker {
    let file: String
    var diagnostics: [Diagnostic] = []

    init(file: String) { self.file = file }

    mutating func error(_ at: SourceLocation, _ message: String) { diagnostics.append(Diagnostic(at, message)) }

    mutating func load(_ root: YAMLValue) -> Integration? {
        var shape = ShapeChecker()
        shape.check(root, Integration.shape, path: "")
        diagnostics += shape.diagnostics
        guard shape.diagnostics.isEmpty, let name = root["name"]?.string else { return nil }
        let secrets = root["secrets"]?.items?.compactMap(\.string) ?? []
        var actions: [Integration.Action] = []
        for member in root["actions"]?.members ?? [] {
            if let action = action(member.key, member.value, secrets: secrets) { actions.append(action) }
        }
        if actions.isEmpty, diagnostics.isEmpty { error(root.location, "an integration needs at least one action") }
        guard diagnostics.isEmpty else { return nil }
        return Integration(
            name: name, description: root["description"]?.string, secrets: secrets, actions: actions, file: file,
            location: root.location)
    }

    mutating func action(_ name: String, _ node: YAMLValue, secrets: [String]) -> Integration.Action? {
        var inputs: [InputSpec] = []
        for member in node["inputs"]?.members ?? [] {
            let spec = member.value
            let type = spec["type"]?.string.flatMap(ValueType.init(rawValue:)) ?? .string
            let defaultValue = spec["default"]?.json
            if let defaultValue, !type.accepts(defaultValue) {
                error(spec["default"]!.location, "action \(name): default of input \"\(member.key)\" is not \(type.rawValue)")
            }
            inputs.append(
                InputSpec(
                    member.key, type, required: spec["required"]?.json == .bool(true), default: defaultValue,
                    spec["description"]?.string ?? ""))
        }
        let scope = TemplateScope(kind: .integration, inputs: inputs.map(\.name), secrets: secrets)
        guard let request = node["request"] else { return nil }
        func tree(_ n: YAMLValue?) -> TemplateTree? {
            guard let n else { return nil }
            do {
                let t = try TemplateTree(n.json)
                for template in t.templates { for p in scope.problems(template) { error(n.location, p) } }
                return t
            } catch {
                self.error(n.location, "\(error)")
                return nil
            }
        }
        func pairs(_ n: YAMLValue?) -> [(name: String, value: TemplateTree)] {
            (n?.members ?? []).compactMap { m in tree(m.value).map { (m.key, $0) } }
        }
        let body = tree(request["body"])
        let form = request["form"].map { pairs($0) }
        if body != nil && form != nil { error(request.location, "action \(name): give either body or form, not both") }
        var idempotency: Integration.Idempotency? = nil
        if let i = node["idempotency"] {
            switch (i["header"]?.string, i["body_field"]?.string) {
            case (let h?, nil): idempotency = .header(h)
            case (nil, let f?):
                idempotency = .bodyField(f)
                if body == nil { error(i.location, "action \(name): idempotency.body_field needs a JSON body") }
            default: error(i.location, "action \(name): idempotency takes exactly one of header, body_field")
            }
        }
        var signature: Integration.Signature? = nil
        if let s = node["signature"], let secret = s["secret"]?.string {
            if !secrets.contains(secret) { error(s["secret"]!.location, "action \(name): signature secret \(secret) is not declared in secrets") }
            signature = Integration.Signature(algorithm: s["algorithm"]?.string ?? "hmac-sha256", secret: secret, header: s["header"]?.string ?? "")
        }
        let success = node["success"]?.items?.compactMap { $0.json.numberValue?.intValue } ?? Array(200...299)
        let retryOn = node["retry_on"]?.items?.compactMap { $0.json.numberValue?.intValue } ?? []
        if let overlap = Set(success).intersection(retryOn).sorted().first {
            error(node.location, "action \(name): status \(overlap) is both a success and retried")
        }
        guard let url = tree(request["url"]) else { return nil }
        return Integration.Action(
            name: name, description: node["description"]?.string, inputs: inputs,
            request: Integration.Request(
                method: request["method"]?.string ?? "POST", url: url, headers: pairs(request["headers"]),
                query: pairs(request["query"]), body: body, form: form,
                timeout: request["timeout"]?.string.flatMap(DurationParser.parse)),
            success: success, retryOn: retryOn, idempotency: idempotency, signature: signature, location: node.location)
    }
}
