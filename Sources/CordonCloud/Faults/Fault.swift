import CordonCore
import Foundation

/// A failure the simulated cloud injects into matching calls, for drills and tests:
/// throttling, a missing permission, a service outage or a call that never answers.
///
/// `operation` names calls as `service:Operation` — the API name
/// (`ec2:ModifyNetworkInterfaceAttribute`, `s3:PutPublicAccessBlock`) or the IAM action
/// (`s3:PutBucketPublicAccessBlock`, `iam:PutRolePolicy`); a trailing `*` matches a
/// prefix (`ec2:*`, `ec2:Describe*`) and `*` alone matches every call.
public struct Fault: Sendable, Equatable, CustomStringConvertible {
    public enum Effect: Sendable, Equatable {
        /// `RequestLimitExceeded` (EC2), `Throttling`, `SlowDown` (S3), `ThrottlingException`
        /// (CloudTrail): retryable.
        case throttle
        /// `UnauthorizedOperation` (EC2), `AccessDenied`, `AccessDeniedException`
        /// (CloudTrail), naming the IAM action: permanent.
        case accessDenied
        /// `ServiceUnavailable` (HTTP 503): retryable.
        case outage
        /// The call waits this long (through the cloud's sleep function, so on a virtual
        /// clock in drills) and then fails with a retryable `RequestTimeout`.
        case timeout(Duration)
    }

    public var operation: String
    public var effect: Effect
    /// How many matching calls fail; nil: every one (until `until`, if set).
    public var times: Int?
    /// The virtual time from which the fault no longer applies; nil: no end.
    public var until: Date?

    public init(operation: String, effect: Effect, times: Int? = nil, until: Date? = nil) {
        self.operation = operation
        self.effect = effect
        self.times = times
        self.until = until
    }

    /// The next `times` matching calls are throttled.
    public static func throttle(_ operation: String, times: Int) -> Fault { Fault(operation: operation, effect: .throttle, times: times) }
    /// Matching calls are denied (the next `times` of them, or all).
    public static func accessDenied(_ operation: String, times: Int? = nil) -> Fault { Fault(operation: operation, effect: .accessDenied, times: times) }
    /// Matching calls fail with 503 until the virtual time `until`.
    public static func outage(_ operation: String, until: Date) -> Fault { Fault(operation: operation, effect: .outage, until: until) }
    /// The next `calls` matching calls fail with 503.
    public static func outage(_ operation: String, calls: Int) -> Fault { Fault(operation: operation, effect: .outage, times: calls) }
    /// The next `times` matching calls hang for `after` and then time out.
    public static func timeout(_ operation: String, after: Duration = .seconds(30), times: Int = 1) -> Fault {
        Fault(operation: operation, effect: .timeout(after), times: times)
    }

    /// Whether the fault targets a call (by its API name or its IAM action).
    public func matches(operation name: String, iamAction: String) -> Bool {
        Self.match(operation, name) || Self.match(operation, iamAction)
    }

    package static func match(_ pattern: String, _ name: String) -> Bool {
        let p = pattern.lowercased()
        let n = name.lowercased()
        if p.hasSuffix("*") { return n.hasPrefix(p.dropLast()) }
        return p == n
    }

    public var description: String {
        var s: String
        switch effect {
        case .throttle: s = "throttle \(operation)"
        case .accessDenied: s = "deny \(operation)"
        case .outage: s = "outage of \(operation)"
        case .timeout(let d): s = "timeout of \(operation) after \(d)"
        }
        if let times { s += " (\(times) call\(times == 1 ? "" : "s"))" }
        if let until { s += " until \(Timestamp.string(until))" }
        return s
    }
}

/// One call the simulated cloud answered, for tests and drill reports.
public struct SimulatedCall: Sendable, Equatable, CustomStringConvertible {
    /// `service:Operation`, e.g. `ec2:CreateSnapshot`.
    public var operation: String
    /// The IAM action that authorizes it, e.g. `s3:PutBucketPublicAccessBlock` for
    /// `s3:DeletePublicAccessBlock`.
    public var iamAction: String
    public var account: String
    public var region: String
    /// The error code when the call failed.
    public var error: String?

    public init(operation: String, iamAction: String? = nil, account: String, region: String, error: String? = nil) {
        self.operation = operation
        self.iamAction = iamAction ?? operation
        self.account = account
        self.region = region
        self.error = error
    }

    public var description: String { "\(operation) \(account)/\(region)" + (error.map { " -> \($0)" } ?? "") }
}

/// A call as the simulator names it: service, API operation and the IAM action it needs.
package struct SimOperation: Sendable {
    package var service: String
    package var name: String
    package var iamAction: String

    package init(_ service: String, _ name: String, iam: String? = nil) {
        self.service = service
        self.name = name
        self.iamAction = "\(service):\(iam ?? name)"
    }

    package var fullName: String { "\(service):\(name)" }

    /// - Parameter account: the caller's account in an access-denied message (nil: the
    ///   caller is not named by ARN — faults injected on a real endpoint).
    package func error(for effect: Fault.Effect, account: String?, region: String) -> ActionError {
        let caller = account.map { "arn:aws:sts::\($0):assumed-role/cordon-responder/cordon" } ?? "cordon"
        switch effect {
        case .throttle:
            switch service {
            case "ec2": return .retryable("RequestLimitExceeded", "Request limit exceeded.")
            case "s3": return .retryable("SlowDown", "Please reduce your request rate.")
            case "cloudtrail": return .retryable("ThrottlingException", "Rate exceeded")
            default: return .retryable("Throttling", "Rate exceeded")
            }
        case .accessDenied:
            let text = "User: \(caller) is not authorized to perform: \(iamAction) because no identity-based policy allows the \(iamAction) action"
            switch service {
            case "ec2": return .permanent("UnauthorizedOperation", "You are not authorized to perform this operation. \(text)")
            case "cloudtrail": return .permanent("AccessDeniedException", text)
            default: return .permanent("AccessDenied", text)
            }
        case .outage:
            return .retryable("ServiceUnavailable", "Service Unavailable: \(service).\(region).amazonaws.com is temporarily unable to handle \(name); please try again shortly.")
        case .timeout(let d):
            return .retryable("RequestTimeout", "no response from \(service).\(region).amazonaws.com to \(name) within \(d)")
        }
    }
}

extension Fault {
    /// The effect of the first fault in `faults` that `matches` (faults past their
    /// `until` or out of `times` dropped first), counted against its `times`.
    package static func fire(_ faults: inout [Fault], at time: Date, _ matches: (Fault) -> Bool) -> Effect? {
        faults.removeAll { fault in (fault.until.map { time >= $0 } ?? false) || (fault.times.map { $0 <= 0 } ?? false) }
        guard let i = faults.firstIndex(where: matches) else { return nil }
        let effect = faults[i].effect
        if let times = faults[i].times {
            if times <= 1 { faults.remove(at: i) } else { faults[i].times = times - 1 }
        }
        return effect
    }
}
