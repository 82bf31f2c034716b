import Testing

@testable import CordonCore

/// What the secret store redacts: every spelling of a value, the parts of a URL that
/// carry its credential (and not the words and hosts around them), and what template
/// filters derive from a secret, wherever it then goes.
@Suite struct SecretRedactionTests {
    @Test func theCredentialPartsOfAURLAreTokensNotWordsOrDates() {
        let slack = SecretStore.credentialParts(of: "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/AbCdEf123456GhIjKl789012")
        #expect(slack == ["T0123ABCD", "B0456EFGH", "AbCdEf123456GhIjKl789012"])
        let teams = SecretStore.credentialParts(
            of: "https://acme.webhook.office.com/webhookb2/0f8fad5b-d9cb-469f-a165-70867728950e@72f988bf-86f1-41af-91ab-2d7cd011db47/IncomingWebhook/3c8b21e9a4f04bd6a2b1f1e2c3d4e5f6/1b2c3d4e-0000-4000-8000-123456789abc")
        #expect(!teams.contains("webhookb2") && !teams.contains("IncomingWebhook"))
        #expect(teams.contains("0f8fad5b-d9cb-469f-a165-70867728950e") && teams.contains("3c8b21e9a4f04bd6a2b1f1e2c3d4e5f6"))
        let query = SecretStore.credentialParts(of: "https://example.com/api/2024-01-01/hook?token=sEcReTqUeRyVaLuE77&format=json&user=ops")
        #expect(query == ["sEcReTqUeRyVaLuE77"], "a date, format=json and user=ops are not credentials")
        #expect(SecretStore.credentialParts(of: "https://ops:hunter2!@example.com/x") == ["hunter2!"], "the password, whatever it looks like")
        #expect(SecretStore.credentialParts(of: "not a url T0123ABCD").isEmpty)
        #expect(SecretStore.looksLikeToken("123456789012345678"), "a long numeric id (Discord)")
        for word in ["services", "webhooks", "IncomingWebhook", "2024-01-01", "v2", "hooks"] { #expect(!SecretStore.looksLikeToken(word), "\(word)") }
    }

    @Test func anEchoedPartOfAURLIsRedactedAndTheTextAroundItIsKept() {
        let store = SecretStore(environment: ["HOOK": "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/AbCdEf123456GhIjKl789012"])
        _ = store.value("HOOK")
        #expect(store.redact("invalid_token for /services/T0123ABCD/B0456EFGH/AbCdEf123456GhIjKl789012 at hooks.slack.com")
            == "invalid_token for /services/«secret:HOOK»/«secret:HOOK»/«secret:HOOK» at hooks.slack.com")
        #expect(store.redact("team T0123ABCD unknown") == "team «secret:HOOK» unknown")
        #expect(store.redact("the services are up") == "the services are up")
        #expect(store.redact(#"{"url":"https:\/\/hooks.slack.com\/services\/T0123ABCD"}"#).contains("«secret:HOOK»"))
        #expect(store.redact("https%3A%2F%2Fhooks.slack.com%2Fservices%2FT0123ABCD%2FB0456EFGH%2FAbCdEf123456GhIjKl789012") == "«secret:HOOK»")
    }

    @Test func whatFiltersDeriveFromASecretIsRedactedToo() throws {
        let store = SecretStore(environment: ["TOKEN": "tok_live_aBcD1234", "QUOTED": #"pa"ss\wd-1"#])
        let context = TemplateContext(root: ["inputs": ["text": "hello tok_live_aBcD1234 there", "list": ["tok_live_aBcD1234"]]], secrets: store)
        func render(_ text: String) throws -> Rendered { try Template(text).render(context) }
        let upper = try render("{{ secret.TOKEN | upper }}")
        #expect(upper.value == "TOK_LIVE_ABCD1234")
        #expect(upper.secretsUsed == ["TOKEN"])
        #expect(store.redact("sent TOK_LIVE_ABCD1234 and tok_live_abcd1234?") == "sent «secret:TOKEN» and tok_live_abcd1234?", "lower not derived yet")
        _ = try render("{{ secret.TOKEN | lower }}")
        #expect(store.redact("tok_live_abcd1234") == "«secret:TOKEN»")
        // A value that holds a secret but does not come from secret.NAME: its taint is found.
        let fromInputs = try render("{{ inputs.text | upper | json }}")
        #expect(fromInputs.secretsUsed == ["TOKEN"])
        #expect(store.redact(JSONWriter.string(fromInputs.value)) == #""\"HELLO «secret:TOKEN» THERE\"""#)
        let json = try render("{{ secret.QUOTED | json }}")
        #expect(json.value == .string(#""pa\"ss\\wd-1""#))
        #expect(store.redact(json.value) == .string(#""«secret:QUOTED»""#))
        // Inside a list, a string is written as JSON before the filter applies.
        _ = try render("{{ inputs.list | upper }}")
        #expect(store.redact(#"["TOK_LIVE_ABCD1234"]"#) == #"["«secret:TOKEN»"]"#)
        // Concatenation: each part carries its own taint.
        let concatenated = try render("a {{ secret.TOKEN | upper }} b {{ inputs.text }}")
        #expect(store.redact(concatenated.value) == "a «secret:TOKEN» b hello «secret:TOKEN» there")
    }
}
