/// An immutable-after-build hash table from byte strings (with a one-byte type tag) to
/// dense entry indexes. Lookups take raw buffers and never allocate, which is what the
/// matcher's hot path needs.
struct ByteTable: Sendable {
    private var slots: [Int32]
    private var mask: Int
    private var hashes: [UInt64] = []
    private var keyStarts: [Int32] = []
    private var keyLengths: [Int32] = []
    private var tags: [UInt8] = []
    private var arena: [UInt8] = []

    init() {
        slots = [Int32](repeating: -1, count: 8)
        mask = 7
    }

    var count: Int { hashes.count }

    @inline(__always)
    static func hash(tag: UInt8, _ p: UnsafeRawPointer, _ n: Int) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ (UInt64(tag) &* 0x1000_0000_01B3) ^ (UInt64(n) << 8)
        var i = 0
        while i + 8 <= n {
            let w = p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            h = (h ^ w) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 32
            i += 8
        }
        if i < n {
            var w: UInt64 = 0
            var shift: UInt64 = 0
            while i < n {
                w |= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) << shift
                shift += 8
                i += 1
            }
            h = (h ^ w) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 32
        }
        h ^= h >> 33
        h = h &* 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return h
    }

    /// The entry index for the key, or -1.
    @inline(__always)
    func find(tag: UInt8, _ key: UnsafeRawBufferPointer) -> Int {
        let n = key.count
        let base = key.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        let h = ByteTable.hash(tag: tag, base, n)
        var slot = Int(truncatingIfNeeded: h) & mask
        while true {
            let entry = Int(slots[slot])
            if entry < 0 { return -1 }
            if hashes[entry] == h, tags[entry] == tag, Int(keyLengths[entry]) == n {
                let start = Int(keyStarts[entry])
                let equal = arena.withUnsafeBytes { a in
                    n == 0 || memcmp(a.baseAddress! + start, base, n) == 0
                }
                if equal { return entry }
            }
            slot = (slot + 1) & mask
        }
    }

    /// Inserts the key if missing; returns its entry index.
    mutating func insert(tag: UInt8, _ key: [UInt8]) -> Int {
        let existing = key.withUnsafeBytes { find(tag: tag, $0) }
        if existing >= 0 { return existing }
        let h = key.withUnsafeBytes { ByteTable.hash(tag: tag, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, $0.count) }
        let entry = hashes.count
        hashes.append(h)
        tags.append(tag)
        keyStarts.append(Int32(arena.count))
        keyLengths.append(Int32(key.count))
        arena.append(contentsOf: key)
        if (entry + 1) * 2 > slots.count { rehash(capacity: slots.count * 2) } else { place(entry) }
        return entry
    }

    private mutating func place(_ entry: Int) {
        var slot = Int(truncatingIfNeeded: hashes[entry]) & mask
        while slots[slot] >= 0 { slot = (slot + 1) & mask }
        slots[slot] = Int32(entry)
    }

    private mutating func rehash(capacity: Int) {
        slots = [Int32](repeating: -1, count: capacity)
        mask = capacity - 1
        for entry in 0..<hashes.count { place(entry) }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
