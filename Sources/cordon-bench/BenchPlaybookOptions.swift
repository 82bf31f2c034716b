import ArgumentParser
import CordonCore
import Foundation

/// The playbooks and findings the queue and runner benchmarks load from the corpus.
struct BenchPlaybookOptions: ParsableArguments {
    @Option(help: "The benchmark corpus directory.")
    var corpus: String = "Fixtures/bench"

    @Option(help: "Playbooks to load.")
    var playbooks = 1_000

    @Option(help: "Trigger workload: exact (patterns-exact.jsonl: a matching finding opens about one incident) or mixed (patterns-mixed.jsonl: about 2.7).")
    var workload = "exact"

    func validate() throws {
        guard ["exact", "mixed"].contains(workload) else { throw ValidationError("--workload must be exact or mixed") }
    }

    /// Writes the playbooks into `dir`: each a trigger of the workload and one `core.log` step.
    func writePlaybooks(to dir: URL) throws {
        let patterns = try String(contentsOfFile: corpus + "/patterns-\(workload).jsonl", encoding: .utf8).split(separator: "\n").prefix(playbooks)
        for (i, pattern) in patterns.enumerated() {
            let text = """
                name: bench-\(i)
                version: 1
                description: benchmark playbook
                trigger: \(pattern)
                steps:
                  - id: noop
                    action: core.log
                    with: {message: "{{ detail.type }}"}
                """
            try text.write(to: dir.appendingPathComponent("p\(i).yaml"), atomically: false, encoding: .utf8)
        }
    }

    /// The corpus's GuardDuty events, one raw JSON event each.
    func events() throws -> [ArraySlice<UInt8>] {
        try Gzip.decompress(Array(Data(contentsOf: URL(fileURLWithPath: corpus + "/guardduty-events.jsonl.gz")))).split(separator: UInt8(ascii: "\n"))
    }
}
