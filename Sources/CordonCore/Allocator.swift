#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The memory allocator serving this process: the executables link jemalloc when it was
/// installed at build time (see Package.swift), and `LD_PRELOAD` can put it, or another
/// allocator, in front of the system's.
public enum Allocator {
    /// `jemalloc`, `tcmalloc` or `mimalloc` when the `malloc` this process calls is that
    /// library's, else `system malloc`.
    public static let name: String = {
        guard let process = dlopen(nil, RTLD_NOW) else { return "system malloc" }
        defer { dlclose(process) }
        guard let active = dlsym(process, "malloc") else { return "system malloc" }
        let known = [
            ("libjemalloc.so.2", "jemalloc"), ("libtcmalloc_minimal.so.4", "tcmalloc"), ("libtcmalloc.so.4", "tcmalloc"),
            ("libmimalloc.so.2", "mimalloc"),
        ]
        for (library, name) in known {
            // Only a library already loaded: RTLD_NOLOAD never loads one.
            guard let handle = dlopen(library, RTLD_NOW | RTLD_NOLOAD) else { continue }
            defer { dlclose(handle) }
            if dlsym(handle, "malloc") == active { return name }
        }
        return "system malloc"
    }()

    /// Gives the memory freed so far back to the system at once (after the start-up
    /// replay of the journal, whose records come and go by the megabyte): jemalloc
    /// purges its arenas, glibc trims its heap. jemalloc would otherwise return it in
    /// its own time (about ten seconds), and the resident size would peak meanwhile.
    public static func releaseFreeMemory() {
        guard let process = dlopen(nil, RTLD_NOW) else { return }
        defer { dlclose(process) }
        if name == "jemalloc", let symbol = dlsym(process, "mallctl") {
            typealias Mallctl = @convention(c) (UnsafePointer<CChar>?, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?, UnsafeMutableRawPointer?, Int) -> Int32
            // MALLCTL_ARENAS_ALL (4096): every arena.
            _ = unsafeBitCast(symbol, to: Mallctl.self)("arena.4096.purge", nil, nil, nil, 0)
        } else if name == "system malloc", let symbol = dlsym(process, "malloc_trim") {
            typealias MallocTrim = @convention(c) (Int) -> Int32
            _ = unsafeBitCast(symbol, to: MallocTrim.self)(0)
        }
    }
}
