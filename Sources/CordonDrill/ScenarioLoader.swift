import CordonAWS
import CordonCloud
import CordonSimulatedCloud
import CordonCore
import Foundation

/// Reads and checks a scenario file: the shape (unknown keys, types, required fields),
/// then what the shape cannot say (one injection per timeline entry, files that exist,
/// findings that decode, the inventory, known playbooks and steps when they are given).
/// Every problem is reported with its file, line and column; bad input never crashes.
public struct ScenarioLoader: Sendable {
    /// The playbooks the scenario runs against, to check the names and steps it uses.
    public var playbooks: [Playbook]?

    public init(playbooks: [Playbook]? = nil) { self.playbooks = playbooks }

    public static let defaultStart = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01T00:00:00Z

    public func load(path: String) throws(ScenarioError) -> Scenario {
        let parser = YAMLParser()
        let data: [UInt8]
        switch BoundedFile.read(path, limit: parser.maxBytes, what: "a scenario file") {
        case .success(let bytes): data = bytes
        case .failure(let error): throw ScenarioError([Diagnostic(SourceLocation(file: path, line: 1, column: 1), "cannot read the scenario file: \(error.message)")])
        }
        let root: YAMLValue
        do {
            root = try parser.parse(data, file: path)
        } catch {
            throw ScenarioError([Diagnostic(error.location, error.message)])
        }
        return try load(root, file: path)
    }

    public func load(_ root: YAMLValue, file: String) throws(ScenarioError) -> Scenario {
        let shapeDiagnostics = Scenario.shape.diagnostics(of: root)
        if !shapeDiagnostics.isEmpty { throw ScenarioError(shapeDiagnostics) }
        var reader = ScenarioReader(loader: self, file: file)
        let start = reader.start(root)
        let (inventory, inventorySource) = reader.inventory(root)
        var environment: [String: String] = [:]
        for m in root["env"]?.members ?? [] { environment[m.key] = m.value.string }
        let (timeline, last) = reader.timeline(root, start: start)
        let expectations = reader.expectations(root)
        if !reader.diagnostics.isEmpty { throw ScenarioError(reader.diagnostics) }
        let duration = root["duration"]?.string.flatMap(DurationParser.parse) ?? (last + .seconds(3600))
        let seed = Self.int(root["seed"]).map { UInt64(max(0, $0)) } ?? 1
        if duration < last {
            throw ScenarioError([Diagnostic(root["duration"]?.location ?? root.location, "duration \(DurationParser.format(duration)) ends before the last injection (at \(DurationParser.format(last)))")])
        }
        return Scenario(
            file: file, name: root["name"]?.string ?? "", description: root["description"]?.string ?? "", narrative: root["narrative"]?.string ?? "",
            lessons: root["lessons"]?.items?.compactMap(\.string) ?? [], start: start, seed: seed, duration: duration, inventory: inventory,
            inventorySource: inventorySource, environment: environment, timeline: timeline, expectations: expectations)
    }

    static func int(_ value: YAMLValue?) -> Int? {
        guard let value, case .number(let n) = value.kind else { return nil }
        return n.intValue
    }

    func closest(_ word: String, _ candidates: [String]) -> String? {
        candidates.min { distance(Array(word), Array($0)) < distance(Array(word), Array($1)) }.flatMap { distance(Array(word), Array($0)) <= max(2, word.count / 3) ? $0 : nil }
    }

    func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var prev = row[0]
            row[0] = i
            for j in 1...b.count {
                let old = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
                prev = old
            }
        }
        return row[b.count]
    }
}

/// One reading of a scenario: the problems found so far, where its relative file names
/// start, and the playbooks its names are checked against. Each part of the file is
/// read by a method of its own; all of them add to the same `diagnostics`, in file order.
private struct ScenarioReader {
    let loader: ScenarioLoader
    let file: String
    /// The scenario file's directory.
    let base: URL
    let playbooksByName: [String: Playbook]
    let decoder = FindingDecoder()
    var diagnostics: [Diagnostic] = []

    init(loader: ScenarioLoader, file: String) {
        self.loader = loader
        self.file = file
        // Absolute first: a relative URL whose `..` climbs past its own start would lose
        // the working directory when standardized.
        let absolute = file.hasPrefix("/") ? file : FileManager.default.currentDirectoryPath + "/" + file
        base = URL(fileURLWithPath: absolute).standardized.deletingLastPathComponent()
        playbooksByName = Dictionary((loader.playbooks ?? []).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    mutating func fail(_ at: YAMLValue, _ message: String) { diagnostics.append(Diagnostic(at.location, message)) }

    /// The one key of `kinds` an entry holds, with its value; nil (and said) when it
    /// holds none or several (`several` gets them joined by "and").
    mutating func single(_ item: YAMLValue, of kinds: [String], none: String, several: (String) -> String) -> (String, YAMLValue)? {
        let found = kinds.filter { item[$0] != nil }
        guard found.count == 1, let kind = found.first, let body = item[kind] else {
            fail(item, found.isEmpty ? none : several(found.joined(separator: " and ")))
            return nil
        }
        return (kind, body)
    }

    /// A file name of the scenario, relative to its directory unless absolute.
    func resolve(_ path: String) -> String { path.hasPrefix("/") ? path : base.appendingPathComponent(path).standardized.path }

    /// A path as shown to people: relative to the working directory when under it.
    func relative(_ path: String) -> String {
        let cwd = FileManager.default.currentDirectoryPath + "/"
        return path.hasPrefix(cwd) ? String(path.dropFirst(cwd.count)) : path
    }

    /// Checks that a playbook name (and a step of it) exists, when the playbooks are known.
    mutating func checkPlaybook(_ value: YAMLValue?, step: YAMLValue? = nil) {
        guard loader.playbooks != nil, let value, let name = value.string else { return }
        guard let playbook = playbooksByName[name] else {
            var message = "no playbook named \"\(name)\""
            if let guess = loader.closest(name, playbooksByName.keys.sorted()) { message += " (did you mean \"\(guess)\"?)" }
            message += "; known: " + playbooksByName.keys.sorted().joined(separator: ", ")
            return fail(value, message)
        }
        if let step, let id = step.string, !playbook.steps.contains(where: { $0.id == id }) {
            fail(step, "playbook \(name) has no step \"\(id)\"; its steps: " + playbook.steps.map(\.id).joined(separator: ", "))
        }
    }

    // MARK: - Start and inventory

    mutating func start(_ root: YAMLValue) -> Date {
        guard let s = root["start"] else { return ScenarioLoader.defaultStart }
        if let d = s.string.flatMap(Timestamp.parse) { return d }
        fail(s, "start: write an RFC 3339 time such as 2026-03-14T09:00:00Z")
        return ScenarioLoader.defaultStart
    }

    /// The inventory (from its file or inline) and how the report names its source.
    mutating func inventory(_ root: YAMLValue) -> (Inventory, String) {
        guard let inv = root["inventory"] else {
            fail(root, "missing required key \"inventory\" (the simulated cloud: a file, relative to the scenario, or the inventory inline)")
            return (Inventory(), "(none)")
        }
        do throws(InventoryError) {
            if let path = inv.string {
                let resolved = resolve(path)
                if FileManager.default.fileExists(atPath: resolved) {
                    return (try Inventory.load(path: resolved), relative(resolved))
                }
                fail(inv, "inventory: no file \(resolved)")
            } else if inv.members != nil {
                return (try Inventory.load(inv), "inline")
            } else {
                fail(inv, "inventory: give a file name or the inventory inline (a mapping), found \(inv.typeName)")
            }
        } catch {
            diagnostics += error.diagnostics
        }
        return (Inventory(), "(none)")
    }

    // MARK: - Timeline

    /// The injections in time order (entries at the same time keep file order), and the
    /// time of the last entry.
    mutating func timeline(_ root: YAMLValue, start: Date) -> ([Scenario.Injection], Duration) {
        var timeline: [Scenario.Injection] = []
        var last: Duration = .zero
        for item in root["timeline"]?.items ?? [] {
            let at = item["at"]?.string.flatMap(DurationParser.parse) ?? .zero
            last = max(last, at)
            guard
                let (kind, body) = single(
                    item, of: ["finding", "approve", "deny", "close", "fault"], none: "a timeline entry needs one of finding, approve, deny, close or fault",
                    several: { "a timeline entry holds one injection; found \($0): split it into entries with the same `at`" })
            else { continue }
            switch kind {
            case "finding":
                timeline += findings(body, at: at, item: item)
            case "approve", "deny":
                timeline.append(decision(body, approve: kind == "approve", at: at, item: item))
            case "close":
                checkPlaybook(body["playbook"], step: nil)
                timeline.append(.init(
                    at: at, kind: .close(playbook: body["playbook"]?.string ?? "", key: body["key"]?.string, by: body["by"]?.string ?? "", reason: body["reason"]?.string),
                    location: item.location))
            default:
                if let injection = fault(body, at: at, start: start, item: item) { timeline.append(injection) }
            }
        }
        let ordered = timeline.enumerated().sorted { ($0.element.at, $0.offset) < ($1.element.at, $1.offset) }.map(\.element)
        return (ordered, last)
    }

    /// The findings of a `finding` entry (from its file or inline); none when it does not decode.
    mutating func findings(_ body: YAMLValue, at: Duration, item: YAMLValue) -> [Scenario.Injection] {
        let detected = body["detected_after"]?.string.flatMap(DurationParser.parse) ?? .zero
        let result: DecodeResult
        let label: String
        switch (body["file"], body["event"]) {
        case (let f?, nil):
            guard let path = f.string else { return [] }
            let resolved = resolve(path)
            guard FileManager.default.fileExists(atPath: resolved) else {
                fail(f, "no finding file \(resolved)")
                return []
            }
            result = decoder.decode(fileAtPath: resolved)
            label = URL(fileURLWithPath: path).lastPathComponent
        case (nil, let e?):
            result = decoder.decode(value: e.json, origin: FindingOrigin(source: "\(relative(file)):\(e.location.line)"))
            label = "inline finding at line \(e.location.line)"
        default:
            fail(body, "a finding needs exactly one of file (a finding file) or event (the finding inline)")
            return []
        }
        for issue in result.issues { fail(body, "the finding does not decode: \(issue)") }
        if result.issues.isEmpty && result.findings.isEmpty { fail(body, "no finding in it") }
        return result.findings.map { Scenario.Injection(at: at, kind: .finding(finding: $0, label: label, detectedAfter: detected), location: item.location) }
    }

    /// An `approve` or `deny` entry.
    mutating func decision(_ body: YAMLValue, approve: Bool, at: Duration, item: YAMLValue) -> Scenario.Injection {
        checkPlaybook(body["playbook"], step: body["step"])
        return .init(
            at: at,
            kind: .decision(
                playbook: body["playbook"]?.string ?? "", key: body["key"]?.string, step: body["step"]?.string ?? "",
                by: body["by"]?.string ?? "", approve: approve, reason: body["reason"]?.string),
            location: item.location)
    }

    /// A `fault` entry: on an AWS call (`operation`) or a notification target (`target`).
    mutating func fault(_ body: YAMLValue, at: Duration, start: Date, item: YAMLValue) -> Scenario.Injection? {
        let effect = body["effect"]?.string ?? ""
        let times = ScenarioLoader.int(body["times"])
        let lasting = body["for"]?.string.flatMap(DurationParser.parse)
        let until = lasting.map { start.addingTimeInterval((at + $0).seconds) }
        switch (body["operation"]?.string, body["target"]?.string) {
        case (let op?, nil):
            guard let fault = awsFault(op, body, effect: effect, times: times, lasting: lasting, until: until) else { return nil }
            return .init(at: at, kind: .fault(fault), location: item.location)
        case (nil, let target?):
            guard effect == "down" else {
                fail(body["effect"] ?? body, "a notification target takes effect down, not \(effect)")
                return nil
            }
            if target.lowercased() == "sns" {
                // SNS is part of the simulated cloud: its Publish calls fail with 503.
                return .init(at: at, kind: .fault(Fault(operation: "sns:Publish", effect: .outage, times: times, until: until)), location: item.location)
            }
            return .init(at: at, kind: .targetDown(target: target, times: times, for: lasting), location: item.location)
        default:
            fail(body, "a fault needs exactly one of operation (an AWS call, e.g. ec2:ModifyNetworkInterfaceAttribute) or target (a notification target, e.g. slack)")
            return nil
        }
    }

    /// The fault of an AWS call; nil (and said) for `down`, which is for notification targets.
    mutating func awsFault(_ op: String, _ body: YAMLValue, effect: String, times: Int?, lasting: Duration?, until: Date?) -> Fault? {
        guard effect != "down" else {
            fail(body["effect"] ?? body, "effect down is for notification targets (target:); an AWS call has throttle, access_denied, outage or timeout")
            return nil
        }
        if effect == "outage" && times == nil && lasting == nil { fail(body, "an outage needs `for` (a duration) or `times` (calls)") }
        let fault: Fault
        switch effect {
        case "throttle": fault = Fault(operation: op, effect: .throttle, times: times ?? (lasting == nil ? 1 : nil), until: until)
        case "access_denied": fault = Fault(operation: op, effect: .accessDenied, times: times, until: until)
        case "outage": fault = Fault(operation: op, effect: .outage, times: times, until: until)
        default:
            let after = body["after"]?.string.flatMap(DurationParser.parse) ?? .seconds(30)
            fault = Fault(operation: op, effect: .timeout(after), times: times ?? (lasting == nil ? 1 : nil), until: until)
        }
        if let after = body["after"], effect != "timeout" { fail(after, "after applies to effect timeout only") }
        return fault
    }

    // MARK: - Expectations

    mutating func expectations(_ root: YAMLValue) -> [Scenario.Expectation] {
        var expectations: [Scenario.Expectation] = []
        for item in root["expect"]?.items ?? [] {
            guard
                let (kind, body) = single(
                    item, of: ["incident", "no_incident", "resource", "notification"],
                    none: "an expectation needs one of incident, no_incident, resource or notification",
                    several: { "an expectation holds one check; found \($0): split it" })
            else { continue }
            switch kind {
            case "incident":
                expectations.append(incidentExpectation(body, item: item))
            case "no_incident":
                checkPlaybook(body)
                expectations.append(.init(kind: .noIncident(playbook: body.string ?? ""), location: item.location))
            case "notification":
                expectations.append(.init(kind: .notification(via: body["via"]?.string ?? "", contains: body["contains"]?.string), location: item.location))
            default:
                if let expectation = resourceExpectation(body, item: item) { expectations.append(expectation) }
            }
        }
        return expectations
    }

    mutating func incidentExpectation(_ body: YAMLValue, item: YAMLValue) -> Scenario.Expectation {
        checkPlaybook(body["playbook"])
        if let playbook = body["playbook"]?.string.flatMap({ playbooksByName[$0] }) {
            for m in body["steps"]?.members ?? [] where !playbook.steps.contains(where: { $0.id == m.key }) {
                diagnostics.append(Diagnostic(m.keyLocation, "playbook \(playbook.name) has no step \"\(m.key)\"; its steps: " + playbook.steps.map(\.id).joined(separator: ", ")))
            }
        }
        return .init(
            kind: .incident(.init(
                playbook: body["playbook"]?.string ?? "", key: body["key"]?.string, status: body["status"]?.string,
                steps: (body["steps"]?.members ?? []).map { ($0.key, $0.value.string ?? "") },
                containedWithin: body["contained_within"]?.string.flatMap(DurationParser.parse))),
            location: item.location)
    }

    /// A `resource` expectation: one resource, and the properties to check on it.
    mutating func resourceExpectation(_ body: YAMLValue, item: YAMLValue) -> Scenario.Expectation? {
        let resourceKinds = Scenario.resourceProperties.keys.sorted().filter { body[$0] != nil }
        guard resourceKinds.count == 1, let rk = resourceKinds.first, let allowed = Scenario.resourceProperties[rk] else {
            fail(body, "a resource expectation names one resource: one of " + Scenario.resourceProperties.keys.sorted().joined(separator: ", "))
            return nil
        }
        var properties: [(name: String, value: JSONValue)] = []
        for m in body.members ?? [] where !["account", "region", rk].contains(m.key) {
            if allowed.contains(where: { $0.0 == m.key }) {
                if !(rk == "access_key" && m.key == "user") { properties.append((m.key, m.value.json)) }
            } else {
                diagnostics.append(Diagnostic(m.keyLocation, "\(m.key) does not apply to a \(rk); expected " + allowed.map(\.0).joined(separator: ", ")))
            }
        }
        if rk == "access_key" && body["user"] == nil { fail(body, "an access_key expectation needs user (the key's IAM user)") }
        if properties.isEmpty { fail(body, "say what to check: " + allowed.map(\.0).filter { $0 != "user" }.joined(separator: ", ")) }
        var id = body[rk]?.string ?? ""
        if rk == "access_key", let user = body["user"]?.string { id = user + "/" + id }
        return .init(
            kind: .resource(.init(kind: rk, id: id, account: body["account"]?.string, region: body["region"]?.string ?? "us-east-1", properties: properties)),
            location: item.location)
    }
}
