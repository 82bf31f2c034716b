import CordonCore
import CordonEngine
import Foundation
import XCTest

@testable import CordonAWS
@testable import CordonCloud
@testable import CordonSimulatedCloud

// Shared by the Sim* and Action* tests: an in-memory evidence store, a virtual clock and
// requests shaped as the engine makes them.

/// Evidence kept in memory, keyed by a content hash.
final class MemoryEvidence: EvidenceSink, @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String: (name: String, bytes: [UInt8])] = [:]

    func store(_ bytes: [UInt8], name: String, mediaType: String) throws -> JSONValue {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
        let key = String(hash, radix: 16)
        lock.withLock { items[key] = (name, bytes) }
        return ["name": .string(name), "sha256": .string(key), "size": .number(JSONNumber(bytes.count)), "media_type": .string(mediaType)]
    }

    func load(_ sha256: String) throws -> [UInt8] {
        guard let item = lock.withLock({ items[sha256] }) else { throw CocoaError(.fileNoSuchFile) }
        return item.bytes
    }

    var count: Int { lock.withLock { items.count } }

    /// The stored document with this name, parsed.
    func document(named name: String) -> JSONValue? {
        lock.withLock { items.values.first { $0.name == name } }.flatMap { try? JSONParser.parse($0.bytes) }
    }
}

/// A clock that moves only when told to.
final class VirtualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    init(_ start: String = "2026-03-10T01:30:00Z") {
        current = Timestamp.parse(start) ?? Date(timeIntervalSince1970: 0)
    }

    var now: Date { lock.withLock { current } }
    func advance(_ seconds: TimeInterval) { lock.withLock { current += seconds } }
    var function: @Sendable () -> Date { { [self] in self.now } }
}

enum Fixture {
    static let account = "123456789012"

    static var root: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }
    static var examplePath: String { root.appendingPathComponent("Fixtures/inventory/example.yaml").path }

    /// A small world: one instance with two interfaces, a bucket, a trail, a topic, a user, a role.
    static let inventory = """
        accounts:
          "123456789012":
            users:
              - name: mallory
                access_keys:
                  - {id: AKIAEXAMPLEMALLORY01, status: Active}
                  - {id: AKIAEXAMPLEMALLORY02, status: Inactive}
                login_profile: {created: "2025-01-01T00:00:00Z"}
                inline_policies:
                  Existing: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: "s3:GetObject", Resource: "*"}]}
            roles:
              - name: web-role
              - name: old-role
                inline_policies:
                  AWSRevokeOlderSessions: '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["*"],"Resource":["*"],"Condition":{"DateLessThan":{"aws:TokenIssueTime":"2025-01-01T00:00:00.000Z"}}}]}'
            buckets:
              - name: exports
                public_access_block: {block_public_acls: true, ignore_public_acls: false, block_public_policy: false, restrict_public_buckets: false}
              - name: bare
            regions:
              us-east-1:
                security_groups:
                  - id: sg-0aaa0000000000001
                    name: web
                    vpc: vpc-01
                    ingress:
                      - {id: sgr-0aaa0000000000001, protocol: tcp, port: 22, cidr: 0.0.0.0/0}
                      - {id: sgr-0aaa0000000000002, protocol: tcp, port: 443, cidr: 10.0.0.0/8}
                      - {id: sgr-0aaa0000000000003, protocol: tcp, port: 3389, cidr: "::/0"}
                    egress:
                      - {protocol: all, cidr: 0.0.0.0/0}
                  - id: sg-0aaa0000000000002
                    name: common
                    vpc: vpc-01
                    egress:
                      - {protocol: all, cidr: 0.0.0.0/0}
                instances:
                  - id: i-0aaa0000000000001
                    vpc: vpc-01
                    subnet: subnet-01
                    tags: {Name: web-1, env: prod}
                    network_interfaces:
                      - {id: eni-0aaa0000000000001, groups: [sg-0aaa0000000000001, sg-0aaa0000000000002], private_ip: 10.0.0.5}
                      - {id: eni-0aaa0000000000002, groups: [sg-0aaa0000000000002], private_ip: 10.0.1.5}
                    volumes:
                      - {id: vol-0aaa0000000000001, device: /dev/xvda, size: 8}
                      - {id: vol-0aaa0000000000002, device: /dev/xvdb, size: 100}
                  - id: i-0aaa0000000000002
                    vpc: vpc-01
                    state: terminated
                    network_interfaces: []
                trails:
                  - {name: main, logging: false}
                  - {name: on, logging: true}
                topics:
                  - name: alerts
              eu-west-1:
                instances:
                  - id: i-0bbb0000000000001
                    vpc: vpc-02
                    network_interfaces:
                      - {id: eni-0bbb0000000000001, groups: [sg-0bbb0000000000001]}
                security_groups:
                  - {id: sg-0bbb0000000000001, name: eu, vpc: vpc-02}
        """

    static func cloud(seed: UInt64 = 0, clock: VirtualClock = VirtualClock()) throws -> SimulatedCloud {
        SimulatedCloud(inventory: try Inventory.parse(inventory, file: "test.yaml"), seed: seed, now: clock.function, sleep: { _ in })
    }

    static func actions(_ cloud: SimulatedCloud, clock: VirtualClock = VirtualClock()) -> [String: any Action] {
        AWSActions.all(cloud: cloud, defaultRegion: "us-east-1", now: clock.function)
    }

    static func request(
        _ action: String, _ inputs: JSONObject, incident: String = "inc-0001", region: String? = "us-east-1", account: String? = account,
        openedAt: String = "2026-03-10T01:20:00.000000Z", evidence: MemoryEvidence = MemoryEvidence()
    ) -> ActionRequest {
        ActionRequest(
            action: action, inputs: inputs, idempotencyKey: "key-\(action)-\(incident)",
            incident: [
                "id": .string(incident), "opened_at": .string(openedAt), "status": "running",
                "finding": ["account": account.map(JSONValue.string) ?? .null, "region": region.map(JSONValue.string) ?? .null],
            ],
            evidence: evidence, secrets: SecretStore(environment: [:]))
    }
}

func XCTAssertThrowsActionError<T>(
    _ body: @autoclosure () async throws(ActionError) -> T, code: String, retryable: Bool? = nil, contains text: String? = nil, file: StaticString = #filePath,
    line: UInt = #line
) async {
    do throws(ActionError) {
        _ = try await body()
        XCTFail("expected \(code), got success", file: file, line: line)
    } catch {
        XCTAssertEqual(error.code, code, error.message, file: file, line: line)
        if let retryable { XCTAssertEqual(error.retryable, retryable, "\(error)", file: file, line: line) }
        if let text { XCTAssertTrue(error.message.contains(text), "\(error.message) does not contain \(text)", file: file, line: line) }
    }
}

final class SimSupportTests: XCTestCase {
    func testFixtureInventoryLoads() throws {
        let cloud = try Fixture.cloud()
        XCTAssertEqual(cloud.defaultAccount, "123456789012")
        XCTAssertEqual(cloud.kind, "simulated")
    }
}
