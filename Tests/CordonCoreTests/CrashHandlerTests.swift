import Foundation
import Testing

/// The fault-signal handler (`Sources/CCordonCrash`) on real faults: a trap (as Swift's
/// force-unwrap and precondition failures are) and a bad pointer. A small C program
/// built from the same source registers work in progress and faults; the handler must
/// write what was in progress, and the process must still die of the signal.
@Suite struct CrashHandlerTests {
    static let program = #"""
        #include "cordon_crash.h"
        #include <string.h>
        #include <stdio.h>
        int main(int argc, char **argv) {
            if (cordon_crash_install(argv[1]) != 0 || cordon_crash_install(argv[1]) != 0) { perror("install"); return 2; }
            cordon_inflight_begin("i:inc-000000000001", strlen("i:inc-000000000001"));
            int done = cordon_inflight_begin("f:finished", strlen("f:finished"));
            cordon_inflight_end(done);
            if (strcmp(argv[2], "segv") == 0) { volatile int *p = 0; *p = 1; }
            __builtin_trap();
            return 0;
        }
        """#

    @Test(arguments: [("trap", SIGILL), ("segv", SIGSEGV)])
    func aRealFaultWritesWhatWasInProgressAndStillEndsTheProcess(_ mode: String, _ signal: Int32) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-crash-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = TestPaths.packageRoot.appendingPathComponent("Sources/CCordonCrash")
        try Self.program.write(to: dir.appendingPathComponent("fault.c"), atomically: true, encoding: .utf8)
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cc.arguments = ["cc", "-I", source.appendingPathComponent("include").path, dir.appendingPathComponent("fault.c").path,
                        source.appendingPathComponent("cordon_crash.c").path, "-o", dir.appendingPathComponent("fault").path]
        try cc.run()
        cc.waitUntilExit()
        #expect(cc.terminationStatus == 0, "cc failed")
        let log = dir.appendingPathComponent("crashes.log").path
        let fault = Process()
        fault.executableURL = dir.appendingPathComponent("fault")
        fault.arguments = [log, mode]
        fault.standardError = FileHandle.nullDevice
        try fault.run()
        // A handler that re-runs itself would loop on the fault forever.
        let deadline = Date().addingTimeInterval(10)
        while fault.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if fault.isRunning {
            kill(fault.processIdentifier, SIGKILL)
            Issue.record("the faulting process did not end within 10 s")
        }
        fault.waitUntilExit()
        #expect(fault.terminationReason == .uncaughtSignal)
        #expect(fault.terminationStatus == signal)
        let written = try String(contentsOfFile: log, encoding: .utf8)
        #expect(written.contains("crash \(fault.processIdentifier) signal \(signal)\nitem i:inc-000000000001\nend \(fault.processIdentifier)\n"), "\(written)")
        #expect(!written.contains("f:finished"))
        #expect(written.components(separatedBy: "crash ").count == 2, "written once, not in a loop: \(written)")
    }
}
