import ArgumentParser
import CordonCore
import Foundation

struct MatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "match",
        abstract: "Test an EventBridge event pattern against events.",
        discussion: """
            Reads events as JSON Lines (one event per line) from --events or standard input \
            and prints one line per event: `match` or `no match` (blank lines are skipped). \
            Events are matched as they are, without unwrapping envelopes (see `cordon decode`).

            A line that is not a valid JSON object prints `error` and a message on stderr; \
            the command then exits 2 after reading every line. An invalid pattern exits 2 \
            with a message that names the offending field.

            Example:
              cordon match --pattern trigger.json --events findings.jsonl
              cordon decode Fixtures/findings/guardduty/*.json --output json | cordon match --pattern trigger.json
            """)

    @Option(name: .long, help: ArgumentHelp("The pattern file (JSON).", valueName: "FILE"))
    var pattern: String

    @Option(name: .long, help: ArgumentHelp("The events file (JSON Lines); standard input when omitted.", valueName: "FILE"))
    var events: String?

    @Option(help: "text: `match` / `no match`; json: one JSON object per event.")
    var output: OutputFormat = .text

    func run() throws {
        let compiled: PatternSet
        do {
            let text: String
            do {
                text = try String(contentsOfFile: pattern, encoding: .utf8)
            } catch {
                throw CordonError(.invalidInput, "cannot read pattern file \(pattern): \(error.localizedDescription)")
            }
            do {
                compiled = PatternSet([try EventPattern(text: text)])
            } catch {
                throw CordonError(.invalidInput, "\(pattern): \(error)")
            }
        }
        var matcher = compiled.makeMatcher()

        let reader: LineReader
        do {
            reader = try LineReader(path: events)
        } catch {
            throw CordonError(.invalidInput, "cannot read events file \(events ?? "-"): \(error)")
        }
        let source = events ?? "stdin"
        var lineNumber = 0
        var failures = 0
        while let line = reader.next() {
            lineNumber += 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let result: String
            var problem: String? = nil
            do {
                // The strict parser first: duplicate keys, bad escapes and invalid UTF-8
                // anywhere in the event are errors, as they are at intake.
                let value = try JSONParser.parse(line)
                guard case .object = value else { throw CordonError(.invalidInput, "an event must be a JSON object, found \(value.typeName)") }
                result = try matcher.matches(line).isEmpty ? "no match" : "match"
            } catch let e as JSONParseError {
                result = "error"
                problem = "invalid JSON at column \(e.column): \(e.message)"
            } catch {
                result = "error"
                problem = "\(error)"
            }
            if let problem {
                failures += 1
                printError("cordon: \(source):\(lineNumber): \(problem)")
            }
            switch output {
            case .text:
                print(result)
            case .json:
                var object: JSONObject = ["line": .number(JSONNumber(lineNumber))]
                if let problem {
                    object["error"] = .string(problem)
                } else {
                    object["match"] = .bool(result == "match")
                }
                print(JSONWriter.string(.object(object)))
            }
            fflush(nil)
        }
        if let readError = reader.error {
            throw CordonError(.invalidInput, "reading \(source): \(readError)")
        }
        if failures > 0 { throw CordonError(.invalidInput) }
    }
}

/// Reads lines of bytes from a file or standard input, without loading it all.
final class LineReader {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private var start = 0
    /// Where the search for the next newline goes on (bytes before it have none).
    private var scanned = 0
    private var eof = false
    private(set) var error: Error?
    /// The longest line read (an event as large as intake takes one).
    static let maxLine = 256 << 20

    init(path: String?) throws {
        if let path, path != "-" {
            guard let handle = FileHandle(forReadingAtPath: path) else {
                throw CordonError(.invalidInput, FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file")
            }
            self.handle = handle
        } else {
            self.handle = FileHandle.standardInput
        }
    }

    /// The next line without its newline, or nil at the end.
    func next() -> [UInt8]? {
        while true {
            if let newline = buffer[max(start, scanned)...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[start..<newline])
                start = newline + 1
                scanned = start
                return line
            }
            scanned = buffer.count
            if buffer.count - start > Self.maxLine {
                error = CordonError(.invalidInput, "a line is longer than \(Self.maxLine) bytes")
                eof = true
                start = buffer.count
                return nil
            }
            if eof {
                guard start < buffer.count else { return nil }
                let line = Array(buffer[start...])
                start = buffer.count
                return line
            }
            if start > 0 {
                buffer.removeFirst(start)
                scanned -= start
                start = 0
            }
            do {
                if let chunk = try handle.read(upToCount: 1 << 16), !chunk.isEmpty {
                    buffer.append(contentsOf: chunk)
                } else {
                    eof = true
                }
            } catch {
                self.error = error
                eof = true
            }
        }
    }
}
