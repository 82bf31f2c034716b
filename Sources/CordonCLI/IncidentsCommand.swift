import ArgumentParser
import CordonCore
import CordonEngine
import CordonIntegrations
import CordonJournal
import Foundation

struct IncidentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "incidents", abstract: "List incidents.")

    @OptionGroup var data: DataOptions

    @Option(help: "text or json")
    var output: OutputFormat = .text

    func run() async throws {
        let journal = try data.openReader()
        let index = try await IncidentIndex.load(from: journal)
        switch output {
        case .text:
            if index.incidents.isEmpty { print("no incidents") }
            for incident in index.incidents.values {
                let state = stateText(incident)
                print("\(incident.id)  \(incident.openedAt)  \(state)\(String(repeating: " ", count: max(1, 31 - state.count)))\(incident.playbook)  \(incident.title ?? incident.key)")
            }
            if !index.quarantinedFindings.isEmpty {
                print("quarantined findings (never taken up again automatically):")
                for (_, q) in index.quarantinedFindings {
                    print("  \(q.finding["id"]?.stringValue ?? "?")  \(q.finding["type"]?.stringValue ?? "")  \(q.reason)")
                }
            }
        case .json:
            var incidents = index.incidents.values.map(\.json)
            incidents += index.quarantinedFindings.values.map { ["quarantined_finding": $0.finding, "reason": .string($0.reason)] }
            print(JSONWriter.pretty(.array(incidents)))
        }
    }
}

struct ShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show an incident: its findings, steps, statuses, pending approval and evidence.")

    @Argument(help: "The incident id.")
    var incident: String

    @OptionGroup var data: DataOptions

    @Option(help: "text or json")
    var output: OutputFormat = .text

    func run() async throws {
        let journal = try data.openReader()
        guard let i = try await IncidentIndex.load(incident: incident, from: journal) else {
            throw CordonError(.notFound, "no incident \(incident) (see `cordon incidents`)")
        }
        switch output {
        case .json:
            var o = i.json.objectValue ?? [:]
            o["steps"] = .array(i.steps.values.map { s in
                ["id": .string(s.id), "action": .string(s.action), "status": .string(s.status.rawValue), "attempts": .number(JSONNumber(s.attempts)),
                 "target": s.target.map(JSONValue.string) ?? .null, "error": s.error.map(JSONValue.string) ?? .null,
                 "outputs": s.outputs ?? .null, "evidence": .array(s.evidence.map(JSONValue.string))]
            })
            o["pending_approval"] = i.pendingApproval.map(JSONValue.string) ?? .null
            print(JSONWriter.pretty(.object(o)))
        case .text:
            print("incident  \(i.id)\(i.dryRun ? "  (dry run: nothing was called)" : "")")
            print("title     \(i.title ?? "-")")
            print("playbook  \(i.playbook) v\(i.playbookVersion)")
            print("key       \(i.key)")
            print("state     \(stateText(i))")
            print("opened    \(i.openedAt)")
            if let follows = i.follows { print("follows   \(follows) (closed; this key's findings since open this one)") }
            if let closure = i.closure { print("closed    \(closure.time) by \(closure.by)\(closure.reason.map { ": \($0)" } ?? "")") }
            if let quarantine = i.quarantine { print("quarantined  \(quarantine)") }
            print("findings  \(i.findings.joined(separator: ", "))\(i.rounds > 1 ? " (\(i.rounds) evaluations)" : "")")
            if let pending = i.pendingApproval {
                // The cloud the incident's steps act in: the simulated one keeps its state in the data directory.
                let simulated = FileManager.default.fileExists(atPath: data.directory.url.appendingPathComponent("simulated-cloud.json").path)
                print(
                    "approval  step \(pending) awaits a decision: cordon approve \(i.id) \(pending) --by NAME [--deny --reason TEXT] --data-dir \(data.dataDir) --cloud \(simulated ? "simulated" : "aws")"
                )
            }
            print("steps")
            for s in i.steps.values {
                let earlier = s.round < i.rounds ? " [evaluation \(s.round)]" : ""
                print("  \(s.status.rawValue.padding(toLength: 17, withPad: " ", startingAt: 0)) \(s.id) (\(s.action))\(s.target.map { " → \($0)" } ?? "")\(s.attempts > 1 ? ", \(s.attempts) attempts" : "")\(earlier)")
                if let e = s.error { print("      \(e)") }
                for h in s.evidence { print("      evidence \(h)") }
            }
        }
    }
}
