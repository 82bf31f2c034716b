import CordonAWS
import CordonCloud
import CordonSimulatedCloud
import CordonCore
import CordonEngine
import Foundation

/// What a drill found: the timeline, each expectation met or missed with its evidence,
/// per-incident metrics, failed or waiting steps and the gaps. Rendered as text,
/// Markdown, HTML or JSON; the same scenario and seed give the same report.
public struct DrillReport: Sendable {
    public struct Note: Sendable {
        public var at: String
        /// `gap` (something to fix) or `info`.
        public var kind: String
        public var text: String
    }

    public struct Line: Sendable {
        public var at: String
        public var incident: String?
        public var actor: String
        public var what: String
        public var outcome: String
    }

    public struct IncidentSummary: Sendable {
        public var id: String
        public var playbook: String
        public var key: String
        public var title: String
        public var status: String
        public var timeToDetect: String?
        public var timeToContain: String?
        /// From the finding's creation to the incident's close (nil: open at the end).
        public var timeToClose: String?
        public var steps: [(id: String, action: String, status: String, attempts: Int, error: String?)]
    }

    public struct Check: Sendable {
        public var expectation: String
        public var location: String
        public var met: Bool
        public var evidence: String
    }

    public var scenario: String
    public var description: String
    public var narrative: String
    public var lessons: [String]
    public var seed: UInt64
    /// The cloud it ran against (`simulated`, `aws (moto at http://127.0.0.1:5000)`…).
    public var cloud: String
    public var file: String
    public var dataDir: String
    public var virtualSpan: String
    public var timeline: [Line]
    public var incidents: [IncidentSummary]
    public var checks: [Check]
    public var notes: [Note]
    public var notifications: [(at: String, channel: String, delivered: Bool, text: String)]

    public var passed: Bool { checks.allSatisfy(\.met) }

    // MARK: - Formatting helpers

    static func offset(_ seconds: TimeInterval) -> String {
        let s = Int(seconds.rounded(.down))
        let a = abs(s)
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "T\(s < 0 ? "-" : "+")\(two(a / 3600)):\(two(a % 3600 / 60)):\(two(a % 60))"
    }

    static func duration(_ seconds: TimeInterval) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return s % 60 == 0 ? "\(s / 60) min" : "\(s / 60) min \(s % 60)s" }
        return "\(s / 3600)h \(s % 3600 / 60) min"
    }

    // MARK: - Building

    static func build(
        scenario: Scenario, seed: UInt64, records: [JournalRecord], index: IncidentIndex, notifications: [DrillNotification], cloud: any Cloud,
        simulated: SimulatedCloud?, notes extra: [Note], dataDir: String, cloudLabel: String = "simulated"
    ) async -> DrillReport {
        let (rowsBySeq, metrics) = incidentTimelines(records)
        let lines = records.compactMap { line($0, scenario: scenario, seed: seed, rowsBySeq: rowsBySeq) }
        var notes = extra
        let incidents = index.incidents.values.map { summary($0, metrics: metrics[$0.id], notes: &notes) }
        notes += approvalTimeoutNotes(records, start: scenario.start)
        for n in notifications where !n.delivered {
            notes.append(.init(at: offset(n.time.timeIntervalSince(scenario.start)), kind: "gap", text: "\(n.action) could not be delivered: \(n.error ?? "")"))
        }
        notes = notes.enumerated().sorted { ($0.element.at, $0.offset) < ($1.element.at, $1.offset) }.map(\.element)
        // Expectations.
        var checks: [Check] = []
        for e in scenario.expectations {
            checks.append(await check(e, scenario: scenario, index: index, metrics: metrics, notifications: notifications, cloud: cloud, simulated: simulated, records: records))
        }
        return DrillReport(
            scenario: scenario.name, description: scenario.description, narrative: scenario.narrative, lessons: scenario.lessons, seed: seed,
            cloud: cloudLabel, file: scenario.file, dataDir: dataDir,
            virtualSpan: duration(records.last.flatMap { Timestamp.parse($0.time) }.map { $0.timeIntervalSince(scenario.start) } ?? 0),
            timeline: lines, incidents: incidents, checks: checks, notes: notes,
            notifications: notifications.map {
                (offset($0.time.timeIntervalSince(scenario.start)), $0.channel, $0.delivered,
                 ($0.inputs["text"] ?? $0.inputs["summary"] ?? $0.inputs["subject"] ?? $0.inputs["message"]).flatMap(\.stringValue) ?? JSONWriter.string(.object($0.inputs)))
            })
    }

    /// A journal time as an offset from the scenario's start (the text itself when it is
    /// not a time).
    static func at(_ time: String, from start: Date) -> String { Timestamp.parse(time).map { offset($0.timeIntervalSince(start)) } ?? time }

    /// Each incident's timeline (its records and the findings they refer to): its rows
    /// by seq (phases, wording) and its metrics by incident id.
    static func incidentTimelines(_ records: [JournalRecord]) -> ([Int64: Timeline.Row], [String: Timeline.Metrics]) {
        var byIncident: [String: [JournalRecord]] = [:]
        for r in records { if let i = r.incident { byIncident[i, default: []].append(r) } }
        var rowsBySeq: [Int64: Timeline.Row] = [:]
        var metrics: [String: Timeline.Metrics] = [:]
        for (id, rs) in byIncident {
            let all = rs + records.filter { r in r.kind == RecordKind.findingReceived && rs.contains { $0.data["finding_seq"] == .number(JSONNumber(Int(r.seq))) } }
            let t = Timeline(incident: id, records: all)
            metrics[id] = t.metrics
            for row in t.rows where row.seq > 0 { rowsBySeq[row.seq] = row }
        }
        return (rowsBySeq, metrics)
    }

    /// The report's timeline line of a record: the drill's own records in its words, an
    /// incident's in its timeline's; nil for records the report leaves out.
    static func line(_ r: JournalRecord, scenario: Scenario, seed: UInt64, rowsBySeq: [Int64: Timeline.Row]) -> Line? {
        let d = r.data
        let when = at(r.time, from: scenario.start)
        switch r.kind {
        case "drill.started":
            return .init(at: when, incident: nil, actor: r.actor, what: "Drill \(scenario.name) started (seed \(seed), inventory \(d["inventory"]?.stringValue ?? "?"), \(d["cloud"]?.stringValue ?? "") cloud)", outcome: "")
        case "drill.injected":
            let what: String
            switch d["injection"]?.stringValue {
            case "finding": what = "Inject finding \(d["finding"]?.stringValue ?? "")"
            case "fault": what = "Inject fault: \(d["fault"]?.stringValue ?? "")"
            case let decision?: what = "\(d["by"]?.stringValue ?? "?") decides to \(decision) \(d["step"]?.stringValue ?? "") of \(d["playbook"]?.stringValue ?? "")"
            default: what = "Injection"
            }
            return .init(at: when, incident: nil, actor: "drill", what: what, outcome: "")
        case "drill.finished":
            return .init(at: when, incident: nil, actor: r.actor, what: "Drill finished", outcome: "")
        case RecordKind.findingReceived:
            let matched = d["matched"]?.arrayValue?.compactMap(\.stringValue) ?? []
            return .init(
                at: when, incident: nil, actor: r.actor,
                what: "Finding received: \(d["finding"]?["type"]?.stringValue ?? d["finding"]?["detail_type"]?.stringValue ?? "")",
                outcome: matched.isEmpty ? "matched no playbook" : "matched " + matched.joined(separator: ", "))
        case RecordKind.findingUnmatched:
            return nil
        default:
            if let row = rowsBySeq[r.seq] {
                return .init(at: when, incident: r.incident, actor: row.actor, what: row.what + (row.target.isEmpty ? "" : " → \(row.target)"), outcome: row.outcome)
            }
            return .init(at: when, incident: r.incident, actor: r.actor, what: r.kind.rawValue, outcome: "")
        }
    }

    /// The actions that contain: an incident that ran one and was never contained is a gap.
    static let containmentActions = [
        "aws.ec2.isolate_instance", "aws.iam.deactivate_access_keys", "aws.ec2.revoke_ingress", "aws.cloudtrail.start_logging", "aws.s3.block_public_access",
        "aws.iam.attach_deny_all", "aws.iam.revoke_role_sessions",
    ]

    /// An incident's summary; adds the notes on its failed, retried and waiting steps and
    /// on containment that never came.
    static func summary(_ incident: IncidentIndex.Incident, metrics m: Timeline.Metrics?, notes: inout [Note]) -> IncidentSummary {
        for step in incident.steps.values {
            if step.status == .failed {
                notes.append(.init(at: "end", kind: "gap", text: "\(incident.id) (\(incident.playbook)): step \(step.id) failed after \(step.attempts) attempt(s): \(step.error ?? "?")"))
            } else if step.attempts > 1 {
                notes.append(.init(at: "end", kind: "info", text: "\(incident.id): step \(step.id) succeeded after \(step.attempts) attempts (retried)"))
            }
        }
        if incident.status == .awaitingApproval, let step = incident.pendingApproval {
            notes.append(.init(at: "end", kind: "gap", text: "\(incident.id): step \(step) still awaits approval when the drill ends: nobody decided"))
        }
        if m?.timeToContain == nil, incident.steps.values.contains(where: { containmentActions.contains($0.action) }) {
            notes.append(.init(at: "end", kind: "gap", text: "\(incident.id) (\(incident.playbook)) was never contained"))
        }
        return .init(
            id: incident.id, playbook: incident.playbook, key: incident.key, title: incident.title ?? incident.key, status: incident.status.rawValue,
            timeToDetect: m?.timeToDetect.map(duration), timeToContain: m?.timeToContain.map(duration), timeToClose: m?.timeToClose.map(duration),
            steps: incident.steps.values.map { ($0.id, $0.action, $0.status.rawValue, $0.attempts, $0.error) })
    }

    /// A gap for every approval that timed out: how long it waited and what happened then.
    static func approvalTimeoutNotes(_ records: [JournalRecord], start: Date) -> [Note] {
        var notes: [Note] = []
        for r in records where r.kind == RecordKind.approvalDecided && r.data["timed_out"] == .bool(true) {
            let step = r.data["step"]?.stringValue ?? "?"
            let requested = records.last { $0.seq < r.seq && $0.incident == r.incident && $0.kind == RecordKind.approvalRequested && $0.data["step"]?.stringValue == step }
            let waited = requested.flatMap { q in Timestamp.parse(q.time).flatMap { a in Timestamp.parse(r.time).map { $0.timeIntervalSince(a) } } }
            let reason = r.data["reason"]?.stringValue ?? ""
            let onTimeout = reason.range(of: "on_timeout: ").map { String(reason[$0.upperBound...].dropLast()) } ?? "?"
            notes.append(.init(
                at: at(r.time, from: start), kind: "gap",
                text: "approval of \(step) (\(r.incident ?? "")) waited \(waited.map(duration) ?? "?"): nobody decided, on_timeout \(onTimeout == "proceed" ? "proceeded" : onTimeout == "skip" ? "skipped the step" : "aborted the incident")"))
        }
        return notes
    }

    static func check(
        _ e: Scenario.Expectation, scenario: Scenario, index: IncidentIndex, metrics: [String: Timeline.Metrics], notifications: [DrillNotification],
        cloud: any Cloud, simulated: SimulatedCloud?, records: [JournalRecord]
    ) async -> Check {
        let location = "\(e.location)"
        switch e.kind {
        case .noIncident(let playbook):
            let opened = index.incidents.values.filter { $0.playbook == playbook }
            return Check(
                expectation: "no incident from \(playbook)", location: location, met: opened.isEmpty,
                evidence: opened.isEmpty ? "no incident was opened by \(playbook)" : "opened " + opened.map(\.id).joined(separator: ", "))
        case .incident(let x):
            var name = "incident from \(x.playbook)" + (x.key.map { " for \($0)" } ?? "")
            guard let incident = index.incidents.values.first(where: { $0.playbook == x.playbook && (x.key == nil || $0.key == x.key) }) else {
                let others = index.incidents.values.map { "\($0.playbook) (\($0.key))" }
                return Check(expectation: name, location: location, met: false, evidence: "no such incident was opened" + (others.isEmpty ? "" : "; opened: " + others.joined(separator: ", ")))
            }
            var problems: [String] = []
            var facts: [String] = ["\(incident.id) \(incident.status)"]
            if let status = x.status {
                name += ", status \(status)"
                if incident.status.rawValue != status { problems.append("status is \(incident.status), expected \(status)") }
            }
            for (id, expected) in x.steps {
                name += ", \(id) \(expected)"
                let actual: String
                if let s = incident.steps[id] {
                    actual = s.status == .awaitingApproval ? "awaiting_approval" : s.status.rawValue
                } else {
                    actual = incident.pendingApproval == id ? "awaiting_approval" : "not_run"
                }
                let error = incident.steps[id]?.error.map { ": \($0)" } ?? ""
                facts.append("\(id) \(actual)" + (incident.steps[id].map { $0.attempts > 1 ? " (\($0.attempts) attempts)" : "" } ?? ""))
                if actual != expected { problems.append("step \(id) is \(actual), expected \(expected)\(error)") }
            }
            if let bound = x.containedWithin {
                name += ", contained within \(DurationParser.format(bound))"
                if let t = metrics[incident.id]?.timeToContain {
                    facts.append("contained after \(duration(t))")
                    if t > bound.seconds { problems.append("contained after \(duration(t)), more than \(DurationParser.format(bound))") }
                } else {
                    problems.append("never contained")
                }
            }
            return Check(expectation: name, location: location, met: problems.isEmpty, evidence: problems.isEmpty ? facts.joined(separator: "; ") : problems.joined(separator: "; "))
        case .notification(let via, let contains):
            let name = "notification via \(via)" + (contains.map { " containing \"\($0)\"" } ?? "")
            var texts: [String] = notifications.filter { $0.channel == via && $0.delivered }.map { JSONWriter.string(.object($0.inputs)) }
            if via == "sns" {
                // The topic's messages on the simulated cloud; elsewhere what the journal
                // says was published.
                texts = simulated.map(simulatedMessages) ?? records.filter { $0.kind == RecordKind.stepSucceeded && $0.data["action"] == "aws.sns.publish" }.map {
                    ($0.data["inputs"]?["subject"]?.stringValue ?? "") + " " + ($0.data["inputs"]?["message"]?.stringValue ?? "")
                }
            }
            let hit = texts.first { text in contains.map { text.localizedCaseInsensitiveContains($0) } ?? true }
            let sentCount = texts.count
            return Check(
                expectation: name, location: location, met: hit != nil,
                evidence: hit.map { "sent: " + String($0.replacingOccurrences(of: "\n", with: " ").prefix(160)) } ?? "\(sentCount) message(s) delivered via \(via), none matching")
        case .resource(let r):
            let name = "\(r.kind.replacingOccurrences(of: "_", with: " ")) \(r.id): " + r.properties.map { "\($0.name) = \(JSONWriter.string($0.value))" }.joined(separator: ", ")
            do {
                let actual = try await observe(r, cloud: cloud)
                var problems: [String] = []
                var facts: [String] = []
                for (property, expected) in r.properties {
                    let value = actual[property] ?? .null
                    facts.append("\(property) = \(JSONWriter.string(value))")
                    let byId = property == "security_groups" && same(actual["security_group_ids"] ?? .null, expected)
                    if !same(value, expected) && !byId { problems.append("\(property) is \(JSONWriter.string(value)), expected \(JSONWriter.string(expected))") }
                }
                return Check(expectation: name, location: location, met: problems.isEmpty, evidence: (problems.isEmpty ? facts : problems).joined(separator: "; "))
            } catch {
                return Check(expectation: name, location: location, met: false, evidence: "cannot read it: \(error)")
            }
        }
    }

    static func same(_ actual: JSONValue, _ expected: JSONValue) -> Bool {
        if case .array(let a) = actual, case .array(let e) = expected {
            return Set(a.compactMap(\.stringValue)) == Set(e.compactMap(\.stringValue))
        }
        return actual == expected
    }

    static func simulatedMessages(_ cloud: SimulatedCloud) -> [String] {
        var out: [String] = []
        guard case .object(let snapshot) = cloud.snapshot() else { return out }
        // Every topic of every account and region.
        func walk(_ v: JSONValue) {
            switch v {
            case .object(let o):
                if let messages = o["messages"]?.arrayValue, o["arn"] != nil {
                    out += messages.compactMap { ($0["subject"]?.stringValue ?? "") + " " + ($0["message"]?.stringValue ?? "") }
                }
                for (_, child) in o { walk(child) }
            case .array(let a): a.forEach(walk)
            default: break
            }
        }
        walk(.object(snapshot))
        return out
    }

    /// The resource's observable properties, read through the cloud's API (so the same
    /// check works on the simulated cloud and on a real endpoint).
    static func observe(_ r: Scenario.ResourceExpectation, cloud: any Cloud) async throws(ActionError) -> JSONObject {
        let scope = CloudScope(account: r.account, region: r.region)
        switch r.kind {
        case "instance":
            let ec2 = try await cloud.ec2(scope)
            let instance = try await ec2.describeInstance(r.id)
            let groupIds = instance.networkInterfaces.isEmpty ? instance.securityGroups.map(\.id) : instance.networkInterfaces.flatMap { $0.groups.map(\.id) }
            let described = try await ec2.describeSecurityGroups(ids: Array(Set(groupIds)).sorted())
            let names = Set(described.map(\.name))
            let ids = Set(described.map(\.id))
            return [
                "security_groups": .array(names.sorted().map(JSONValue.string)), "security_group_ids": .array(ids.sorted().map(JSONValue.string)),
                "termination_protection": .bool(try await ec2.terminationProtection(r.id)), "state": .string(instance.state),
            ]
        case "access_key":
            let parts = r.id.split(separator: "/", maxSplits: 1).map(String.init)
            let iam = try await cloud.iam(scope)
            let keys = try await iam.listAccessKeys(userName: parts.first ?? "")
            guard let key = keys.first(where: { $0.id == parts.last }) else { throw .permanent("NotFound", "user \(parts.first ?? "") has no access key \(parts.last ?? "")") }
            return ["status": .string(key.status)]
        case "trail":
            let ct = try await cloud.cloudTrail(scope)
            return ["logging": .bool(try await ct.isLogging(trail: r.id))]
        case "security_group":
            let ec2 = try await cloud.ec2(scope)
            guard let group = try await ec2.describeSecurityGroups(ids: [r.id]).first else { throw .permanent("NotFound", "no security group \(r.id)") }
            let open = group.ingress.contains { $0.ipv4Ranges.contains("0.0.0.0/0") || $0.ipv6Ranges.contains("::/0") }
            return ["open_to_world": .bool(open)]
        default:
            let s3 = try await cloud.s3(scope)
            let pab = try await s3.publicAccessBlock(bucket: r.id)
            let all = pab.map { $0.blockPublicAcls && $0.ignorePublicAcls && $0.blockPublicPolicy && $0.restrictPublicBuckets } ?? false
            return ["public_access_blocked": .bool(all)]
        }
    }
}
