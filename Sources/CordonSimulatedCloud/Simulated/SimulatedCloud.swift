import CordonAWS
import CordonCloud
import CordonCore
import Crypto
import Foundation

/// An in-process model of the EC2, IAM, S3, CloudTrail and SNS state Cordon's actions
/// touch, per account and region (IAM and S3 per account), seeded from an inventory
/// file. It answers with the same error codes and messages as AWS for unknown
/// resources, gives deterministic ids (`sg-00000000000000001`, `snap-…`, from a seeded
/// counter) so that the same run gives the same journal, and takes injected faults
/// (`inject(_:)`) for drills.
///
/// Every call is atomic: it validates, then changes the state under a lock; a call
/// that fails changes nothing.
public final class SimulatedCloud: Cloud, @unchecked Sendable {
    public var kind: String { "simulated" }
    /// The account used when a scope names none (the first in the inventory).
    public let defaultAccount: String

    private let lock = NSLock()
    private var world: SimWorld
    private var counters: [String: UInt64] = [:]
    private let seed: UInt64
    private var activeFaults: [Fault] = []
    private var callLog: [SimulatedCall] = []
    private let now: @Sendable () -> Date
    private let sleep: @Sendable (Duration) async -> Void
    /// Where every change is saved (`persist(to:)`), and the notes saved with it.
    private var persistPath: String?
    private var persistNotes: [String: String] = [:]
    private var persistFailure: String?

    /// - Parameters:
    ///   - inventory: the initial state.
    ///   - seed: the high digits of generated ids, so that two clouds in one drill can
    ///     be told apart; 0 gives `sg-00000000000000001`, `sg-00000000000000002`…
    ///   - now: the clock (a virtual one in drills) for snapshot and message times and
    ///     for `Fault.outage(_:until:)`.
    ///   - sleep: how a `Fault.timeout` waits (a virtual clock's sleep in drills).
    public init(
        inventory: Inventory = Inventory(), seed: UInt64 = 0, now: @escaping @Sendable () -> Date = { Date() },
        sleep: @escaping @Sendable (Duration) async -> Void = { try? await Task.sleep(for: $0) }
    ) {
        self.world = inventory.world
        self.defaultAccount = inventory.defaultAccount
        self.seed = seed
        self.now = now
        self.sleep = sleep
    }

    /// A cloud restored from `savedState()`: the world, the id counters and the default
    /// account as they were, so that a later command (`cordon approve`, `cordon
    /// rollback`) sees what an earlier one did.
    public init(
        restoring saved: SimulatedCloudState, now: @escaping @Sendable () -> Date = { Date() },
        sleep: @escaping @Sendable (Duration) async -> Void = { try? await Task.sleep(for: $0) }
    ) {
        self.world = saved.world
        self.counters = saved.counters
        self.seed = saved.seed
        self.defaultAccount = saved.defaultAccount
        self.now = now
        self.sleep = sleep
    }

    /// The state to save: restore it with `init(restoring:)`.
    public func savedState(notes: [String: String] = [:]) -> SimulatedCloudState {
        lock.withLock { SimulatedCloudState(world: world, counters: counters, seed: seed, defaultAccount: defaultAccount, notes: notes) }
    }

    /// Saves the state to `path` now and after every call that changes it (written to a
    /// temporary file and renamed, so a crash leaves the previous or the new state).
    public func persist(to path: String, notes: [String: String] = [:]) throws {
        let state = savedState(notes: notes)
        try state.write(to: path)
        lock.withLock {
            persistPath = path
            persistNotes = notes
        }
    }

    /// Why the last save failed, if it did (the change itself was made).
    public var persistenceFailure: String? { lock.withLock { persistFailure } }

    /// Called under the lock after a change.
    private func saveLocked() {
        guard let persistPath else { return }
        do {
            try SimulatedCloudState(world: world, counters: counters, seed: seed, defaultAccount: defaultAccount, notes: persistNotes).write(to: persistPath)
            persistFailure = nil
        } catch {
            persistFailure = "cannot save the simulated cloud to \(persistPath): \(error)"
        }
    }

    // MARK: - Cloud

    public func ec2(_ scope: CloudScope) async throws(ActionError) -> any EC2API {
        SimulatedEC2(cloud: self, account: try account(scope), region: scope.region)
    }

    public func iam(_ scope: CloudScope) async throws(ActionError) -> any IAMAPI {
        SimulatedIAM(cloud: self, account: try account(scope), region: scope.region)
    }

    public func s3(_ scope: CloudScope) async throws(ActionError) -> any S3API {
        SimulatedS3(cloud: self, account: try account(scope), region: scope.region)
    }

    public func cloudTrail(_ scope: CloudScope) async throws(ActionError) -> any CloudTrailAPI {
        SimulatedCloudTrail(cloud: self, account: try account(scope), region: scope.region)
    }

    public func sns(_ scope: CloudScope) async throws(ActionError) -> any SNSAPI {
        SimulatedSNS(cloud: self, account: try account(scope), region: scope.region)
    }

    /// The scope's account; one the inventory does not know is refused the way
    /// `sts:AssumeRole` into a foreign account is.
    private func account(_ scope: CloudScope) throws(ActionError) -> String {
        let id = scope.account ?? defaultAccount
        let known = lock.withLock { world.accounts[id] != nil }
        guard known else {
            throw .permanent(
                "AccessDenied",
                "User: arn:aws:sts::\(defaultAccount):assumed-role/cordon-responder/cordon is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::\(id):role/cordon-responder (account \(id) is not in the simulated inventory)"
            )
        }
        return id
    }

    // MARK: - Faults and inspection

    /// Adds a fault; faults are checked in the order they were added.
    public func inject(_ fault: Fault) {
        lock.withLock { activeFaults.append(fault) }
    }

    public func clearFaults() {
        lock.withLock { activeFaults.removeAll() }
    }

    /// The faults still in force (exhausted ones are dropped).
    public var faults: [Fault] { lock.withLock { activeFaults } }

    /// Every call answered so far, in order.
    public var calls: [SimulatedCall] { lock.withLock { callLog } }

    /// How many calls of an operation (`ec2:CreateSnapshot`) were made, failed ones included.
    public func callCount(_ operation: String) -> Int {
        calls.filter { $0.operation.lowercased() == operation.lowercased() }.count
    }

    /// The messages published to a topic, oldest first.
    public func messages(topicArn: String) -> [PublishedMessage] {
        lock.withLock {
            for account in world.accounts.values {
                for region in account.regions.values {
                    if let topic = region.topics.values.first(where: { $0.arn == topicArn }) { return topic.messages }
                }
            }
            return []
        }
    }

    /// The whole state as JSON (sorted keys; regions with nothing in them left out): the
    /// same calls on the same inventory always give the same snapshot.
    public func snapshot() -> JSONValue {
        var copy = lock.withLock { world }
        for (id, account) in copy.accounts {
            copy.accounts[id]?.regions = account.regions.filter { !$0.value.isEmpty }
        }
        return JSONBridge.value(copy)
    }

    // MARK: - Calls

    /// What a call's body may use besides the state: ids and the time.
    struct Context {
        var counters: [String: UInt64]
        let seed: UInt64
        let now: Date

        /// `prefix-` and 17 hex digits, like AWS ids: `sg-00000000000000001`.
        mutating func nextId(_ prefix: String) -> String {
            let n = (counters[prefix] ?? 0) + 1
            counters[prefix] = n
            let hex = String(seed &* 0x1_0000_0000 &+ n, radix: 16)
            return prefix + "-" + String(repeating: "0", count: max(0, 17 - hex.count)) + hex
        }

        /// A UUID-shaped id (SNS message ids).
        mutating func nextUUID() -> String {
            let n = (counters["uuid"] ?? 0) + 1
            counters["uuid"] = n
            let hex = String(n, radix: 16)
            let s = String(seed, radix: 16)
            return String(repeating: "0", count: max(0, 8 - s.count)) + s + "-0000-4000-8000-" + String(repeating: "0", count: max(0, 12 - hex.count)) + hex
        }
    }

    /// Runs one call on an account: faults first, then the body on a copy of the account
    /// that is committed only when the body succeeds.
    func perform<T: Sendable>(
        _ op: SimOperation, account: String, region: String, _ body: (inout SimAccount, inout Context) throws(ActionError) -> T
    ) async throws(ActionError) -> T {
        let fired: Fault.Effect? = lock.withLock {
            Fault.fire(&activeFaults, at: now()) { $0.matches(operation: op.fullName, iamAction: op.iamAction) }
        }
        if let fired {
            let error = op.error(for: fired, account: account, region: region)
            if case .timeout(let d) = fired { await sleep(d) }
            record(op, account, region, error)
            throw error
        }
        let result: Result<T, ActionError> = lock.withLock {
            var state = world.accounts[account] ?? SimAccount()
            var context = Context(counters: counters, seed: seed, now: now())
            do throws(ActionError) {
                let value = try body(&state, &context)
                let changed = world.accounts[account] != state
                world.accounts[account] = state
                counters = context.counters
                if changed { saveLocked() }
                callLog.append(SimulatedCall(operation: op.fullName, iamAction: op.iamAction, account: account, region: region))
                return .success(value)
            } catch {
                callLog.append(SimulatedCall(operation: op.fullName, iamAction: op.iamAction, account: account, region: region, error: error.code))
                return .failure(error)
            }
        }
        return try result.get()
    }

    private func record(_ op: SimOperation, _ account: String, _ region: String, _ error: ActionError) {
        lock.withLock { callLog.append(SimulatedCall(operation: op.fullName, iamAction: op.iamAction, account: account, region: region, error: error.code)) }
    }
}

/// The simulated cloud's state as saved between commands (JSON, sorted keys).
public struct SimulatedCloudState: Codable, Sendable {
    var world: SimWorld
    var counters: [String: UInt64]
    var seed: UInt64
    var defaultAccount: String
    /// Free notes kept with the state (the CLI records which inventory seeded it).
    public var notes: [String: String]

    static let format = "cordon-simulated-cloud/1"

    init(world: SimWorld, counters: [String: UInt64], seed: UInt64, defaultAccount: String, notes: [String: String]) {
        self.world = world
        self.counters = counters
        self.seed = seed
        self.defaultAccount = defaultAccount
        self.notes = notes
    }

    enum CodingKeys: String, CodingKey { case format, world, counters, seed, defaultAccount = "default_account", notes }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let format = try c.decode(String.self, forKey: .format)
        guard format == Self.format else {
            throw DecodingError.dataCorruptedError(forKey: .format, in: c, debugDescription: "format \"\(format)\" is not \(Self.format)")
        }
        world = try c.decode(SimWorld.self, forKey: .world)
        counters = try c.decode([String: UInt64].self, forKey: .counters)
        seed = try c.decode(UInt64.self, forKey: .seed)
        defaultAccount = try c.decode(String.self, forKey: .defaultAccount)
        notes = try c.decodeIfPresent([String: String].self, forKey: .notes) ?? [:]
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.format, forKey: .format)
        try c.encode(world, forKey: .world)
        try c.encode(counters, forKey: .counters)
        try c.encode(seed, forKey: .seed)
        try c.encode(defaultAccount, forKey: .defaultAccount)
        try c.encode(notes, forKey: .notes)
    }

    /// SHA-256 (hex) of an inventory file, kept in `notes` to tell which one seeded a state.
    public static func fingerprint(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).hex }

    /// The accounts it holds.
    public var accounts: [String] { world.accounts.keys.sorted() }

    /// Reads a saved state; the error says what is wrong with the file.
    public static func read(path: String) throws -> SimulatedCloudState {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SimulatedStateError(message: "\(path): cannot read the saved simulated cloud")
        }
        do {
            return try JSONDecoder().decode(SimulatedCloudState.self, from: data)
        } catch {
            throw SimulatedStateError(message: "\(path): not a saved simulated cloud (\(error)); delete it to start again from the inventory")
        }
    }

    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let data = try encoder.encode(self)
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        try data.write(to: tmp)
        guard rename(tmp.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: tmp)
            throw SimulatedStateError(message: "\(path): cannot save the simulated cloud: \(reason)")
        }
    }
}

public struct SimulatedStateError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
