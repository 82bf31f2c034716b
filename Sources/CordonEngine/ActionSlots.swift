import CordonCore
import Synchronization

/// A bound on the actions called at once (`Engine.actionsInFlight`), first come first
/// served. It lives outside the engine's actor: a place handed to a waiting step is used
/// as soon as that step runs, without the step first waiting for the engine, which under
/// load kept places idle for milliseconds between two calls.
final class ActionSlots: Sendable {
    private struct State {
        var free: Int
        var waiters: [(id: Int, continuation: CheckedContinuation<Bool, Never>)] = []
        var nextID = 0
    }

    private let state: Mutex<State>
    /// The places (at least one).
    let count: Int

    init(_ count: Int) {
        self.count = max(1, count)
        state = Mutex(State(free: self.count))
    }

    /// Takes a place; returns how long it waited. A task cancelled before or while it
    /// waits throws `CancellationError` and holds no place.
    func acquire() async throws -> Duration {
        let start = ContinuousClock.now
        let id: Int? = state.withLock { s in
            if s.free > 0 {
                s.free -= 1
                return nil
            }
            s.nextID += 1
            return s.nextID
        }
        if let id {
            // `release` hands its place straight to the first waiter (true); a
            // cancelled waiter is resumed with false.
            let granted = await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                    let cancelled = state.withLock { s -> Bool in
                        if Task.isCancelled { return true }
                        s.waiters.append((id, continuation))
                        return false
                    }
                    if cancelled { continuation.resume(returning: false) }
                }
            } onCancel: {
                let waiter = state.withLock { s -> CheckedContinuation<Bool, Never>? in
                    guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                    return s.waiters.remove(at: i).continuation
                }
                waiter?.resume(returning: false)
            }
            guard granted else { throw CancellationError() }
        }
        if Task.isCancelled {
            release()
            throw CancellationError()
        }
        return ContinuousClock.now - start
    }

    func release() {
        let next = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            if s.waiters.isEmpty {
                s.free += 1
                return nil
            }
            return s.waiters.removeFirst().continuation
        }
        next?.resume(returning: true)
    }
}
