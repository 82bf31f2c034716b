import Foundation

/// The time the engine runs on: real time in production, a virtual clock in drills
/// (`VirtualClock`), so that a four-hour scenario with retries, timeouts and approval
/// deadlines runs in milliseconds and gives the same journal every time.
public protocol CordonClock: Sendable {
    /// The current time.
    var now: Date { get }
    /// Waits (really, or by advancing virtual time).
    func sleep(for duration: Duration) async throws
    /// Runs `operation`, giving up after `timeout`; nil when the timeout came first.
    func withTimeout<T: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async -> T) async -> T?
    /// Whether the engine stamps records with `now` (a virtual clock) or leaves the time
    /// to the journal (real time, at the write).
    var stampsRecords: Bool { get }
}

/// Real time: `Date()`, `Task.sleep`, a task racing the operation against a sleep.
public struct SystemClock: CordonClock {
    public init() {}
    public var now: Date { Date() }
    public var stampsRecords: Bool { false }
    public func sleep(for duration: Duration) async throws { try await Task.sleep(for: duration) }

    public func withTimeout<T: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async -> T) async -> T? {
        await withTaskGroup(of: TimeoutRace<T>.self) { group in
            group.addTask { .value(await operation()) }
            group.addTask {
                do {
                    try await Task.sleep(for: timeout)
                    return .timedOut
                } catch {
                    return .cancelled
                }
            }
            var result: T? = nil
            for await race in group {
                if case .value(let v) = race { result = v; break }
                if case .timedOut = race { break }
            }
            group.cancelAll()
            return result
        }
    }
}

/// How a race between an operation and its timeout ended.
enum TimeoutRace<T: Sendable>: Sendable {
    case value(T)
    case timedOut
    /// The sleep was cancelled (the whole task is): the operation's result still counts.
    case cancelled
}

/// Virtual time for drills: `sleep` advances the clock at once, and an operation runs
/// to its end and then counts as timed out when the virtual time it took (a simulated
/// call that "hangs" sleeps on this clock) exceeds the timeout, the clock then standing
/// at the deadline. Everything is deterministic: no real waiting, no races.
public final class VirtualClock: CordonClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    public init(start: Date) { self.current = start }

    public var now: Date { lock.withLock { current } }
    public var stampsRecords: Bool { true }

    public func sleep(for duration: Duration) async throws {
        advance(by: duration)
    }

    /// Moves the clock forward (never back).
    public func advance(by duration: Duration) {
        lock.withLock { current = current.addingTimeInterval(max(0, duration.seconds)) }
    }

    /// Moves the clock to `date` when it is later than now.
    public func advance(to date: Date) {
        lock.withLock { if date > current { current = date } }
    }

    public func withTimeout<T: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async -> T) async -> T? {
        let start = now
        let deadline = start.addingTimeInterval(timeout.seconds)
        let value = await operation()
        if now > deadline {
            lock.withLock { current = deadline }
            return nil
        }
        return value
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// The calling thread's CPU time (user and system), for benchmarks and statistics.
public func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Where the engine's retry jitter comes from: the system's generator, or a seeded one
/// (SplitMix64) in drills so that the same seed gives the same backoffs.
public final class JitterSource: @unchecked Sendable {
    private let lock = NSLock()
    private var state: UInt64?

    /// The system generator.
    public static let system = JitterSource(seed: nil)

    public init(seed: UInt64?) { self.state = seed }

    /// A uniformly distributed value in `range`.
    public func random(in range: ClosedRange<Double>) -> Double {
        let next: UInt64? = lock.withLock {
            guard var s = state else { return nil }
            s &+= 0x9E37_79B9_7F4A_7C15
            state = s
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        guard let next else { return Double.random(in: range) }
        let unit = Double(next >> 11) / Double(1 << 53)
        return range.lowerBound + unit * (range.upperBound - range.lowerBound)
    }
}
