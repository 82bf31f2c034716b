import CordonTestSupport
import Foundation
import Testing

@testable import CordonCore
import CordonIntegrations

@Suite struct ConfigLoaderTests {
    static let slack = """
        name: slack
        secrets: [SLACK_WEBHOOK_URL]
        actions:
          post_message:
            inputs: {text: {required: true}, channel: {}}
            request:
              method: POST
              url: "{{ secret.SLACK_WEBHOOK_URL }}"
              headers: {Content-Type: application/json}
              body: {text: "{{ inputs.text }}", channel: "{{ inputs.channel | default(null) }}"}
            success: [200]
            retry_on: [429, 500, 502, 503, 504]
        """

    static let playbook = """
        name: guardduty-ec2-quarantine
        version: 1
        description: Isolate an EC2 instance on a high-severity GuardDuty finding
        trigger:
          source: [aws.guardduty]
          detail-type: [GuardDuty Finding]
          detail:
            severity: [{numeric: [">=", 7]}]
            resource: {resourceType: [Instance]}
        incident:
          key: "{{ detail.resource.instanceDetails.instanceId }}"
          title: "{{ detail.type }} on {{ detail.resource.instanceDetails.instanceId }}"
          severity: "{{ detail.severity }}"
        vars:
          instance: "{{ detail.resource.instanceDetails.instanceId }}"
        steps:
          - id: evidence
            action: aws.ec2.capture_instance
            with: {instance_id: "{{ vars.instance }}"}
          - id: snapshot
            action: aws.ec2.snapshot_volumes
            with: {instance_id: "{{ vars.instance }}"}
          - id: isolate
            action: aws.ec2.isolate_instance
            with: {instance_id: "{{ vars.instance }}", isolation_group: cordon-quarantine}
            approval:
              when: {detail: {resource: {instanceDetails: {tags: {key: [env], value: [prod]}}}}}
              timeout: 15m
              on_timeout: proceed
            retry: {attempts: 5, backoff: 2s, max_backoff: 60s}
            timeout: 60s
            on_error: abort
          - id: notify
            action: slack.post_message
            when: {steps: {isolate: {status: [succeeded]}}}
            with:
              text: "Isolated {{ vars.instance }}: {{ detail.type }} (severity {{ detail.severity }})"
        """

    @Test func loadsTheDesignExample() throws {
        let dir = try TempDir()
        try dir.write("Integrations/slack.yaml", Self.slack)
        try dir.write("Playbooks/quarantine.yaml", Self.playbook)
        let loaded = ConfigLoader(actions: .builtIn).load([dir.path + "/Playbooks", dir.path + "/Integrations"])
        #expect(loaded.diagnostics.isEmpty, "\(loaded.diagnostics)")
        #expect(loaded.files.count == 2)
        let p = try #require(loaded.playbooks.first)
        #expect(p.name == "guardduty-ec2-quarantine")
        #expect(p.version == 1)
        #expect(p.steps.map(\.id) == ["evidence", "snapshot", "isolate", "notify"])
        let isolate = try #require(p.step("isolate"))
        #expect(isolate.retry == Playbook.Retry(attempts: 5, backoff: .seconds(2), maxBackoff: .seconds(60)))
        #expect(isolate.timeout == .seconds(60))
        #expect(isolate.approval?.timeout == .seconds(900))
        #expect(isolate.approval?.onTimeout == .proceed)
        #expect(isolate.approval?.when != nil)
        #expect(p.step("notify")?.when != nil)
        #expect(p.incident.key?.source == "{{ detail.resource.instanceDetails.instanceId }}")
        #expect(loaded.registry["slack.post_message"]?.inputs.map(\.name) == ["text", "channel"])
        #expect(loaded.integrations.first?.actions.first?.retryOn == [429, 500, 502, 503, 504])
    }

    func diagnostics(_ playbook: String, integrations: [String] = [Self.slack]) throws -> [String] {
        let dir = try TempDir()
        for (i, text) in integrations.enumerated() { try dir.write("Integrations/i\(i).yaml", text) }
        let file = try dir.write("p.yaml", playbook)
        return ConfigLoader(actions: .builtIn).load([file], integrationPaths: [dir.path + "/Integrations"]).diagnostics.map {
            "\($0.location.line):\($0.location.column): \($0.message)"
        }
    }

    /// A quoted multi-line value (a block scalar, a string with a line break or a
    /// control character) stays on the diagnostic's one line, as escapes.
    @Test func everyDiagnosticFitsOnOneLine() throws {
        let text = """
            name: demo
            version: 1
            description: x
            trigger: {source: [aws.guardduty]}
            steps:
              - id: a
                action: |
                  slack.post
                  message
              - id: "b\\tc\\nd"
                action: "core.log\\u0007\\r\\n"
                with: {message: x}
            """
        let found = try diagnostics(text)
        #expect(found.count >= 2, "\(found)")
        for d in found { #expect(!d.contains("\n") && !d.contains("\r") && !d.contains("\u{7}"), "\(d)") }
        #expect(found.contains { $0.contains(#"slack.post\nmessage"#) }, "\(found)")
    }

    @Test func reportsEveryProblemWithLineAndColumn() throws {
        let text = """
            name: demo
            version: 1
            description: x
            trigger: {source: [aws.guardduty], detail: {severity: [{numric: [">", 1]}]}}
            steps:
              - id: a
                action: aws.ec2.isolate_instance
                with: {instance_id: i-1, isolation_grup: q, termination_protection: "yes"}
                retry: {attempts: 0, backoff: 5s, max_backoff: 1s}
              - id: b
                action: slack.post_message
                with: {channel: x}
                approval: {timeout: soon, on_timeout: wait}
              - id: a
                action: core.log
                with: {message: "{{ steps.b.output.ts }} {{ steps.c.status }} {{ incident.nme }}"}
            """
        let d = try diagnostics(text)
        let expected = [
            "4:55: trigger: invalid pattern at \"detail.severity\": unknown operator \"numric\" (did you mean \"numeric\"?)",
            "8:30: step \"a\": aws.ec2.isolate_instance has no input \"isolation_grup\" (did you mean \"isolation_group\"?)",
            "8:73: step \"a\": input \"termination_protection\" of aws.ec2.isolate_instance takes boolean, not \"yes\"",
            "9:23: steps[0].retry.attempts: must be at least 1, not 0",
            "9:12: step \"a\": retry.max_backoff (1s) is shorter than retry.backoff (5s)",
            "12:11: step \"b\": slack.post_message needs input \"text\"",
            "13:25: steps[1].approval.timeout: \"soon\" is not a duration",
            "13:43: steps[1].approval.on_timeout: expected one of proceed, skip, abort, found \"wait\"",
            "14:9: duplicate step id \"a\" (first at line 6)",
            "16:21: template \"{{ steps.b.output.ts }} {{ steps.c.status }} {{ incident.nme }}\": unknown step \"c\"",
            "16:21: template \"{{ steps.b.output.ts }} {{ steps.c.status }} {{ incident.nme }}\": unknown incident field \"nme\"",
        ]
        for e in expected {
            #expect(d.contains { $0.hasPrefix(e) }, "missing: \(e)\n got:\n\(d.joined(separator: "\n"))")
        }
    }

    @Test func stepReferencesMustPointBackwards() throws {
        let text = """
            name: demo
            version: 1
            description: x
            trigger: {source: [aws.guardduty]}
            steps:
              - id: first
                action: core.log
                with: {message: "{{ steps.second.output.x }} {{ steps.first.status }}"}
                when: {steps: {second: {status: [succeeded]}}}
              - id: second
                action: core.log
                with: {message: "{{ steps.first.result }}"}
                approval: {when: {steps: {first: {status: [failed]}}}}
            """
        let d = try diagnostics(text)
        #expect(d.contains { $0.contains("step \"second\" runs later") })
        #expect(d.contains { $0.contains("cannot refer to its own result") })
        #expect(d.contains { $0.contains("when tests step \"second\", which runs later") })
        #expect(d.contains { $0.contains("unknown step field \"result\"") })
        #expect(!d.contains { $0.contains("approval.when") })
    }

    @Test func duplicatePlaybookNamesAndUnknownFilesAreErrors() throws {
        let dir = try TempDir()
        try dir.write("a.yaml", Self.playbook.replacingOccurrences(of: "slack.post_message", with: "core.log").replacingOccurrences(of: "text:", with: "message:"))
        try dir.write("b.yml", Self.playbook.replacingOccurrences(of: "slack.post_message", with: "core.log").replacingOccurrences(of: "text:", with: "message:"))
        try dir.write("c.yaml", "hello: world\n")
        try dir.write(".hidden/d.yaml", "broken: [\n")
        try dir.write("notes.txt", "not yaml")
        let loaded = ConfigLoader(actions: .builtIn).load([dir.path, dir.path + "/missing"])
        let messages = loaded.diagnostics.map(\.description)
        #expect(loaded.files.count == 3)
        #expect(messages.contains { $0.contains("b.yml:1:1: playbook name \"guardduty-ec2-quarantine\" is already used by") }, "\(messages)")
        #expect(messages.contains { $0.contains("c.yaml:1:1: neither a playbook") })
        #expect(messages.contains { $0.contains("missing:1:1: no such file or directory") })
        #expect(loaded.playbooks.count == 1)
    }

    @Test func integrationProblems() throws {
        let dir = try TempDir()
        let file = try dir.write(
            "hook.yaml",
            """
            name: hook
            secrets: [URL]
            actions:
              send:
                inputs: {count: {type: integer, default: "three"}, text: {type: strng}}
                request:
                  method: POST
                  url: "{{ secret.URL }}/{{ inputs.missing }}"
                  headers: {Authorization: "Bearer {{ secret.TOKEN }}"}
                  body: {n: "{{ inputs.count }}"}
                  form: {a: b}
                success: [200]
                retry_on: [200, 503]
                idempotency: {header: Idempotency-Key, body_field: id}
                signature: {algorithm: hmac-sha256, secret: KEY, header: Sig}
            """)
        let d = ConfigLoader(actions: .builtIn).load([file]).diagnostics.map(\.description)
        #expect(d.contains { $0.contains("type: expected one of") && $0.contains("(did you mean string?)") })
        // Shape errors stop the deeper checks of that file; fix the type and look again.
        let fixed = try String(contentsOfFile: file, encoding: .utf8).replacingOccurrences(of: "strng", with: "string")
        try fixed.write(toFile: file, atomically: true, encoding: .utf8)
        let d2 = ConfigLoader(actions: .builtIn).load([file]).diagnostics.map(\.description)
        for expected in [
            "default of input \"count\" is not integer", "unknown input \"missing\"", "secret TOKEN is not declared",
            "give either body or form", "status 200 is both a success and retried", "idempotency takes exactly one of",
            "signature secret KEY is not declared",
        ] {
            #expect(d2.contains { $0.contains(expected) }, "missing \(expected): \(d2)")
        }
    }

    @Test func hostileYAMLIsRefusedThroughTheLoader() throws {
        let dir = try TempDir()
        var bomb = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        for i in 1...9 { bomb += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 9).joined(separator: ", ") + "]\n" }
        let bombFile = try dir.write("bomb.yaml", bomb)
        let deepFile = try dir.write("deep.yaml", String(repeating: "[", count: 100_000))
        let bigFile = try dir.write("big.yaml", "a: \"" + String(repeating: "x", count: 3 << 20) + "\"\n")
        let start = ContinuousClock.now
        let loaded = ConfigLoader(actions: .builtIn).load([bombFile, deepFile, bigFile])
        #expect(ContinuousClock.now - start < .seconds(20))  // refused early, not expanded (loose bound: parallel suite)
        let d = loaded.diagnostics.map(\.description)
        #expect(d.contains { $0.contains("bomb.yaml") && $0.contains("alias bomb") })
        #expect(d.contains { $0.contains("deep.yaml") && $0.contains("nesting deeper than 64") })
        #expect(d.contains { $0.contains("big.yaml") && $0.contains("more than the limit") })
    }

    @Test func templatesInPlaybooksRenderAgainstAFinding() throws {
        let dir = try TempDir()
        try dir.write("Integrations/slack.yaml", Self.slack)
        let file = try dir.write("p.yaml", Self.playbook)
        let loaded = ConfigLoader(actions: .builtIn).load([file], integrationPaths: [dir.path + "/Integrations"])
        let p = try #require(loaded.playbooks.first)
        let finding = FindingDecoder().decode(fileAtPath: TestPaths.fixtures.appendingPathComponent("findings/guardduty/ec2-backdoor-cc-activity-dns.json").path)
        let event = try #require(finding.findings.first?.event.objectValue)
        #expect(try EventPattern(json: p.trigger.json) == p.trigger)
        var matcher = PatternSet([p.trigger]).makeMatcher()
        #expect(matcher.matches(event: .object(event)) == [0])
        var root = event
        root["vars"] = ["instance": .string(event["detail"]?["resource"]?["instanceDetails"]?["instanceId"]?.stringValue ?? "")]
        let title = try p.incident.title!.render(TemplateContext(root: root)).value
        #expect(title.stringValue?.hasPrefix("Backdoor:EC2/C&CActivity.B!DNS on i-") == true)
        #expect(try p.incident.severity!.render(TemplateContext(root: root)).value.numberValue != nil)
    }
}
