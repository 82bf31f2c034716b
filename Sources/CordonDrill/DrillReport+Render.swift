import CordonCore
import Foundation

extension DrillReport {
    public enum Format: String, Sendable, CaseIterable { case text, md, html, json }

    public func render(_ format: Format) -> String {
        switch format {
        case .text: return text
        case .md: return markdown
        case .html: return html
        case .json: return JSONWriter.pretty(json)
        }
    }

    var verdict: String {
        let met = checks.filter(\.met).count
        return passed ? "PASSED: \(met)/\(checks.count) expectations met" : "FAILED: \(checks.count - met) of \(checks.count) expectations missed"
    }

    public var gaps: [Note] { notes.filter { $0.kind == "gap" } }
    public var infos: [Note] { notes.filter { $0.kind == "info" } }

    public var json: JSONValue {
        [
            "scenario": .string(scenario), "description": .string(description), "seed": .number(JSONNumber(seed)), "cloud": .string(cloud), "file": .string(file),
            "passed": .bool(passed), "virtual_span": .string(virtualSpan),
            "expectations": .array(checks.map { ["expectation": .string($0.expectation), "at": .string($0.location), "met": .bool($0.met), "evidence": .string($0.evidence)] }),
            "incidents": .array(incidents.map { i in
                [
                    "id": .string(i.id), "playbook": .string(i.playbook), "key": .string(i.key), "title": .string(i.title), "status": .string(i.status),
                    "time_to_detect": i.timeToDetect.map(JSONValue.string) ?? .null, "time_to_contain": i.timeToContain.map(JSONValue.string) ?? .null,
                    "time_to_close": i.timeToClose.map(JSONValue.string) ?? .null,
                    "steps": .array(i.steps.map { s in
                        ["id": .string(s.id), "action": .string(s.action), "status": .string(s.status), "attempts": .number(JSONNumber(s.attempts)), "error": s.error.map(JSONValue.string) ?? .null]
                    }),
                ]
            }),
            "gaps": .array(gaps.map { ["at": .string($0.at), "text": .string($0.text)] }),
            "notes": .array(infos.map { ["at": .string($0.at), "text": .string($0.text)] }),
            "notifications": .array(notifications.map { ["at": .string($0.at), "channel": .string($0.channel), "delivered": .bool($0.delivered), "text": .string($0.text)] }),
            "timeline": .array(timeline.map { l in
                ["at": .string(l.at), "incident": l.incident.map(JSONValue.string) ?? .null, "actor": .string(l.actor), "what": .string(l.what), "outcome": .string(l.outcome)]
            }),
        ]
    }

    public var text: String {
        var out: [String] = []
        out.append("Drill \(scenario) — \(description)")
        out.append("seed \(seed), \(virtualSpan) of virtual time, \(cloud) cloud, journal in \(dataDir)")
        out.append("")
        out.append(contentsOf: narrative.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 })
        out.append("")
        out.append("Timeline")
        for l in timeline {
            out.append("  \(l.at)  \(l.incident.map { "[\($0)] " } ?? "")\(l.what)\(l.outcome.isEmpty ? "" : " — \(l.outcome)")")
        }
        out.append("")
        out.append("Incidents")
        if incidents.isEmpty { out.append("  none") }
        for i in incidents {
            out.append("  \(i.id)  \(i.status)  \(i.playbook)  \(i.title)")
            out.append("      time to detect \(i.timeToDetect ?? "-"), time to contain \(i.timeToContain ?? "not contained"), time to close \(i.timeToClose ?? "not closed")")
            for s in i.steps {
                out.append("      \(s.status.padding(toLength: 17, withPad: " ", startingAt: 0)) \(s.id) (\(s.action))\(s.attempts > 1 ? ", \(s.attempts) attempts" : "")\(s.error.map { ": \($0)" } ?? "")")
            }
        }
        out.append("")
        out.append("Notifications (simulated, nothing left this machine)")
        if notifications.isEmpty { out.append("  none") }
        for n in notifications { out.append("  \(n.at)  \(n.channel)\(n.delivered ? "" : " (NOT delivered)"): \(n.text.replacingOccurrences(of: "\n", with: " ").prefix(110))") }
        out.append("")
        out.append("Expectations")
        for c in checks { out.append("  [\(c.met ? "met" : "MISSED")] \(c.expectation)\n      \(c.evidence)  (\(c.location))") }
        if checks.isEmpty { out.append("  none") }
        out.append("")
        out.append("Gaps found")
        if gaps.isEmpty { out.append("  none") }
        for g in gaps { out.append("  - \(g.at == "end" ? "" : "\(g.at) ")\(g.text)") }
        if !infos.isEmpty {
            out.append("")
            out.append("Notes")
            for n in infos { out.append("  - \(n.at == "end" ? "" : "\(n.at) ")\(n.text)") }
        }
        if !lessons.isEmpty {
            out.append("")
            out.append("Lessons this drill is meant to surface")
            for l in lessons { out.append("  - \(l)") }
        }
        out.append("")
        out.append(verdict)
        return out.joined(separator: "\n")
    }

    static func mdEscape(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") }

    public var markdown: String {
        var out: [String] = []
        out.append("# Drill \(scenario)")
        out.append("")
        out.append("\(description) — seed \(seed), \(virtualSpan) of virtual time, \(cloud) cloud. **\(verdict)**")
        out.append("")
        out.append(narrative.trimmingCharacters(in: .whitespacesAndNewlines))
        out.append("")
        out.append("## Expectations")
        out.append("")
        out.append("| | expectation | evidence |")
        out.append("|---|---|---|")
        for c in checks { out.append("| \(c.met ? "✅ met" : "❌ missed") | \(Self.mdEscape(c.expectation)) | \(Self.mdEscape(c.evidence)) |") }
        out.append("")
        out.append("## Incidents")
        out.append("")
        for i in incidents {
            out.append("### \(i.id) — \(Self.mdEscape(i.title))")
            out.append("")
            out.append("Playbook `\(i.playbook)`, status **\(i.status)**, time to detect \(i.timeToDetect ?? "-"), time to contain \(i.timeToContain ?? "not contained"), time to close \(i.timeToClose ?? "not closed").")
            out.append("")
            out.append("| step | action | status | attempts | error |")
            out.append("|---|---|---|---|---|")
            for s in i.steps { out.append("| \(s.id) | `\(s.action)` | \(s.status) | \(s.attempts) | \(Self.mdEscape(s.error ?? "")) |") }
            out.append("")
        }
        out.append("## Gaps found")
        out.append("")
        if gaps.isEmpty { out.append("None.") }
        for g in gaps { out.append("- \(g.at == "end" ? "" : "`\(g.at)` ")\(Self.mdEscape(g.text))") }
        for n in infos { out.append("- (note) \(n.at == "end" ? "" : "`\(n.at)` ")\(Self.mdEscape(n.text))") }
        out.append("")
        out.append("## Timeline")
        out.append("")
        out.append("| time | incident | what | outcome |")
        out.append("|---|---|---|---|")
        for l in timeline { out.append("| \(l.at) | \(l.incident ?? "") | \(Self.mdEscape(l.what)) | \(Self.mdEscape(l.outcome)) |") }
        if !lessons.isEmpty {
            out.append("")
            out.append("## Lessons")
            out.append("")
            for l in lessons { out.append("- \(l)") }
        }
        return out.joined(separator: "\n") + "\n"
    }

    static func h(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }

    public var html: String {
        var out: [String] = []
        out.append("<!doctype html><html><head><meta charset=\"utf-8\"><title>Drill \(Self.h(scenario))</title>")
        out.append("<style>body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}.met{color:#176917}.missed{color:#b00020;font-weight:bold}</style></head><body>")
        out.append("<h1>Drill \(Self.h(scenario))</h1><p>\(Self.h(description)) — seed \(seed), \(Self.h(virtualSpan)) of virtual time, \(Self.h(cloud)) cloud.</p>")
        out.append("<p class=\"\(passed ? "met" : "missed")\">\(Self.h(verdict))</p>")
        out.append("<p>\(Self.h(narrative).replacingOccurrences(of: "\n", with: "<br>"))</p>")
        out.append("<h2>Expectations</h2><table><tr><th></th><th>expectation</th><th>evidence</th></tr>")
        for c in checks { out.append("<tr><td class=\"\(c.met ? "met" : "missed")\">\(c.met ? "met" : "missed")</td><td>\(Self.h(c.expectation))</td><td>\(Self.h(c.evidence))</td></tr>") }
        out.append("</table><h2>Incidents</h2>")
        for i in incidents {
            out.append("<h3>\(Self.h(i.id)) — \(Self.h(i.title))</h3><p>Playbook <code>\(Self.h(i.playbook))</code>, status <b>\(Self.h(i.status))</b>, time to detect \(Self.h(i.timeToDetect ?? "-")), time to contain \(Self.h(i.timeToContain ?? "not contained")), time to close \(Self.h(i.timeToClose ?? "not closed")).</p>")
            out.append("<table><tr><th>step</th><th>action</th><th>status</th><th>attempts</th><th>error</th></tr>")
            for s in i.steps { out.append("<tr><td>\(Self.h(s.id))</td><td><code>\(Self.h(s.action))</code></td><td>\(Self.h(s.status))</td><td>\(s.attempts)</td><td>\(Self.h(s.error ?? ""))</td></tr>") }
            out.append("</table>")
        }
        out.append("<h2>Gaps found</h2><ul>")
        if gaps.isEmpty { out.append("<li>None.</li>") }
        for g in gaps { out.append("<li>\(g.at == "end" ? "" : "<code>\(Self.h(g.at))</code> ")\(Self.h(g.text))</li>") }
        for n in infos { out.append("<li>(note) \(n.at == "end" ? "" : "<code>\(Self.h(n.at))</code> ")\(Self.h(n.text))</li>") }
        out.append("</ul><h2>Timeline</h2><table><tr><th>time</th><th>incident</th><th>what</th><th>outcome</th></tr>")
        for l in timeline { out.append("<tr><td>\(Self.h(l.at))</td><td>\(Self.h(l.incident ?? ""))</td><td>\(Self.h(l.what))</td><td>\(Self.h(l.outcome))</td></tr>") }
        out.append("</table>")
        if !lessons.isEmpty {
            out.append("<h2>Lessons</h2><ul>")
            for l in lessons { out.append("<li>\(Self.h(l))</li>") }
            out.append("</ul>")
        }
        out.append("</body></html>")
        return out.joined(separator: "\n") + "\n"
    }
}
