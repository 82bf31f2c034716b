import Foundation

/// State shared between threads, reachable only while its lock is held, with the lock's
/// condition variable to wait on. `withLock` hands its body a `Locked` view: its members
/// read and write the state, and its `wait` releases the lock between two accesses,
/// never during one. The journal's writer thread waits on it for appends.
final class Monitor<State: Sendable>: @unchecked Sendable {
    // Unchecked: `state` is read and written only through `Locked`, which exists only
    // inside `withLock`, with `condition` locked.
    private let condition = NSCondition()
    private var state: State

    init(_ state: State) { self.state = state }

    func withLock<T>(_ body: (Locked) throws -> T) rethrows -> T {
        condition.lock()
        defer { condition.unlock() }
        return try body(Locked(monitor: self))
    }

    /// The state while the lock is held. Not to be kept beyond the `withLock` body.
    @dynamicMemberLookup
    struct Locked {
        fileprivate let monitor: Monitor

        subscript<T>(dynamicMember member: WritableKeyPath<State, T>) -> T {
            get { monitor.state[keyPath: member] }
            nonmutating _modify { yield &monitor.state[keyPath: member] }
        }

        /// Releases the lock until signalled.
        func wait() { monitor.condition.wait() }

        /// Releases the lock until signalled or `deadline`; false when the deadline passed.
        @discardableResult
        func wait(until deadline: Date) -> Bool { monitor.condition.wait(until: deadline) }

        func signal() { monitor.condition.signal() }
        func broadcast() { monitor.condition.broadcast() }
    }
}
