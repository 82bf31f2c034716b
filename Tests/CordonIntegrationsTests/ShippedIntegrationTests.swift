import CordonCore
import CordonTestSupport
import Foundation
import Testing

@testable import CordonIntegrations

/// The shipped definitions against local receivers that check each service's documented
/// request shape.
@Suite(.serialized) struct ShippedIntegrationTests {
    let server: PythonServer
    let actions: [String: any Action]

    init() async throws {
        server = try await Receivers.fresh()
        actions = try shippedIntegrations(receiver: server.port)
    }

    func secrets(_ extra: [String: String] = [:]) -> SecretStore {
        var env = [
            "SLACK_WEBHOOK_URL": "http://127.0.0.1:\(server.port)/slack/T000/B000/XXXXsecretpathXXXX",
            "TEAMS_WEBHOOK_URL": "http://127.0.0.1:\(server.port)/teams/workflows/abcdef/triggers/manual/paths/invoke",
            "PAGERDUTY_ROUTING_KEY": Receivers.pagerDutyKey, "OPSGENIE_API_KEY": Receivers.opsgenieKey,
            "WEBHOOK_URL": "http://127.0.0.1:\(server.port)/webhook/incoming", "WEBHOOK_SIGNING_SECRET": Receivers.webhookSecret,
        ]
        for (k, v) in extra { env[k] = v }
        return SecretStore(environment: env)
    }

    func run(_ name: String, _ inputs: JSONObject, key: String = "key-\(UUID().uuidString)", evidence: MemoryEvidence = MemoryEvidence()) async throws -> ActionOutcome {
        let action = try #require(actions[name], "no action \(name)")
        switch await outcome(action, actionRequest(name, inputs, secrets: secrets(), evidence: evidence, key: key)) {
        case .success(let o): return o
        case .failure(let e): throw TestFailure("\(name) failed: \(e)")
        }
    }

    func requests() async throws -> [JSONValue] { try await Receivers.log(server)["requests"]?.arrayValue ?? [] }

    @Test func everyShippedActionIsImplemented() throws {
        let loaded = ConfigLoader(actions: .builtIn).load([packageRoot.appendingPathComponent("Integrations").path])
        #expect(loaded.isValid)
        let implemented = IntegrationActions.all(loaded.integrations)
        for integration in loaded.integrations {
            for action in integration.actions { #expect(implemented["\(integration.name).\(action.name)"] != nil) }
        }
        #expect(implemented.count == loaded.integrations.map(\.actions.count).reduce(0, +))
    }

    @Test func slackBlockKitMessages() async throws {
        let evidence = MemoryEvidence()
        let o = try await run(
            "slack.post_message",
            ["text": "Isolated `i-0abc`", "resource": "i-0abc", "actions_taken": "• Evidence: succeeded\n• Isolated"], evidence: evidence)
        #expect(o.outputs["status"] == 200)
        #expect(o.outputs["body"] == "ok")
        #expect(o.target == "127.0.0.1")
        _ = try await run(
            "slack.request_approval",
            ["text": "Prod instance", "resource": "i-0abc", "actions_taken": "• Evidence: succeeded", "awaiting_approval": "Approve with `cordon approve inc-0123456789ab isolate --by NAME`"])
        let seen = try await requests().filter { $0["path"]?.stringValue?.hasPrefix("/slack/") == true }
        #expect(seen.count == 2)
        for r in seen { #expect(r["verdict"] == "ok", "\(r)") }
        let text = seen.compactMap { $0["body"]?.stringValue }.joined()
        for fact in ["Backdoor:EC2/C&CActivity.B!DNS on i-0abc", "*Severity*\\n8", "*Resource*\\ni-0abc", "guardduty-ec2-quarantine", "cordon rollback inc-0123456789ab", "Awaiting approval", "What Cordon did"] {
            #expect(text.contains(fact), "missing \(fact)")
        }
        // The evidence holds the exchange, with the webhook URL (a secret) redacted.
        let stored = try #require(evidence.all.first)
        let exchange = try JSONParser.parse(stored)
        #expect(exchange["request"]?["url"] == "«secret:SLACK_WEBHOOK_URL»")
        #expect(exchange["response"]?["status"] == 200)
        #expect(!String(decoding: stored, as: UTF8.self).contains("XXXXsecretpathXXXX"))
    }

    @Test func teamsAdaptiveCards() async throws {
        let o = try await run("teams.post_message", ["text": "Isolated i-0abc", "resource": "i-0abc", "actions_taken": "Isolated"])
        #expect(o.outputs["status"] == 202)
        _ = try await run("teams.request_approval", ["text": "Prod", "resource": "i-0abc", "actions_taken": "Evidence", "awaiting_approval": "Approve?"])
        let seen = try await requests().filter { $0["path"]?.stringValue?.hasPrefix("/teams/") == true }
        #expect(seen.count == 2)
        for r in seen { #expect(r["verdict"] == "ok", "\(r)") }
        let card = try JSONParser.parse(try #require(seen.first?["body"]?.stringValue))
        #expect(card["attachments"]?[0]?["content"]?["type"] == "AdaptiveCard")
        #expect(card["attachments"]?[0]?["content"]?["body"]?[2]?["facts"]?[1]?["value"] == "i-0abc")
    }

    @Test func pagerDutyTriggerDeduplicatesOnTheIncidentAndResolves() async throws {
        let inputs: JSONObject = ["summary": "Root console sign-in to 111122223333", "severity": "critical", "source": "111122223333", "details": ["ip": "198.51.100.7"]]
        // Two triggers from different steps (different idempotency keys) and a retry: one alert.
        _ = try await run("pagerduty.trigger", inputs, key: "step-a")
        _ = try await run("pagerduty.trigger", inputs, key: "step-a")
        let o = try await run("pagerduty.trigger", inputs, key: "step-b")
        #expect(o.outputs["status"] == 202)
        #expect(o.outputs["body"]?["dedup_key"] == "inc-0123456789ab")
        var log = try await Receivers.log(server)
        #expect(log["pagerduty"]?["inc-0123456789ab"]?["count"] == 1)
        #expect(log["pagerduty"]?["inc-0123456789ab"]?["status"] == "triggered")
        _ = try await run("pagerduty.resolve", [:])
        log = try await Receivers.log(server)
        #expect(log["pagerduty"]?["inc-0123456789ab"]?["status"] == "resolved")
        for r in (log["requests"]?.arrayValue ?? []) where r["path"]?.stringValue?.hasPrefix("/pagerduty") == true {
            #expect(r["verdict"] == "ok", "\(r)")
        }
    }

    @Test func opsgenieCreatesAndClosesByAlias() async throws {
        let o = try await run(
            "opsgenie.create_alert",
            ["message": "Backdoor on i-0abc", "description": "Cordon isolated i-0abc", "priority": "P1", "details": ["finding": "f-1"]])
        #expect(o.outputs["status"] == 202)
        _ = try await run("opsgenie.close", [:])
        let log = try await Receivers.log(server)
        #expect(log["opsgenie"]?["inc-0123456789ab"]?["status"] == "closed")
        let seen = (log["requests"]?.arrayValue ?? []).filter { $0["path"]?.stringValue?.hasPrefix("/opsgenie") == true }
        #expect(seen.count == 2)
        for r in seen { #expect(r["verdict"] == "ok", "\(r)") }
        #expect(seen.last?["query"] == "identifierType=alias")
    }

    @Test func webhookIsSignedAndCarriesTheIdempotencyKey() async throws {
        let evidence = MemoryEvidence()
        let first = try await run("webhook.send", ["text": "Isolated i-0abc", "event": "incident.contained"], key: "idem-1", evidence: evidence)
        #expect(first.outputs["body"]?["duplicate"] == false)
        // A retry of the same step carries the same key: the receiver recognises it.
        let again = try await run("webhook.send", ["text": "Isolated i-0abc", "event": "incident.contained"], key: "idem-1")
        #expect(again.outputs["body"]?["duplicate"] == true)
        let seen = try await requests().filter { $0["path"] == "/webhook/incoming" }
        #expect(seen.count == 2)
        let r = try #require(seen.first)
        #expect(r["headers"]?["Idempotency-Key"] == "idem-1")
        let body = Array(try #require(r["body"]?.stringValue).utf8)
        let signature = try #require(r["headers"]?["Cordon-Signature"]?.stringValue)
        #expect(WebhookSignature.verify(header: signature, body: body, secret: Receivers.webhookSecret, now: Int(Date().timeIntervalSince1970)))
        #expect(!WebhookSignature.verify(header: signature, body: body + [0x20], secret: Receivers.webhookSecret, now: Int(Date().timeIntervalSince1970)))
        let payload = try JSONParser.parse(body)
        #expect(payload["incident"]?["rollback"] == "cordon rollback inc-0123456789ab")
        #expect(payload["incident"]?["steps"]?.arrayValue?.count == 2)
        // Evidence records the signature header's name, never the signing key.
        let stored = String(decoding: try #require(evidence.all.first), as: UTF8.self)
        #expect(stored.contains("Cordon-Signature"))
        #expect(!stored.contains(Receivers.webhookSecret))
    }

    @Test func aWrongCredentialIsAPermanentError() async throws {
        let action = try #require(actions["opsgenie.create_alert"])
        let r = await outcome(action, actionRequest("opsgenie.create_alert", ["message": "m", "description": "d"], secrets: secrets(["OPSGENIE_API_KEY": "wrong-key-123"])))
        guard case .failure(let e) = r else { Issue.record("expected a failure"); return }
        #expect(e.code == "HTTP401")
        #expect(!e.retryable)
        #expect(e.message.contains("answered HTTP 401 Unauthorized"))
        #expect(!e.message.contains("wrong-key-123"))
    }
}
