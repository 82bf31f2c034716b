import Testing

@testable import CordonCore

@Suite struct TemplateTests {
    let context = TemplateContext(
        root: [
            "detail": [
                "severity": .number(JSONNumber(literal: "8.5")!), "type": "Recon:EC2/PortProbe",
                "tags": ["env", "prod"], "count": 3, "nothing": nil,
                "resource": ["instanceDetails": ["instanceId": "i-0abc", "networkInterfaces": [["privateIpAddress": "10.0.0.5"]]]],
            ],
            "vars": ["instance": "i-0abc"],
            "steps": ["isolate": ["status": "succeeded", "output": ["previous_groups": ["sg-1", "sg-2"]]]],
        ],
        secret: { name in name == "TOKEN" ? "s3cr3t" : nil })

    func render(_ text: String) throws -> JSONValue { try Template(text).render(context).value }

    @Test func singlePlaceholderKeepsItsType() throws {
        #expect(try render("{{ detail.severity }}") == .number(JSONNumber(literal: "8.5")!))
        #expect(try render("{{detail.tags}}") == ["env", "prod"])
        #expect(try render("  {{ detail.count }}") == "  3")
        #expect(try render("{{ detail.nothing }}") == .null)
    }

    @Test func interpolatesIntoText() throws {
        #expect(try render("{{ detail.type }} on {{ vars.instance }} ({{ detail.severity }})") == "Recon:EC2/PortProbe on i-0abc (8.5)")
        #expect(try render("ip {{ detail.resource.instanceDetails.networkInterfaces[0].privateIpAddress }}") == "ip 10.0.0.5")
        #expect(try render("{{ steps.isolate.output.previous_groups | join(\" \") }}") == "sg-1 sg-2")
        #expect(try render("{{ steps.isolate.output.previous_groups | join }}") == "sg-1, sg-2")
        #expect(try render("{{ detail.type | upper }}") == "RECON:EC2/PORTPROBE")
        #expect(try render("{{ vars.instance | upper | lower }}") == "i-0abc")
        #expect(try render("{{ detail.tags | json }}") == #"["env","prod"]"#)
        #expect(try render("{{ detail[\"type\"] }}") == "Recon:EC2/PortProbe")
    }

    @Test func defaultsApplyToMissingAndNull() throws {
        #expect(try render("{{ detail.absent | default(\"none\") }}") == "none")
        #expect(try render("{{ detail.nothing | default(5) }}") == 5)
        #expect(try render("{{ detail.absent.deeper[3] | default(false) }}") == false)
        #expect(try render("{{ detail.type | default('x') }}") == "Recon:EC2/PortProbe")
    }

    @Test func missingValuesNameTheTemplateAndPath() {
        #expect {
            _ = try render("host {{ detail.resource.instanceDetails.hostname }}")
        } throws: { error in
            let text = "\(error)"
            return text.contains("template \"host {{ detail.resource.instanceDetails.hostname }}\"")
                && text.contains("detail.resource.instanceDetails has no \"hostname\"")
        }
        #expect {
            _ = try render("{{ detail.tags[5] }}")
        } throws: { error in "\(error)".contains("has 2 element(s), no [5]") }
        #expect {
            _ = try render("{{ secret.MISSING }}")
        } throws: { error in "\(error)".contains("secret MISSING is not set") }
    }

    @Test func secretsAreReportedForRedaction() throws {
        let r = try Template("Bearer {{ secret.TOKEN }}").render(context)
        #expect(r.value == "Bearer s3cr3t")
        #expect(r.secretsUsed == ["TOKEN"])
        let tree = try TemplateTree(["headers": ["Authorization": "Bearer {{ secret.TOKEN }}"], "n": 1])
        #expect(try tree.render(context).secretsUsed == ["TOKEN"])
    }

    @Test(arguments: [
        ("{{ detail.type", "unclosed {{"),
        ("a }} b", "}} without a matching {{"),
        ("{{ }}", "empty placeholder"),
        ("{{ detail.type | shout }}", "unknown filter \"shout\""),
        ("{{ detail.type | uper }}", "did you mean \"upper\"?"),
        ("{{ detail.type | default }}", "default needs a value"),
        ("{{ detail.type | join(3) }}", "join takes a string"),
        ("{{ detail..type }}", "expected a name"),
        ("{{ detail.tags[x] }}", "expected an index"),
        ("{{ detail.type | default(\"x) }}", "unterminated string"),
        ("{{ detail.type + 1 }}", "expected '|'"),
    ])
    func rejectsBadSyntax(text: String, message: String) {
        #expect {
            _ = try Template(text)
        } throws: { error in "\(error)".contains(message) }
    }

    @Test func templatesNeverRunCode() throws {
        // Anything that is not a path and filters is a syntax error, not an evaluation.
        for text in ["{{ system('id') }}", "{{ __import__('os') }}", "{{ detail.type() }}", "{{ `id` }}"] {
            #expect(throws: TemplateError.self) { _ = try Template(text) }
        }
    }

    @Test func durations() {
        #expect(DurationParser.parse("15m") == .seconds(900))
        #expect(DurationParser.parse("1h30m") == .seconds(5400))
        #expect(DurationParser.parse("500ms") == .milliseconds(500))
        #expect(DurationParser.parse("1.5s") == .milliseconds(1500))
        #expect(DurationParser.parse("2d") == .seconds(172_800))
        for bad in ["", "15", "m", "10 minutes", "5x", "-1s", "1000d"] { #expect(DurationParser.parse(bad) == nil, "\(bad)") }
        #expect(DurationParser.format(.seconds(5400)) == "1h30m")
    }
}
