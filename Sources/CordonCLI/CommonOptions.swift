import ArgumentParser
import CordonCore

/// Options every command that reads configuration shares (docs/cli.md, "Common options").
struct ConfigOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Directory of playbooks.", valueName: "DIR"))
    var playbooks: String = "./Playbooks"

    @Option(help: ArgumentHelp("Directory of integration files.", valueName: "DIR"))
    var integrations: String = "./Integrations"
}

/// A duration option (`30s`, `5m`, `1h30m`, `500ms`): parsed, and refused with what is
/// wrong, when the command line is read, so the command's code holds a `Duration`.
struct DurationOption: ExpressibleByArgument, Sendable, CustomStringConvertible {
    let duration: Duration
    let text: String

    init?(argument: String) {
        guard let duration = DurationParser.parse(argument) else { return nil }
        self.duration = duration
        self.text = argument
    }

    /// A default written in the source: it parses.
    init(_ literal: StaticString) {
        let text = "\(literal)"
        self.text = text
        self.duration = DurationParser.parse(text) ?? .zero
    }

    var description: String { text }
    var defaultValueDescription: String { text }

    /// `--NAME`'s value parsed, or an error that says what a duration is.
    static func parse(_ text: String, option: String) throws -> DurationOption {
        guard let value = DurationOption(argument: text) else {
            throw ValidationError("\(option): \"\(text)\" is not a duration: write number-unit pairs such as 500ms, 30s, 5m, 1h30m (units ms, s, m, h, d)")
        }
        return value
    }
}
