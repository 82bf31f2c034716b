import CordonCore
import CordonEngine
import CordonJournal
import CordonTestSupport
import Foundation
import XCTest

@testable import CordonAWS
@testable import CordonCloud
@testable import CordonSimulatedCloud
import CordonIntegrations

/// Runs the shipped playbooks (`Playbooks/`, `Integrations/`) through the real engine
/// with an `SQLiteJournal` in a temporary directory, against any `Cloud`.
enum PlaybookHarness {
    static var root: URL { Fixture.root }
    static let topicArn = "arn:aws:sns:us-east-1:123456789012:cordon-alerts"

    static func config() throws -> LoadedConfig {
        let loaded = ConfigLoader(actions: .builtIn).load([root.appendingPathComponent("Playbooks").path], integrationPaths: [root.appendingPathComponent("Integrations").path])
        XCTAssertTrue(loaded.isValid, loaded.errors.map(\.description).joined(separator: "\n"))
        return loaded
    }

    /// The shipped playbooks' firing fixtures, in name order: `[(playbook, file)]`.
    static func firingFixtures(_ playbook: String? = nil) throws -> [(String, URL)] {
        let dir = root.appendingPathComponent("Fixtures/playbooks")
        var out: [(String, URL)] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() where playbook == nil || playbook == name {
            for file in try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent(name).path).sorted() where file.hasPrefix("fires-") {
                out.append((name, dir.appendingPathComponent(name).appendingPathComponent(file)))
            }
        }
        return out
    }

    /// Decodes a fixture after replacing inventory ids by the cloud's (`ids`).
    static func findings(_ file: URL, ids: [String: String] = [:]) throws -> [Finding] {
        var text = try String(contentsOf: file, encoding: .utf8)
        for (from, to) in ids.sorted(by: { $0.key.count > $1.key.count }) where from != to {
            text = text.replacingOccurrences(of: from, with: to)
        }
        let result = FindingDecoder().decode(Array(text.utf8), source: file.lastPathComponent)
        XCTAssertTrue(result.issues.isEmpty, "\(file.lastPathComponent): \(result.issues)")
        return result.findings
    }

    /// Integration actions (Slack, PagerDuty…) answer success without calling anything:
    /// these tests are about the cloud.
    struct NoopAction: Action {
        func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome { ActionOutcome(outputs: ["stub": true]) }
    }

    static func actions(_ config: LoadedConfig, cloud: any Cloud, wrap: (String, any Action) -> any Action = { $1 }) -> [String: any Action] {
        var actions = CoreActions.all
        for name in config.registry.names where !name.hasPrefix("aws.") && !name.hasPrefix("core.") { actions[name] = NoopAction() }
        for (name, action) in AWSActions.all(cloud: cloud, defaultRegion: "us-east-1") { actions[name] = wrap(name, action) }
        return actions
    }

    static func secrets() -> SecretStore { SecretStore(environment: ["CORDON_SNS_TOPIC_ARN": topicArn]) }

    static func engine(_ dir: URL, _ config: LoadedConfig, _ actions: [String: any Action]) async throws -> (SQLiteJournal, Engine) {
        let secrets = secrets()
        let journal = try SQLiteJournal(directory: DataDirectory(dir.path), secrets: secrets)
        let engine = Engine(
            config: config, actions: actions, journal: journal, evidence: journal.evidence, secrets: secrets, actor: "cordon/test",
            index: try await IncidentIndex.load(from: journal))
        return (journal, engine)
    }

    static func tempDir(_ name: String) throws -> URL { try TempDir(name).url }

    /// Runs every firing fixture (approving every approval it asks for); returns the
    /// engine's incidents.
    static func runAll(_ cloud: any Cloud, ids: [String: String] = [:], playbook: String? = nil) async throws -> IncidentIndex {
        let config = try config()
        let dir = try tempDir("playbooks")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (journal, engine) = try await engine(dir, config, actions(config, cloud: cloud))
        for (_, file) in try firingFixtures(playbook) {
            _ = try await engine.process(try findings(file, ids: ids))
            for incident in await engine.index.incidents.values {
                if let step = incident.pendingApproval {
                    try await engine.decide(incident: incident.id, step: step, by: "test", approve: true, reason: "test")
                }
            }
        }
        let index = await engine.index
        try await journal.close()
        return index
    }

    // MARK: - Normalised state

    /// The state of every resource of the inventory that the playbooks may touch, read
    /// through the `Cloud` seam and keyed by inventory ids, so that the simulated cloud
    /// and moto (with its own ids, `ids` maps inventory → cloud) compare equal.
    static func state(_ cloud: any Cloud, inventory: JSONValue, account: String = "123456789012", ids: [String: String] = [:]) async throws -> JSONValue {
        func id(_ s: String) -> String { ids[s] ?? s }
        let back = Dictionary(ids.map { ($0.value, $0.key) }, uniquingKeysWith: { a, _ in a })
        guard let acct = inventory["accounts"]?[account] else { throw TestFailure("no account \(account) in the inventory") }
        var out = JSONObject()
        for (region, r) in acct["regions"]?.objectValue ?? [:] {
            let ec2 = try await cloud.ec2(CloudScope(account: account, region: region))
            var regional = JSONObject()
            for (instanceId, _) in r["instances"]?.objectValue ?? [:] {
                let instance = try await ec2.describeInstance(id(instanceId))
                let groupIds = Array(Set(instance.networkInterfaces.flatMap { $0.groups.map(\.id) }))
                let names = Dictionary(try await ec2.describeSecurityGroups(ids: groupIds).map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
                var enis = JSONObject()
                for eni in instance.networkInterfaces {
                    enis[back[eni.id] ?? eni.id] = .array(eni.groups.map { JSONValue.string(names[$0.id] ?? "?") }.sorted { $0.stringValue! < $1.stringValue! })
                }
                var snapshots = JSONObject()
                for device in instance.blockDevices {
                    snapshots[back[device.volumeId] ?? device.volumeId] = .number(JSONNumber(try await ec2.describeSnapshots(tagKey: "cordon:volume", tagValue: device.volumeId).count))
                }
                regional["instance " + instanceId] = [
                    "interfaces": .object(enis), "snapshots_per_volume": .object(snapshots),
                    "termination_protection": .bool(try await ec2.terminationProtection(id(instanceId))),
                    "cordon_tags": .array(instance.tags.map(\.key).filter { $0.hasPrefix("cordon:") }.sorted().map(JSONValue.string)),
                ]
            }
            var vpcs = Set<String>()
            for (groupId, group) in r["securityGroups"]?.objectValue ?? [:] {
                if let vpc = group["vpcId"]?.stringValue { vpcs.insert(vpc) }
                regional["group " + groupId] = .array(try await rules(ec2, id(groupId), back).map(JSONValue.string))
            }
            for vpc in vpcs.sorted() {
                for name in ["cordon-quarantine", "cordon-quarantine-untrack"] {
                    if let g = try await ec2.findSecurityGroup(name: name, vpcId: id(vpc)) {
                        regional["group \(name) in \(vpc)"] = .array(try await rules(ec2, g.id, back).map(JSONValue.string))
                    }
                }
            }
            let trails = try await cloud.cloudTrail(CloudScope(account: account, region: region))
            for (name, _) in r["trails"]?.objectValue ?? [:] {
                regional["trail " + name + " logging"] = .bool(try await trails.isLogging(trail: name))
            }
            if !regional.isEmpty { out[region] = .object(regional) }
        }
        let iam = try await cloud.iam(CloudScope(account: account, region: "us-east-1"))
        let policies = [RevokeRoleSessionsAction.policyName, AttachDenyAllAction.policyName]
        for (name, user) in acct["users"]?.objectValue ?? [:] {
            var keys = JSONObject()
            for key in try await iam.listAccessKeys(userName: name) { keys[back[key.id] ?? key.id] = .string(key.status) }
            var inline = JSONObject()
            for p in policies + (user["inlinePolicies"]?.objectValue?.keys.map { $0 } ?? []) {
                inline[p] = .bool(try await iam.inlinePolicy(.user(name), name: p) != nil)
            }
            out["user " + name] = ["access_keys": .object(keys), "login_profile": .bool(try await iam.loginProfile(userName: name) != nil), "inline_policies": .object(inline)]
        }
        for (name, role) in acct["roles"]?.objectValue ?? [:] {
            var inline = JSONObject()
            for p in policies + (role["inlinePolicies"]?.objectValue?.keys.map { $0 } ?? []) {
                inline[p] = .bool(try await iam.inlinePolicy(.role(name), name: p) != nil)
            }
            out["role " + name] = ["inline_policies": .object(inline)]
        }
        let s3 = try await cloud.s3(CloudScope(account: account, region: "us-east-1"))
        for (name, _) in acct["buckets"]?.objectValue ?? [:] {
            out["bucket " + name] = try await s3.publicAccessBlock(bucket: name).map(JSONBridge.value) ?? .null
        }
        var sorted = JSONObject()
        for (k, v) in out.sorted(by: { $0.key < $1.key }) { sorted[k] = v }
        return .object(sorted)
    }

    /// A group's rules as sorted text, with inventory ids.
    static func rules(_ ec2: any EC2API, _ groupId: String, _ back: [String: String]) async throws -> [String] {
        try await ec2.describeSecurityGroupRules(groupId: groupId).map { r in
            let source = r.cidrIpv4 ?? r.cidrIpv6 ?? r.referencedGroupId.map { back[$0] ?? $0 } ?? r.prefixListId ?? "?"
            let ports = r.ipProtocol == "-1" ? "" : " \(r.fromPort ?? -1)-\(r.toPort ?? -1)"
            return "\(r.isEgress ? "out" : "in") \(r.ipProtocol)\(ports) \(source)"
        }.sorted()
    }
}

/// Seeds moto with the resources of an inventory (through `InventorySeeder`, the
/// seeder `cordon drill --cloud aws` uses) and answers the map from inventory ids to
/// moto's ids.
enum MotoSeeder {
    static func seed(_ inventory: Inventory, port: Int) async throws -> [String: String] {
        let cloud = AWSCloud(options: AWSCloudOptions(environment: Moto.environment(port: port)), http: PlaybookCloudTests.http)
        return try await InventorySeeder(cloud: cloud).seed(inventory).ids
    }
}
