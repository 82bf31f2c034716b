import Foundation

/// Where Cordon keeps its state (`--data-dir`, default `./.cordon`).
public struct DataDirectory: Sendable {
    public let url: URL

    public init(_ path: String) { url = URL(fileURLWithPath: path) }

    public var journal: URL { url.appendingPathComponent("journal.sqlite") }
    public var evidence: URL { url.appendingPathComponent("evidence") }
    public var keys: URL { url.appendingPathComponent("keys") }
}
