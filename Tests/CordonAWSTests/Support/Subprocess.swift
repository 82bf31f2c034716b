import CordonTestSupport
import Foundation

/// Runs a command to completion, feeding stdin, returning (status, stdout, stderr).
/// Blocks the calling thread.
func runProcess(_ arguments: [String], stdin: Data = Data(), environment: [String: String]? = nil) throws -> (Int32, Data, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    if let environment { process.environment = environment }
    let captured = try Spawn.capture(process, stdin: stdin)
    return (captured.status, captured.stdout, captured.stderrText)
}

/// A deterministic generator (SplitMix64), so a failing random case can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
