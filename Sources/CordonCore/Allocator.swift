#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The memory allocator serving this process: the executables link jemalloc when it was
/// installed at build time (see Package.swift), and `LD_PRELOAD` can put it, or another
/// allocator, in front of the system's.
public enum Allocator {
    /// `jemalloc` when jemalloc's control interface (`mallctl`) is loaded in the process,
    /// else `system malloc`.
    public static let name: String = {
        guard let process = dlopen(nil, RTLD_NOW) else { return "system malloc" }
        defer { dlclose(process) }
        return dlsym(process, "mallctl") != nil ? "jemalloc" : "system malloc"
    }()
}
