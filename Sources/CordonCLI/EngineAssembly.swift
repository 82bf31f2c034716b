import ArgumentParser
import CordonCore
import CordonEngine
import CordonIntegrations
import CordonJournal
import Foundation
import Logging

// What the commands that run playbooks share: loading the configuration, opening the
// journal and the engine, starting a run.

/// Loads playbooks and integrations, or exits 2 with their diagnostics.
func loadConfiguration(_ options: ConfigOptions) throws -> LoadedConfig {
    // A missing default Integrations/ only means there are no integrations.
    var paths = [options.playbooks]
    if options.integrations != "./Integrations" || FileManager.default.fileExists(atPath: options.integrations) {
        paths.append(options.integrations)
    }
    let loaded = ConfigLoader(actions: .builtIn).load(paths)
    if !loaded.isValid {
        for d in loaded.errors { printError(d.description) }
        throw CordonError(.invalidInput, "the playbooks or integrations are invalid (see `cordon validate`)")
    }
    return loaded
}

/// The journal (created if needed) and an engine whose state is rebuilt from it: what
/// every command that runs playbooks starts with. Its index keeps finished incidents by
/// id and key only (`IncidentIndex.Retention.live`), so memory does not grow with the
/// journal; `Engine.incident(_:)` reads one in full.
func openEngine(
    _ loaded: LoadedConfig, _ data: DataOptions, cloud: CloudSession = .none, create: Bool = true, dryRun: Bool = false,
    actionsInFlight: Int? = nil, retention: IncidentIndex.Retention = .live(findings: IncidentIndex.Retention.defaultWindow),
    followsBetweenSteps: Bool = true, wrapJournal: (SQLiteJournal) -> any Journal = { $0 }, logger: Logger? = nil,
    witnessEvents: @escaping @Sendable (WitnessPublisher.Event) -> Void = { _ in }
) async throws -> (SQLiteJournal, Engine) {
    let secrets = SecretStore()
    let journal = try await data.openJournal(create: create, secrets: secrets, log: logger, witnessEvents: witnessEvents)
    // aws.* on --cloud (none in a dry run).
    let actions = ActionSet.build(integrations: loaded.integrations, cloud: cloud.actions, overrides: ActionOverrides.apply)
    let engine = Engine(
        config: loaded, actions: actions, journal: logger.map { LoggingJournal(wrapJournal(journal), logger: $0) } ?? wrapJournal(journal), evidence: journal.evidence, secrets: secrets, actor: runnerName(),
        dryRun: dryRun, index: try await IncidentIndex.load(from: journal, retention: retention), actionsInFlight: actionsInFlight,
        followsBetweenSteps: followsBetweenSteps)
    return (journal, engine)
}

/// Quarantines what was in progress when the last two runs on the data directory
/// crashed, then records this run's start and installs the crash handler (`CrashLog`).
/// Returns the log and what was in progress at the last crash (to take up one at a time).
func beginRun(_ engine: Engine, _ data: DataOptions) async throws -> (CrashLog, Set<String>) {
    let crashes = CrashLog(data.directory)
    let lastCrash = crashes.inProgressAtLastCrash()
    if let (items, reason) = crashes.inProgressAtTwoCrashes() {
        let quarantined = try await engine.quarantine(items, reason: reason)
        if !quarantined.isEmpty {
            printError(
                "cordon: quarantined \(quarantined.count) finding(s) or incident(s) that were in progress when the last two runs crashed; they are not taken up again automatically (see `cordon incidents`)"
            )
        }
    }
    try crashes.begin()
    return (crashes, lastCrash)
}

/// One line per step of an incident's latest evaluation, as summaries print them.
func stepLines(_ incident: IncidentIndex.Incident) -> [String] {
    incident.steps.values.filter { $0.round == incident.rounds }.map { s in
        "    \(s.status.rawValue.padding(toLength: 17, withPad: " ", startingAt: 0)) \(s.id) (\(s.action))\(s.error.map { ": \($0)" } ?? "")"
    }
}

/// `STATE (STATUS)` as the listings print an incident, with its dry-run mark.
func stateText(_ incident: IncidentIndex.Incident) -> String {
    let status = incident.status.rawValue == incident.state.rawValue ? incident.status.rawValue : "\(incident.state.rawValue) (\(incident.status))"
    return status + (incident.dryRun ? " [dry run]" : "")
}

func runnerName() -> String {
    "cordon/\(CordonCore.Cordon.version)@\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
}
