import Foundation
import Testing

@testable import CordonCore
import CordonIntegrations

/// Every shipped playbook has fixtures proving it fires (Fixtures/playbooks/NAME/fires-*)
/// and near-misses proving it does not fire too widely (near-miss-*).
@Suite struct ShippedPlaybookTests {
    @Test func eachPlaybookFiresOnItsFixturesAndNotOnItsNearMisses() throws {
        let root = TestPaths.packageRoot
        let loaded = ConfigLoader(actions: .builtIn).load([root.appendingPathComponent("Playbooks").path], integrationPaths: [root.appendingPathComponent("Integrations").path])
        #expect(loaded.isValid, Comment(rawValue: loaded.diagnostics.map(\.description).joined(separator: "\n")))
        #expect(loaded.playbooks.count >= 6)
        let set = PatternSet(loaded.playbooks.map(\.trigger))
        var matcher = set.makeMatcher()
        let decoder = FindingDecoder()
        for (index, playbook) in loaded.playbooks.enumerated() {
            let dir = TestPaths.fixtures.appendingPathComponent("playbooks/\(playbook.name)")
            let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            let fires = files.filter { $0.hasPrefix("fires") }.sorted()
            let misses = files.filter { $0.hasPrefix("near-miss") }.sorted()
            #expect(!fires.isEmpty, "\(playbook.name) has no fires-* fixture in \(dir.path)")
            #expect(!misses.isEmpty, "\(playbook.name) has no near-miss-* fixture in \(dir.path)")
            for (file, shouldFire) in fires.map({ ($0, true) }) + misses.map({ ($0, false) }) {
                let result = decoder.decode(fileAtPath: dir.appendingPathComponent(file).path)
                #expect(result.issues.isEmpty, "\(file): \(result.issues)")
                #expect(!result.findings.isEmpty, "\(file): no findings")
                for finding in result.findings {
                    let fired = matcher.matches(event: finding.event).contains(index)
                    #expect(fired == shouldFire, "\(playbook.name)/\(file): expected \(shouldFire ? "to fire" : "not to fire")")
                }
            }
        }
    }
}
