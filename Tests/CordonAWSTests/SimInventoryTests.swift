import CordonCore
import Foundation
import XCTest

@testable import CordonAWS
@testable import CordonCloud
@testable import CordonSimulatedCloud

final class SimInventoryTests: XCTestCase {
    func parseErrors(_ text: String) -> [String] {
        do throws(InventoryError) {
            _ = try Inventory.parse(text, file: "inv.yaml")
            XCTFail("expected errors")
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    func testUnknownKeyWithPositionAndSuggestion() {
        let errors = parseErrors(
            """
            accounts:
              "123456789012":
                regions:
                  us-east-1:
                    instances:
                      - id: i-0abc
                        netwrk_interfaces: []
            """)
        XCTAssertEqual(errors.count, 1)
        XCTAssertTrue(errors[0].hasPrefix("inv.yaml:7:13: "), errors[0])
        XCTAssertTrue(errors[0].contains("unknown key \"netwrk_interfaces\" (did you mean \"network_interfaces\"?)"), errors[0])
    }

    func testWrongTypesAndValues() {
        let errors = parseErrors(
            """
            accounts:
              "123456789012":
                users:
                  - name: bob
                    access_keys:
                      - {id: AKIAEXAMPLEBOB00001, status: Disabled}
                buckets:
                  - name: b
                    public_access_block: {block_public_acls: yes, ignore_public_acls: true, block_public_policy: true, restrict_public_buckets: true}
                regions:
                  us-east-1:
                    security_groups:
                      - id: sg-01
                        name: g
                        ingress:
                          - {protocol: tcp, cidr: 0.0.0.0/0}
                          - {protocol: tcp, port: 22, cidr: 10.0.0.0/33}
                    instances:
                      - id: i-01
                        termination_protection: "no"
                        network_interfaces:
                          - {id: eni-01, groups: [sg-02]}
                        volumes:
                          - {id: vol-01, device: /dev/xvda, size: big}
              "12345":
                roles: []
            """)
        let joined = errors.joined(separator: "\n")
        XCTAssertEqual(errors.count, 8, joined)
        XCTAssertTrue(joined.contains("inv.yaml:6:47: accounts.123456789012.users[0].access_keys[0].status: expected one of Active, Inactive, found a string \"Disabled\""), joined)
        XCTAssertTrue(joined.contains("inv.yaml:9:50: accounts.123456789012.buckets[0].public_access_block.block_public_acls: expected true or false, found a string \"yes\""), joined)
        XCTAssertTrue(joined.contains("inv.yaml:16:17: accounts.123456789012.regions.us-east-1.security_groups[0].ingress[0]: a tcp rule needs port"), joined)
        XCTAssertTrue(joined.contains("inv.yaml:17:49: accounts.123456789012.regions.us-east-1.security_groups[0].ingress[1].cidr: \"10.0.0.0/33\" is not valid"), joined)
        XCTAssertTrue(joined.contains("inv.yaml:20:37: accounts.123456789012.regions.us-east-1.instances[0].termination_protection: expected true or false, found a string \"no\""), joined)
        XCTAssertTrue(joined.contains("inv.yaml:22:39: accounts.123456789012.regions.us-east-1.instances[0].network_interfaces[0].groups: unknown security group sg-02"), joined)
        XCTAssertTrue(joined.contains("inv.yaml:24:55: accounts.123456789012.regions.us-east-1.instances[0].volumes[0].size: expected a whole number, found a string \"big\""), joined)
        XCTAssertTrue(joined.contains("inv.yaml:25:3: accounts: \"12345\" is not an AWS account id"), joined)
        // Sorted by position.
        XCTAssertEqual(errors, errors.sorted { a, b in
            let pa = a.split(separator: ":").dropFirst().prefix(2).compactMap { Int($0) }
            let pb = b.split(separator: ":").dropFirst().prefix(2).compactMap { Int($0) }
            return pa.lexicographicallyPrecedes(pb)
        })
    }

    func testMissingRequiredAndBadYAML() {
        let missing = parseErrors("accounts:\n  \"123456789012\":\n    roles:\n      - inline_policies: {}\n")
        XCTAssertTrue(missing.contains { $0.hasPrefix("inv.yaml:4:9: ") && $0.contains("missing required key \"name\"") }, "\(missing)")
        let syntax = parseErrors("accounts: [\n")
        XCTAssertEqual(syntax.count, 1)
        XCTAssertTrue(syntax[0].hasPrefix("inv.yaml:"), "\(syntax)")
        let top = parseErrors("acounts: {}\n")
        XCTAssertTrue(top.contains { $0.contains("unknown key \"acounts\" (did you mean \"accounts\"?)") }, "\(top)")
        let empty = parseErrors("")
        XCTAssertEqual(empty.count, 1)
    }

    func testExampleInventoryCoversTheFixtures() async throws {
        let inventory = try Inventory.load(path: Fixture.examplePath)
        XCTAssertEqual(inventory.accounts, ["123456789012", "111122223333"])
        XCTAssertEqual(inventory.defaultAccount, "123456789012")
        let cloud = SimulatedCloud(inventory: inventory)
        let us = CloudScope(account: "123456789012", region: "us-east-1")
        let eu = CloudScope(account: "123456789012", region: "eu-west-1")
        // Every instance of the GuardDuty findings, with its interfaces and groups.
        for (id, scope) in [
            ("i-0a1b2c3d4e5f67890", us), ("i-0b2c3d4e5f6a78901", us), ("i-0d4e5f6a7b8c90123", us), ("i-0e5f6a7b8c9d01234", us), ("i-0f6a7b8c9d0e12345", eu),
        ] {
            let instance = try await cloud.ec2(scope).describeInstance(id)
            XCTAssertFalse(instance.networkInterfaces.isEmpty, id)
            XCTAssertFalse(instance.blockDevices.isEmpty, id)
        }
        let web = try await cloud.ec2(us).describeInstance("i-0a1b2c3d4e5f67890")
        XCTAssertEqual(web.networkInterfaces.first?.groups.map(\.id), ["sg-0c1d2e3f4a5b6c7d8", "sg-0e1f2a3b4c5d6e7f8"])
        XCTAssertTrue(web.tags.contains(Tag("env", "prod")))
        // Every rule id the CloudTrail fixtures that fire name.
        let bastion = try await cloud.ec2(us).describeSecurityGroupRules(groupId: "sg-0aa11bb22cc33dd44").map(\.id)
        for rule in ["sgr-0f3e2d1c0b9a87654", "sgr-0c4d5e6f7a8b9c0d1", "sgr-0d5e6f7a8b9c0d1e2", "sgr-0e6f7a8b9c0d1e2f3", "sgr-0f7a8b9c0d1e2f3a4"] {
            XCTAssertTrue(bastion.contains(rule), rule)
        }
        let rdp = try await cloud.ec2(us).describeSecurityGroupRules(groupId: "sg-0d4e5f6a7b8c9d0e1")
        XCTAssertEqual(rdp.first { $0.id == "sgr-0a1b2c3d4e5f60718" }?.cidrIpv6, "::/0")
        // Users, keys, roles, buckets, trails, topics.
        let iam = try await cloud.iam(us)
        for (user, key) in [("svc-reporting", "AKIAQ3EXAMPLESVCRPT1"), ("alice.dev", "AKIAQ3EXAMPLEALICE01"), ("ci-deployer", "AKIAQ3EXAMPLECIDEPL1"), ("ops-admin", "AKIAQ3EXAMPLEOPSADM1")] {
            let keys = try await iam.listAccessKeys(userName: user)
            XCTAssertTrue(keys.contains { $0.id == key && $0.status == "Active" }, user)
        }
        for role in ["web-prod-role", "AWSReservedSSO_AdministratorAccess_3f8e2a1b9c7d6e5f"] {
            _ = try await iam.inlinePolicy(.role(role), name: "AWSRevokeOlderSessions")
        }
        _ = try await cloud.iam(CloudScope(account: "111122223333", region: "us-east-1")).inlinePolicy(.role("eks-deployer"), name: "x")
        for bucket in ["acme-prod-customer-exports", "acme-marketing-site"] {
            let block = try await cloud.s3(us).publicAccessBlock(bucket: bucket)
            XCTAssertEqual(block?.blockPublicAcls, false)
        }
        for trail in ["arn:aws:cloudtrail:us-east-1:123456789012:trail/management-events", "arn:aws:cloudtrail:us-east-1:123456789012:trail/org-audit"] {
            let logging = try await cloud.cloudTrail(us).isLogging(trail: trail)
            XCTAssertFalse(logging)
        }
        _ = try await cloud.sns(us).publish(topicArn: "arn:aws:sns:us-east-1:123456789012:cordon-alerts", message: "test", subject: nil)
    }

    /// The ids the shipped findings and playbook fixtures name are all in the example.
    func testEveryInstanceOfTheFindingFixturesIsInTheExample() throws {
        let text = try String(contentsOfFile: Fixture.examplePath, encoding: .utf8)
        var ids = Set<String>()
        for dir in ["Fixtures/findings", "Fixtures/playbooks"] {
            let url = Fixture.root.appendingPathComponent(dir)
            let files = FileManager.default.enumerator(at: url, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL }.filter { $0.pathExtension == "json" } ?? []
            XCTAssertFalse(files.isEmpty, dir)
            for file in files {
                let body = try String(contentsOf: file, encoding: .utf8)
                for match in body.matches(of: /"instanceId"\s*:\s*"(i-[0-9a-f]+)"/) { ids.insert(String(match.1)) }
            }
        }
        XCTAssertGreaterThanOrEqual(ids.count, 5)
        for id in ids { XCTAssertTrue(text.contains("id: \(id)"), "\(id) is not in example.yaml") }
    }
}
