import CZlib

/// gzip decompression (zlib), bounded so that a small "gzip bomb" cannot exhaust memory.
public enum Gzip {
    public struct Error: Swift.Error, Sendable, CustomStringConvertible {
        public var message: String
        /// Where in the compressed input it was found (bytes read by then), and how many
        /// bytes had been decompressed by then; nil when nothing was read.
        public var compressedOffset: Int?
        public var decompressedBytes: Int?
        public var description: String { message }

        init(message: String, compressedOffset: Int? = nil, decompressedBytes: Int? = nil) {
            self.message = message
            self.compressedOffset = compressedOffset
            self.decompressedBytes = decompressedBytes
        }
    }

    /// Whether the bytes start with the gzip magic number.
    public static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
    }

    /// Decompresses gzip data (concatenated members too).
    /// - Parameter limit: the most bytes the output may have.
    public static func decompress(_ input: [UInt8], limit: Int = 256 << 20) throws(Gzip.Error) -> [UInt8] {
        var stream = z_stream()
        // 15 window bits + 16: expect a gzip header.
        guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw Error(message: "gzip: could not initialise zlib")
        }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        output.reserveCapacity(min(limit, max(4096, input.count * 4)))
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var failure: Error? = nil
        func fail(_ message: String) -> Error {
            Error(message: message, compressedOffset: input.count - Int(stream.avail_in), decompressedBytes: output.count)
        }
        input.withUnsafeBufferPointer { inBuffer in
            stream.next_in = UnsafeMutablePointer(mutating: inBuffer.baseAddress)
            stream.avail_in = uInt(inBuffer.count)
            while true {
                let status: Int32 = chunk.withUnsafeMutableBufferPointer { outBuffer in
                    stream.next_out = outBuffer.baseAddress
                    stream.avail_out = uInt(outBuffer.count)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                let produced = chunk.count - Int(stream.avail_out)
                if output.count + produced > limit {
                    failure = fail("gzip: decompressed data exceeds the limit of \(limit) bytes")
                    return
                }
                output.append(contentsOf: chunk[0..<produced])
                switch status {
                case Z_STREAM_END:
                    // Another gzip member may follow (concatenated files, e.g. `cat a.gz b.gz`).
                    if stream.avail_in > 0 {
                        guard inflateReset(&stream) == Z_OK else {
                            failure = fail("gzip: could not continue with the next member")
                            return
                        }
                        continue
                    }
                    return
                case Z_OK:
                    if stream.avail_in == 0 && produced == 0 {
                        failure = fail("gzip: unexpected end of compressed data (truncated file?)")
                        return
                    }
                    continue
                case Z_BUF_ERROR:
                    if stream.avail_in == 0 {
                        failure = fail("gzip: unexpected end of compressed data (truncated file?)")
                        return
                    }
                    continue
                default:
                    let detail = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                    failure = fail("gzip: corrupt data (\(detail))")
                    return
                }
            }
        }
        if let failure { throw failure }
        return output
    }

    /// Compresses bytes into one gzip member.
    public static func compress(_ input: [UInt8], level: Int32 = Z_DEFAULT_COMPRESSION) throws(Gzip.Error) -> [UInt8] {
        var stream = z_stream()
        guard deflateInit2_(
            &stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else { throw Error(message: "gzip: could not initialise zlib") }
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 32)
        let status: Int32 = input.withUnsafeBufferPointer { inBuffer in
            output.withUnsafeMutableBufferPointer { outBuffer in
                stream.next_in = UnsafeMutablePointer(mutating: inBuffer.baseAddress)
                stream.avail_in = uInt(inBuffer.count)
                stream.next_out = outBuffer.baseAddress
                stream.avail_out = uInt(outBuffer.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw Error(message: "gzip: compression failed (\(status))") }
        output.removeLast(Int(stream.avail_out))
        return output
    }
}
