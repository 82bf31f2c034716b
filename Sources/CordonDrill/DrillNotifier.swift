import CordonCore
import CordonEngine
import Foundation

/// One notification a drill would have sent.
public struct DrillNotification: Sendable {
    public var time: Date
    /// `slack`, `pagerduty`, …, `email` for `core.email`.
    public var channel: String
    public var action: String
    public var inputs: JSONObject
    public var delivered: Bool
    public var error: String?
}

/// The simulated notification sink of a drill: integration actions (Slack, PagerDuty…)
/// and `core.email` record what they would send instead of calling the network; a
/// target injected as down fails (retryably, like a 503) while the fault lasts.
public final class DrillNotifications: @unchecked Sendable {
    private let lock = NSLock()
    private var sent: [DrillNotification] = []
    private var down: [(target: String, times: Int?, until: Date?)] = []
    private let clock: any CordonClock

    public init(clock: any CordonClock) { self.clock = clock }

    public var all: [DrillNotification] { lock.withLock { sent } }

    /// The target (an integration, an action or `core.email`/`email`) fails for `times`
    /// calls, or until `until`, or for good.
    public func setDown(_ target: String, times: Int?, until: Date?) {
        lock.withLock { down.append((target.lowercased(), times, until)) }
    }

    static func channel(_ action: String) -> String {
        action == "core.email" ? "email" : String(action.split(separator: ".").first ?? Substring(action))
    }

    func deliver(action: String, inputs: JSONObject) throws(ActionError) -> ActionOutcome {
        let now = clock.now
        let channel = Self.channel(action)
        let failure: String? = lock.withLock {
            down.removeAll { ($0.until.map { now >= $0 } ?? false) || ($0.times.map { $0 <= 0 } ?? false) }
            guard let i = down.firstIndex(where: { [channel, action.lowercased()].contains($0.target) }) else { return nil }
            if let t = down[i].times { down[i].times = t - 1 }
            return "\(channel) is down (drill fault): 503 Service Unavailable"
        }
        lock.withLock { sent.append(DrillNotification(time: now, channel: channel, action: action, inputs: inputs, delivered: failure == nil, error: failure)) }
        if let failure { throw .retryable("ServiceUnavailable", failure) }
        return ActionOutcome(outputs: ["drill": true, "delivered_to": .string("simulated \(channel)")], target: channel)
    }
}

/// The drill double of an integration action or `core.email`.
struct DrillNotifierAction: Action {
    let name: String
    let sink: DrillNotifications

    func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        try sink.deliver(action: name, inputs: request.inputs)
    }
}

/// `core.wait` on the drill's virtual clock.
struct DrillWaitAction: Action {
    let clock: any CordonClock

    func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        guard let text = request.inputs["duration"]?.stringValue, let duration = DurationParser.parse(text) else {
            throw .permanent("InvalidInput", "core.wait needs `duration`, such as 30s")
        }
        try? await clock.sleep(for: duration)
        return ActionOutcome(outputs: ["waited": .string(text)])
    }
}
