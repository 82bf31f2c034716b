import ArgumentParser
import CordonCore
import Foundation

struct DecodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Show the events Cordon reads from finding files.",
        discussion: """
            Decodes each FILE as Cordon's intake does: gzip, a JSON document, a JSON array or \
            JSON Lines; EventBridge events, CloudTrail log files and records, GuardDuty \
            findings (API or CLI output), Security Hub ASFF findings, and SNS/SQS envelopes \
            carrying any of them. Each finding becomes an EventBridge event, the input that \
            playbook triggers match.

            --output text prints one line per event (source, detail-type, id, where it came \
            from); --output json prints the events as JSON Lines, ready for `cordon match`. \
            Records that cannot be decoded are reported on stderr as FILE:LINE (byte N): \
            message, the others are still printed, and the exit status is 2.
            """)

    @Argument(
        help: ArgumentHelp(
            "Files of findings, or directories (every .json, .jsonl, .ndjson and .gz file below them); - for standard input.",
            valueName: "FILE"))
    var files: [String]

    @Option(help: "text: a summary line per event; json: the events as JSON Lines.")
    var output: OutputFormat = .text

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one FILE (or - for standard input)") }
    }

    func run() throws {
        let decoder = FindingDecoder()
        var issues = 0
        for file in FindingFiles.expand(files) {
            let result: DecodeResult
            if file == "-" {
                let data = FileHandle.standardInput.readDataToEndOfFile()
                result = decoder.decode(Array(data), source: "stdin")
            } else {
                result = decoder.decode(fileAtPath: file)
            }
            for finding in result.findings {
                switch output {
                case .json:
                    print(JSONWriter.string(finding.event))
                case .text:
                    print(
                        [finding.source ?? "-", finding.detailType ?? "-", finding.id ?? "-", finding.origin.description]
                            .joined(separator: "\t"))
                }
            }
            for issue in result.issues { printError("cordon: \(issue)") }
            issues += result.issues.count
        }
        if issues > 0 { throw CordonError(.invalidInput) }
    }
}

/// Expands directories into the finding files below them (sorted, so runs are repeatable).
enum FindingFiles {
    static let extensions = [".json", ".jsonl", ".ndjson", ".gz"]

    static func expand(_ paths: [String]) -> [String] {
        var out: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            if path != "-", FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                let below = (FileManager.default.enumerator(atPath: path)?.allObjects as? [String]) ?? []
                let base = path.hasSuffix("/") ? path : path + "/"
                out += below.filter { name in extensions.contains { name.hasSuffix($0) } }.sorted().map { base + $0 }
            } else {
                out.append(path)
            }
        }
        return out
    }
}
