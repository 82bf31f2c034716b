import Foundation
import Testing

@testable import CordonJournal

/// The crash log, from which a runner learns what was in progress at two crashes in a row
/// (what it quarantines).
@Suite struct CrashLogTests {
    @Test func onlyWorkInProgressAtTwoCrashesInARowIsQuarantined() throws {
        let dir = temporaryDataDirectory()
        try FileManager.default.createDirectory(at: dir.url, withIntermediateDirectories: true)
        let log = CrashLog(dir)
        func write(_ text: String) throws {
            let old = (try? String(contentsOf: log.url, encoding: .utf8)) ?? ""
            try (old + text).write(to: log.url, atomically: true, encoding: .utf8)
        }
        #expect(log.inProgressAtTwoCrashes() == nil)
        try write("start 10 t1\ncrash 10 signal 4\nitem i:inc-a\nitem f:x\nend 10\n")
        #expect(log.inProgressAtTwoCrashes() == nil, "one crash")
        // Killed (no end): not a crash, and it breaks the series.
        try write("start 11 t2\n")
        try write("start 12 t3\ncrash 12 signal 11\nitem i:inc-a\nend 12\n")
        #expect(log.inProgressAtTwoCrashes() == nil)
        try write("start 13 t4\ncrash 13 signal 4\nitem i:inc-a\nitem i:inc-b\nend 13\n")
        #expect(log.inProgressAtTwoCrashes()?.items == ["i:inc-a"])
        #expect(log.inProgressAtTwoCrashes()?.reason.contains("signal 11") == true)
        // A run that stopped cleanly ends the series.
        try write("start 14 t5\nstop 14 t6\n")
        #expect(log.inProgressAtTwoCrashes() == nil)
        #expect(log.runs().count == 5)
    }
}
