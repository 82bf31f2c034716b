import ArgumentParser

/// Options every command that reads configuration shares (docs/cli.md, "Common options").
struct ConfigOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Directory of playbooks.", valueName: "DIR"))
    var playbooks: String = "./Playbooks"

    @Option(help: ArgumentHelp("Directory of integration files.", valueName: "DIR"))
    var integrations: String = "./Integrations"
}
