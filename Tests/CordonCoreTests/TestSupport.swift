import Foundation

@testable import CordonCore

enum TestPaths {
    /// The package root (two levels above this file).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static let fixtures = packageRoot.appendingPathComponent("Fixtures")
}

func json(_ text: String) throws -> JSONValue { try JSONParser.parse(text) }

func readBytes(_ url: URL) throws -> [UInt8] { Array(try Data(contentsOf: url)) }
