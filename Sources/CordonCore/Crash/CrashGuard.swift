import CCordonCrash
import Crypto
import Foundation

/// What the process is working on, so that a crash can say it (`cordon_crash.h`): the
/// engine registers each finding it places and each evaluation it runs. A runner installs
/// the handler that writes them out at a crash (`CrashLog` in CordonJournal); without it,
/// registering costs two atomic operations and nothing is written.
public enum CrashGuard {
    /// Starts writing what is in progress to `path` when the process dies on a fault.
    public static func install(path: String) throws {
        guard cordon_crash_install(path) == 0 else {
            throw CordonError(.runFailed, "cannot install the crash handler (\(path)): \(String(cString: strerror(errno)))")
        }
    }

    /// Runs `body` with `id` registered as in progress.
    package static func tracking<T>(_ id: String, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T) async rethrows -> T {
        let slot = id.withCString { cordon_inflight_begin($0, strlen($0)) }
        defer { cordon_inflight_end(slot) }
        return try await body()
    }

    /// How a finding being handled is named in the crash record: 32 hex digits of the
    /// SHA-256 of its dedupe key (keys may be long, and hold text better not written twice).
    public static func findingID(_ dedupe: String) -> String { String(SHA256.hash(data: Array(dedupe.utf8)).hex.prefix(32)) }

    /// How many items are registered now (tests).
    public static var inProgress: Int { Int(cordon_inflight_count()) }
}
