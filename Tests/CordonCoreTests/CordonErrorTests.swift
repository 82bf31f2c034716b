import CordonCore
import Testing

@Suite struct CordonErrorTests {
    /// The caller's mistakes exit 2, failed runs and checks 1 (docs/cli.md).
    @Test func eachCodeHasItsExitStatus() {
        let mistakes: [CordonError.Code] = [.usage, .invalidInput, .notFound, .conflict]
        let failures: [CordonError.Code] = [.checkFailed, .runFailed, .corruptJournal]
        for code in mistakes { #expect(code.exitStatus == 2, "\(code)") }
        for code in failures { #expect(code.exitStatus == 1, "\(code)") }
        #expect(Set(mistakes + failures).count == 7)
    }

    @Test func anErrorSaysWhatHappenedOrItsKind() {
        #expect(CordonError(.notFound, "no incident i-1").description == "no incident i-1")
        #expect(CordonError(.checkFailed).description == "check failed")
    }
}
