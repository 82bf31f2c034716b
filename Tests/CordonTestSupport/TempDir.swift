import Foundation

/// A fresh temporary directory (`cordon-[name-]<uuid>`) to write files into; removed on
/// deinit only when asked to.
public final class TempDir: Sendable {
    public let url: URL
    private let removeOnDeinit: Bool

    public init(_ name: String? = nil, removeOnDeinit: Bool = false) throws {
        let prefix = name.map { "cordon-\($0)-" } ?? "cordon-"
        url = FileManager.default.temporaryDirectory.appendingPathComponent(prefix + UUID().uuidString)
        self.removeOnDeinit = removeOnDeinit
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    public var path: String { url.path }

    /// Writes `text` to `name` (creating its directories); the file's path.
    @discardableResult
    public func write(_ name: String, _ text: String) throws -> String {
        let file = url.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    deinit {
        if removeOnDeinit { try? FileManager.default.removeItem(at: url) }
    }
}
