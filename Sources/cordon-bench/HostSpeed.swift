import CordonCore
import Crypto

/// How fast this machine is right now, on a fixed piece of Cordon's own work.
///
/// On a shared VM the same build's figures can differ by a third from one hour to the
/// next with no steal reported (neighbours compete for caches and memory, not for the
/// CPU time `/proc/stat` accounts). A reference figure measured just before a run lets
/// the runs be compared: the same work, on one thread, on an otherwise idle process.
enum HostSpeed {
    /// Parses, canonicalises and hashes 2,000 small GuardDuty findings (`HTTPBench.finding`)
    /// five times, and returns the best round's microseconds per finding.
    static func referenceMicroseconds() -> Double {
        let events = (0..<2000).map { Array(HTTPBench.finding($0).utf8) }
        var best = Double.infinity
        var check = 0
        for _ in 0..<5 {
            let start = ContinuousClock.now
            for event in events {
                guard let value = try? JSONParser.parse(event) else { continue }
                let canonical = CanonicalJSON.bytes(value)
                check &+= Int(SHA256.hash(data: canonical).withUnsafeBytes { $0[0] })
            }
            best = min(best, (ContinuousClock.now - start).seconds / Double(events.count) * 1e6)
        }
        // Keeps the work from being optimised away.
        if check == -1 { print(check) }
        return best
    }

    /// The lines a benchmark ends its host report with: the reference figure, and which
    /// allocator served the run (with the system's malloc instead of jemalloc, every figure
    /// is about a tenth worse; docs/benchmarks.md).
    static func lines(_ microseconds: Double) -> String {
        String(
            format: "host: reference work (parse, canonicalise and SHA-256 a 0.5 KB finding, one thread) %.2f µs per finding before the run; higher means a slower host",
            microseconds) + "\nbuild: memory allocator \(Allocator.name)"
    }
}
