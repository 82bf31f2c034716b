import CordonCore
import Foundation

/// Converts between Codable models and CordonCore's `JSONValue` (sorted keys, so that
/// the same state always gives the same bytes and the same journal).
package enum JSONBridge {
    package static func value<T: Encodable>(_ model: T) -> JSONValue {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(model), let value = try? JSONParser.parse(Array(data)) else { return .null }
        return value
    }

    package static func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) -> T? {
        try? JSONDecoder().decode(type, from: Data(JSONWriter.bytes(value)))
    }
}

/// Times as AWS writes them.
package enum AWSTime {
    /// `2026-03-10T01:30:00.000Z`: ISO 8601 UTC with milliseconds, as the IAM console
    /// writes `aws:TokenIssueTime`.
    package static func iso8601Millis(_ date: Date) -> String {
        let micro = Timestamp.string(date)  // 2026-03-10T01:30:00.123456Z
        guard micro.count == 27 else { return micro }
        return String(micro.prefix(23)) + "Z"
    }

    /// `2026-03-10T01:30:00Z`.
    package static func iso8601(_ date: Date) -> String {
        let micro = Timestamp.string(date)
        guard micro.count == 27 else { return micro }
        return String(micro.prefix(19)) + "Z"
    }
}
