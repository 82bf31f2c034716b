import Foundation

// The finding formats that are not EventBridge events: CloudTrail records, GuardDuty
// findings (as the API or the CLI gives them) and Security Hub findings (ASFF), each
// wrapped into the event EventBridge would deliver for it.
extension FindingDecoder {
    // MARK: - CloudTrail

    static func isCloudTrailRecord(_ o: JSONObject) -> Bool {
        o["eventSource"]?.stringValue != nil && o["eventName"]?.stringValue != nil && o["eventTime"] != nil
    }

    func appendCloudTrail(_ record: JSONObject, origin: FindingOrigin, into result: inout DecodeResult) {
        guard let eventSource = record["eventSource"]?.stringValue, let eventTime = record["eventTime"]?.stringValue else {
            result.issues.append(DecodeIssue(origin: origin, message: "CloudTrail record with a non-string eventSource or eventTime"))
            return
        }
        let service = eventSource.hasSuffix(".amazonaws.com") ? String(eventSource.dropLast(".amazonaws.com".count)) : eventSource
        let detailType: String
        switch record["eventType"]?.stringValue {
        case "AwsConsoleSignIn"?: detailType = "AWS Console Sign In via CloudTrail"
        case "AwsServiceEvent"?: detailType = "AWS Service Event via CloudTrail"
        case "AwsCloudTrailInsight"?: detailType = "AWS Insight via CloudTrail"
        default: detailType = "AWS API Call via CloudTrail"
        }
        let account = record["recipientAccountId"]?.stringValue ?? record["userIdentity"]?["accountId"]?.stringValue
        var event = JSONObject()
        event["version"] = "0"
        event["id"] = .string(record["eventID"]?.stringValue ?? "cloudtrail-\(eventSource)-\(eventTime)")
        event["detail-type"] = .string(detailType)
        event["source"] = .string("aws." + service)
        event["account"] = account.map(JSONValue.string) ?? .null
        event["time"] = .string(eventTime)
        event["region"] = record["awsRegion"] ?? .null
        event["resources"] = .array([])
        event["detail"] = .object(record)
        result.findings.append(Finding(event: .object(event), format: .cloudTrailRecord, origin: origin))
    }

    // MARK: - GuardDuty and Security Hub

    /// Wraps a bare GuardDuty or ASFF finding; false when it is neither.
    func appendBareFinding(_ o: JSONObject, origin: FindingOrigin, into result: inout DecodeResult) -> Bool {
        if o["ProductArn"] != nil, o["AwsAccountId"] != nil, o["SchemaVersion"] != nil {
            result.findings.append(Finding(event: Self.wrapSecurityHub(o), format: .securityHubFinding, origin: origin))
            return true
        }
        if o["schemaVersion"] != nil, o["type"] != nil, o["accountId"] != nil, o["resource"] != nil {
            result.findings.append(Finding(event: Self.wrapGuardDuty(o), format: .guardDutyFinding, origin: origin))
            return true
        }
        if o["SchemaVersion"] != nil, o["Type"] != nil, o["AccountId"] != nil, o["Resource"] != nil {
            // The AWS CLI prints GuardDuty findings with PascalCase keys; EventBridge (and
            // so every playbook) uses the API's camelCase.
            guard case .object(let camel) = Self.camelCased(.object(o)) else { return false }
            result.findings.append(Finding(event: Self.wrapGuardDuty(camel), format: .guardDutyFinding, origin: origin))
            return true
        }
        return false
    }

    static func wrapGuardDuty(_ finding: JSONObject) -> JSONValue {
        var event = JSONObject()
        event["version"] = "0"
        event["id"] = finding["id"] ?? .null
        event["detail-type"] = "GuardDuty Finding"
        event["source"] = "aws.guardduty"
        event["account"] = finding["accountId"] ?? .null
        event["time"] = finding["updatedAt"] ?? finding["createdAt"] ?? .null
        event["region"] = finding["region"] ?? .null
        event["resources"] = .array([])
        event["detail"] = .object(finding)
        return .object(event)
    }

    static func wrapSecurityHub(_ finding: JSONObject) -> JSONValue {
        var event = JSONObject()
        event["version"] = "0"
        event["id"] = finding["Id"] ?? .null
        event["detail-type"] = "Security Hub Findings - Imported"
        event["source"] = "aws.securityhub"
        event["account"] = finding["AwsAccountId"] ?? .null
        event["time"] = finding["UpdatedAt"] ?? .null
        var region = finding["Region"]
        if region == nil, let arn = finding["ProductArn"]?.stringValue {
            let parts = arn.split(separator: ":", omittingEmptySubsequences: false)
            if parts.count > 3, !parts[3].isEmpty { region = .string(String(parts[3])) }
        }
        event["region"] = region ?? .null
        event["resources"] = finding["Id"].map { .array([$0]) } ?? .array([])
        event["detail"] = .object(["findings": .array([.object(finding)])])
        return .object(event)
    }

    /// Lower-cases the first letter of every key, recursively.
    static func camelCased(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let o):
            var out = JSONObject()
            for (key, member) in o {
                let camel = key.isEmpty ? key : key.prefix(1).lowercased() + key.dropFirst()
                out[camel] = camelCased(member)
            }
            return .object(out)
        case .array(let elements):
            return .array(elements.map(camelCased))
        default:
            return value
        }
    }
}
