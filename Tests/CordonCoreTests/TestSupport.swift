import Foundation

@testable import CordonCore

enum TestPaths {
    /// The package root (two levels above this file).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// `../shared` beside the repository, or `CORDON_SHARED_DIR`.
    static let shared: URL = {
        if let dir = ProcessInfo.processInfo.environment["CORDON_SHARED_DIR"] { return URL(fileURLWithPath: dir) }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
    }()

    static let fixtures = packageRoot.appendingPathComponent("Fixtures")
}

func json(_ text: String) throws -> JSONValue { try JSONParser.parse(text) }

func readBytes(_ url: URL) throws -> [UInt8] { Array(try Data(contentsOf: url)) }
