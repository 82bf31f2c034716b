import ArgumentParser
import CordonCore
import CordonDrill
import Foundation
import CordonIntegrations

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check playbooks and integrations.",
        discussion: """
            Checks every YAML file given (directories are searched for .yaml and .yml) and \
            reports every problem, one per line, as FILE:LINE:COLUMN: message — unknown keys \
            (with a did-you-mean), wrong types, duplicate keys, names and step ids, unknown \
            actions, missing or unknown inputs, invalid trigger and `when` patterns, templates \
            that refer to unknown or later steps, malformed durations. Integration actions \
            from --integrations are known to the playbooks checked. With no PATH, checks \
            --playbooks and --integrations.

            Exit status: 0 when everything is valid, 1 when a file has an error, 2 for a \
            usage error.
            """)

    @Argument(help: ArgumentHelp("Playbook or integration files, or directories.", valueName: "PATH"))
    var paths: [String] = []

    @OptionGroup var config: ConfigOptions

    @Flag(help: "Accept directories that hold no playbook (by default that is an error: a wrong path, or a link not followed).")
    var allowEmpty = false

    @Option(help: "text: FILE:LINE:COLUMN: message lines; json: a report object.")
    var output: OutputFormat = .text

    func run() throws {
        let targets = paths.isEmpty ? [config.playbooks, config.integrations] : paths
        var loaded = ConfigLoader(actions: .builtIn).load(targets, integrationPaths: [config.integrations])
        // Drill scenarios: checked against the playbooks of --playbooks.
        if !loaded.scenarioFiles.isEmpty {
            let playbooks = targets.contains(config.playbooks) ? loaded.playbooks : ConfigLoader(actions: .builtIn).load([config.playbooks], integrationPaths: [config.integrations]).playbooks
            for file in loaded.scenarioFiles {
                do {
                    _ = try ScenarioLoader(playbooks: playbooks).load(path: file)
                } catch {
                    loaded.diagnostics += error.diagnostics
                }
            }
            loaded.diagnostics.sort()
        }
        // A playbook directory with no playbook is most often a wrong path.
        let standardized = { (p: String) in URL(fileURLWithPath: p).standardized.path }
        let directories = targets.filter { path in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
                && standardized(path) != standardized(config.integrations)
        }
        if !allowEmpty, !directories.isEmpty, loaded.playbooks.isEmpty, loaded.scenarioFiles.isEmpty {
            loaded.diagnostics.append(
                Diagnostic(
                    SourceLocation(file: directories[0], line: 1, column: 1),
                    "no playbook found in \(directories.joined(separator: ", ")) (give --allow-empty if that is expected)"))
        }
        switch output {
        case .text:
            for d in loaded.diagnostics { print(d.description) }
            let errors = loaded.errors.count
            let summary = "\(loaded.files.count) file(s): \(loaded.playbooks.count) playbook(s), \(loaded.integrations.count) integration(s)\(loaded.scenarioFiles.isEmpty ? "" : ", \(loaded.scenarioFiles.count) drill scenario(s)"), \(errors) error(s)"
            printError(errors == 0 ? "cordon: valid — \(summary)" : "cordon: invalid — \(summary)")
        case .json:
            let report: JSONValue = [
                "valid": .bool(loaded.isValid),
                "files": .array(loaded.files.map(JSONValue.string)),
                "playbooks": .array(loaded.playbooks.map { .string($0.name) }),
                "integrations": .array(loaded.integrations.map { .string($0.name) }),
                "scenarios": .array(loaded.scenarioFiles.map(JSONValue.string)),
                "diagnostics": .array(loaded.diagnostics.map(\.json)),
            ]
            print(JSONWriter.pretty(report))
        }
        if !loaded.isValid { throw CordonError(.checkFailed) }
    }
}

struct SchemaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schema",
        abstract: "Print the JSON Schema of playbook, integration, drill or configuration files.",
        discussion: """
            For editors with a YAML language server: save the output and point the server \
            at it (e.g. `# yaml-language-server: $schema=playbook.schema.json` at the top of \
            a playbook). The playbook schema lists every action, built-in and from \
            --integrations, with its inputs.
            """)

    enum Kind: String, ExpressibleByArgument, CaseIterable { case playbook, integration, drill, config }

    @Argument(help: "playbook, integration, drill or config (cordon.yaml)")
    var kind: Kind

    @OptionGroup var config: ConfigOptions

    func run() throws {
        switch kind {
        case .playbook:
            let loaded = ConfigLoader(actions: .builtIn).load([], integrationPaths: [config.integrations])
            print(JSONWriter.pretty(ConfigSchema.playbook(registry: loaded.registry)))
        case .integration:
            print(JSONWriter.pretty(ConfigSchema.integration()))
        case .drill:
            print(JSONWriter.pretty(Scenario.jsonSchema))
        case .config:
            print(JSONWriter.pretty(ConfigFile.jsonSchema))
        }
    }
}
