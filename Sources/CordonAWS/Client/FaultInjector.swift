import CordonCloud
import CordonCore
import Foundation
import Synchronization

/// Faults in force for the AWS clients of one `AWSCloud` (`AWSCloudOptions.faults`):
/// a matching call fails before it is sent, with the error the simulated cloud gives
/// for the same fault, so that a drill's fault timeline applies on a real endpoint
/// (moto) as it does on the simulated cloud. Faults are matched and used up as there
/// (`Fault.matches`, `times`, `until` on this injector's clock); a `timeout` waits
/// through `sleep` (a drill's virtual clock).
public final class FaultInjector: Sendable {
    private let active = Mutex<[Fault]>([])
    private let now: @Sendable () -> Date
    let sleep: @Sendable (Duration) async -> Void

    public init(now: @escaping @Sendable () -> Date = { Date() }, sleep: @escaping @Sendable (Duration) async -> Void = { try? await Task.sleep(for: $0) }) {
        self.now = now
        self.sleep = sleep
    }

    /// Adds a fault; faults are checked in the order they were added.
    public func inject(_ fault: Fault) { active.withLock { $0.append(fault) } }

    public func clear() { active.withLock { $0.removeAll() } }

    /// The faults still in force (exhausted ones are dropped when the next call is checked).
    public var faults: [Fault] { active.withLock { $0 } }

    /// The fault a call meets, if any, counted against its `times`.
    /// - Parameters:
    ///   - operation: `service:Operation` as the AWS API names it (`ec2:CreateSnapshot`).
    ///   - iamAction: the IAM action that authorizes it.
    ///   - aliases: other names the simulated cloud gives the same call
    ///     (`s3:PutPublicAccessBlock` for `s3:PutBucketPublicAccessBlock`).
    func fire(operation: String, iamAction: String, aliases: [String] = []) -> Fault.Effect? {
        let time = now()
        return active.withLock { faults in
            Fault.fire(&faults, at: time) { f in f.matches(operation: operation, iamAction: iamAction) || aliases.contains { Fault.match(f.operation, $0) } }
        }
    }

    /// The names of an AWS call, as `fire` takes them.
    static func names(_ service: AWSService, _ operation: String) -> (operation: String, iamAction: String, aliases: [String]) {
        let full = "\(service.iamPrefix):\(operation)"
        var aliases: [String] = []
        // S3's REST operations are named after the bucket subresource; the simulated
        // cloud (and the S3 API reference) call them PutPublicAccessBlock…
        if service == .s3, operation.hasSuffix("BucketPublicAccessBlock") {
            aliases.append("s3:" + operation.replacingOccurrences(of: "BucketPublicAccessBlock", with: "PublicAccessBlock"))
        }
        return (full, AWSErrorMapper.iamAction(service: service, operation: operation), aliases)
    }

    /// The error a call meets under `effect`: the simulated cloud's for the same fault.
    static func error(_ effect: Fault.Effect, service: AWSService, operation: String, iamAction: String, region: String) -> ActionError {
        let iam = iamAction.split(separator: ":", maxSplits: 1).last.map(String.init) ?? operation
        return SimOperation(service.iamPrefix, operation, iam: iam).error(for: effect, account: nil, region: region)
    }
}

/// A cloud whose calls can meet injected faults: answers itself with the faults applied.
public protocol FaultInjectableCloud: Cloud {
    func injecting(_ faults: FaultInjector) -> any Cloud
}
