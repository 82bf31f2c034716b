/// JSON Schemas for playbook and integration files, generated from the shapes the
/// loader checks and from the action registry (so each action's `with` is checked too).
public enum ConfigSchema {
    static let templateString: JSONValue = ["type": "string", "pattern": "\\{\\{"]

    public static func playbook(registry: ActionRegistry) -> JSONValue {
        guard case .object(var schema) = Playbook.shape.jsonSchema else { return .null }
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = "https://cordon.dev/schema/playbook.json"
        schema["title"] = "Cordon playbook"
        // Steps: the action must be known, and `with` must fit the action's inputs.
        guard case .object(var stepSchema) = Playbook.stepShape.jsonSchema,
            case .object(var properties)? = stepSchema["properties"]
        else { return .object(schema) }
        properties["action"] = ["enum": .array(registry.names.map(JSONValue.string)), "description": "a built-in action or INTEGRATION.ACTION"]
        stepSchema["properties"] = .object(properties)
        var rules: [JSONValue] = []
        for name in registry.names {
            guard let spec = registry[name] else { continue }
            var inputs = JSONObject()
            for input in spec.inputs {
                var typed = input.type.jsonSchema
                if case .object(var o) = typed {
                    o["description"] = .string(input.summary)
                    typed = .object(o)
                }
                // Any input may instead be a template, checked when rendered.
                inputs[input.name] = input.type == .any ? typed : ["anyOf": [typed, templateString]]
            }
            var with: JSONObject = ["type": "object", "properties": .object(inputs), "additionalProperties": false]
            let required = spec.inputs.filter { $0.required && $0.defaultValue == nil }.map { JSONValue.string($0.name) }
            if !required.isEmpty { with["required"] = .array(required) }
            var then: JSONObject = ["properties": ["with": .object(with)]]
            if !required.isEmpty { then["required"] = ["with"] }
            rules.append(["if": ["properties": ["action": ["const": .string(name)]], "required": ["action"]], "then": .object(then)])
        }
        stepSchema["allOf"] = .array(rules)
        if case .object(var top)? = schema["properties"], case .object(var steps)? = top["steps"] {
            steps["items"] = .object(stepSchema)
            top["steps"] = .object(steps)
            schema["properties"] = .object(top)
        }
        return .object(schema)
    }

    public static func integration() -> JSONValue {
        guard case .object(var schema) = Integration.shape.jsonSchema else { return .null }
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = "https://cordon.dev/schema/integration.json"
        schema["title"] = "Cordon integration"
        return .object(schema)
    }
}
