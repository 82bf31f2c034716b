import CordonCloud
import CordonCore

/// Turns AWS error responses into `ActionError`s: the service's code and message,
/// retryable for throttling and 5xx, and for access errors the IAM action Cordon needs.
public enum AWSErrorMapper {
    /// Codes that mean "slow down": retryable whatever the status.
    public static let throttlingCodes: Set<String> = [
        "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException", "TooManyRequestsException",
        "ProvisionedThroughputExceededException", "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
        "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException",
        "ServiceUnavailable", "ServiceUnavailableException", "InternalError", "InternalFailure", "InternalServerError",
        "RequestTimeout", "RequestTimeoutException",
    ]

    /// Codes that mean the credentials lack a permission.
    public static let accessDeniedCodes: Set<String> = [
        "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError", "UnauthorizedAccess",
        "AuthorizationErrorException", "Forbidden",
    ]

    /// Maps a non-2xx response. `operation` is the API action (`DescribeInstances`).
    public static func error(service: AWSService, operation: String, status: Int, headers: [(name: String, value: String)], body: [UInt8])
        -> ActionError
    {
        var (code, message) = parse(body: body, headers: headers)
        if code == nil {
            // No body (HEAD, some S3 and proxy errors): name it from the status.
            code = switch status {
            case 400: "BadRequest"
            case 401: "Unauthorized"
            case 403: "AccessDenied"
            case 404: "NotFound"
            case 429: "TooManyRequestsException"
            case 500: "InternalError"
            case 502: "BadGateway"
            case 503: "ServiceUnavailable"
            case 504: "GatewayTimeout"
            default: "HTTP\(status)"
            }
        }
        let finalCode = code ?? "HTTP\(status)"
        var text = message ?? "HTTP \(status) from \(service.rawValue) \(operation)"
        if text.isEmpty { text = "HTTP \(status) from \(service.rawValue) \(operation)" }
        text = String(text.prefix(2000))
        if accessDeniedCodes.contains(finalCode) {
            text += " (Cordon needs \(iamAction(service: service, operation: operation)))"
        }
        let retryable = status >= 500 || status == 429 || throttlingCodes.contains(finalCode)
        return ActionError(code: finalCode, message: text, retryable: retryable)
    }

    /// The IAM action that authorizes an API operation: usually `service:Operation`;
    /// S3's `DeleteBucketPublicAccessBlock` is authorized by `s3:PutBucketPublicAccessBlock`,
    /// `GetObjectLockConfiguration` by `s3:GetBucketObjectLockConfiguration` and
    /// `ListObjectVersions` by `s3:ListBucketVersions`.
    public static func iamAction(service: AWSService, operation: String) -> String {
        switch (service, operation) {
        case (.s3, "DeleteBucketPublicAccessBlock"): "s3:PutBucketPublicAccessBlock"
        case (.s3, "GetObjectLockConfiguration"): "s3:GetBucketObjectLockConfiguration"
        case (.s3, "ListObjectVersions"): "s3:ListBucketVersions"
        default: "\(service.iamPrefix):\(operation)"
        }
    }

    /// The code and message of an error body: EC2 `<Response><Errors><Error>`, query
    /// `<ErrorResponse><Error>`, S3 `<Error>`, or JSON `{"__type", "message"}` with the
    /// `x-amzn-ErrorType` header.
    static func parse(body: [UInt8], headers: [(name: String, value: String)]) -> (code: String?, message: String?) {
        let headerType = headers.first { $0.name.lowercased() == "x-amzn-errortype" }?.value
        var code: String?
        var message: String?
        let first = body.first { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }
        if first == UInt8(ascii: "<"), let tree = XMLTree.parse(body) {
            let error = tree.name == "Error" ? tree : tree.descendant("Error")
            code = error?.nonEmpty("Code")
            message = error?.nonEmpty("Message")
        } else if first == UInt8(ascii: "{"), let json = try? JSONParser.parse(body) {
            code = json["__type"]?.stringValue ?? json["code"]?.stringValue ?? json["Code"]?.stringValue
            message = json["message"]?.stringValue ?? json["Message"]?.stringValue ?? json["errorMessage"]?.stringValue
        }
        if code == nil, let headerType { code = headerType }
        return (code.map(cleanCode), message)
    }

    /// `com.amazonaws.cloudtrail.v20131101#TrailNotFoundException` → `TrailNotFoundException`;
    /// `X:http://…` (header form) → `X`.
    static func cleanCode(_ raw: String) -> String {
        var c = Substring(raw.trimmingWhitespace())
        if let colon = c.firstIndex(of: ":") { c = c[..<colon] }
        if let hash = c.lastIndex(of: "#") { c = c[c.index(after: hash)...] }
        return String(c)
    }
}
