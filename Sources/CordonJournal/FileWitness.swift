import CordonCore
import Foundation

/// `file:PATH`: appends each checkpoint's head to a file, one line of canonical JSON per
/// head, fsynced. Meant for another disk or mount than the journal's (a write-once or
/// append-only mount, a log shipper's spool): it protects against truncation and rollback
/// of the journal only as far as whoever controls the host cannot rewrite that file.
public struct FileWitness: CheckpointWitness {
    public let path: String
    public var spec: String { "file:" + path }

    public struct Error: Swift.Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    public init(path: String) throws {
        guard !path.isEmpty else { throw Error(description: "--anchor file: needs a path (file:PATH)") }
        self.path = path
    }

    public func witness(_ head: Checkpoint) async throws -> WitnessReceipt {
        let bytes = Array((head.line + "\n").utf8)
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Error(description: "witness \(spec): cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        // One write of a whole line with O_APPEND: lines from several processes do not
        // interleave.
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            throw Error(description: "witness \(spec): cannot write: \(written < 0 ? String(cString: strerror(errno)) : "short write")")
        }
        guard fsync(fd) == 0 else { throw Error(description: "witness \(spec): fsync failed: \(String(cString: strerror(errno)))") }
        return WitnessReceipt(witness: spec, seq: head.seq, hash: head.hash, time: Timestamp.string(Date()), proof: "")
    }

    /// Every head in the file. A last line without its newline (a write cut short) is
    /// left out; any other line that is not a head is an error naming its line.
    public func witnessedHeads() async throws -> [Checkpoint]? {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Error(description: "witness \(spec): cannot read \(path)")
        }
        var heads: [Checkpoint] = []
        var lines = data.split(separator: 0x0A, omittingEmptySubsequences: false)
        if data.last != 0x0A { lines.removeLast() }
        for (number, line) in lines.enumerated() where !line.isEmpty {
            do {
                heads.append(try Checkpoint(line: String(decoding: line, as: UTF8.self)))
            } catch {
                throw Error(description: "witness \(spec): line \(number + 1): \(error)")
            }
        }
        return heads.sorted { $0.seq < $1.seq }
    }

    public func check(_ receipt: WitnessReceipt, for head: Checkpoint) throws -> Bool? { nil }
}
