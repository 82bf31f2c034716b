import Foundation
import XCTest

/// Stops servers when the test bundle finishes.
final class TestEnd: NSObject, XCTestObservation, @unchecked Sendable {
    nonisolated(unsafe) static var actions: [() -> Void] = []
    nonisolated(unsafe) static var registered = false
    static let lock = NSLock()

    static func register(_ action: @escaping () -> Void) {
        lock.withLock {
            actions.append(action)
            if !registered {
                registered = true
                let observer = TestEnd()
                if Thread.isMainThread {
                    MainActor.assumeIsolated { XCTestObservationCenter.shared.addTestObserver(observer) }
                } else {
                    DispatchQueue.main.async { MainActor.assumeIsolated { XCTestObservationCenter.shared.addTestObserver(observer) } }
                }
            }
        }
    }

    func testBundleDidFinish(_ testBundle: Bundle) {
        let all = TestEnd.lock.withLock { TestEnd.actions }
        for a in all { a() }
    }
}
