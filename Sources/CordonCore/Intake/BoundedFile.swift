import Foundation

/// Reads a whole file, refusing one larger than a limit before reading it (and one that
/// grows past it while being read): every file Cordon loads from outside goes through
/// here, so that no file's size decides how much memory Cordon takes. Plain system calls:
/// one open, fstat and read for a small file, as the queue directory reads thousands a
/// second.
public enum BoundedFile {
    public struct ReadError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// - Parameter what: what the file should be, for the message when it is a directory.
    public static func read(_ path: String, limit: Int, what: String = "a file") -> Result<[UInt8], ReadError> {
        func failure(_ step: String) -> Result<[UInt8], ReadError> {
            .failure(ReadError(message: "cannot read: \(step): \(String(cString: strerror(errno)))"))
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return failure("open") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return failure("stat") }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            return .failure(ReadError(message: "is a directory, not \(what)"))
        }
        let size = Int(info.st_size)
        if size > limit {
            return .failure(ReadError(message: "file is \(size) bytes, more than the limit of \(limit)"))
        }
        var bytes: [UInt8] = []
        // The size may change while we read (a producer that did not rename): read to the
        // end, never beyond the limit.
        var capacity = max(size, 4096)
        while true {
            if bytes.count == capacity { capacity *= 2 }
            let want = min(capacity, limit + 1) - bytes.count
            if want <= 0 { break }
            var failed = false
            let start = bytes.count
            bytes.append(contentsOf: repeatElement(0, count: want))
            let got = bytes.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                var n: Int
                repeat { n = Foundation.read(fd, base + start, want) } while n < 0 && errno == EINTR
                if n < 0 { failed = true }
                return n
            }
            if failed { return failure("read") }
            bytes.removeLast(want - got)
            if got == 0 { break }
        }
        if bytes.count > limit {
            return .failure(ReadError(message: "file is more than the limit of \(limit) bytes"))
        }
        return .success(bytes)
    }
}
