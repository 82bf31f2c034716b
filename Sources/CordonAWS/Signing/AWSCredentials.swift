import CordonCloud
import CordonCore

/// An access key pair, with a session token for temporary credentials.
///
/// Printing it never shows the secret or the token: `description`, `debugDescription`
/// and the reflection mirror (`dump`) redact them.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var accessKeyId: String
    public var secretAccessKey: String
    public var sessionToken: String?
    /// When temporary credentials expire (nil: long-term credentials).
    public var expiration: AWSDate?

    public init(accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil, expiration: AWSDate? = nil) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
    }

    public var description: String {
        var parts = ["accessKeyId: \(accessKeyId)", "secretAccessKey: <redacted>"]
        if sessionToken != nil { parts.append("sessionToken: <redacted>") }
        if let expiration { parts.append("expiration: \(expiration.timestamp)") }
        return "AWSCredentials(\(parts.joined(separator: ", ")))"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(self, children: ["accessKeyId": accessKeyId, "secretAccessKey": "<redacted>", "sessionToken": sessionToken == nil ? "nil" : "<redacted>"])
    }

    /// The secret values, for redaction from journals and logs.
    public var secrets: [String] { [secretAccessKey] + (sessionToken.map { [$0] } ?? []) }
}

/// Something that hands out credentials (static keys, a profile, an assumed role).
public protocol CredentialProvider: Sendable {
    func credentials() async throws(ActionError) -> AWSCredentials
}

/// Fixed credentials.
public struct StaticCredentialProvider: CredentialProvider {
    public let value: AWSCredentials
    public init(_ value: AWSCredentials) { self.value = value }
    public func credentials() async throws(ActionError) -> AWSCredentials { value }
}

/// Temporary credentials from `sts:AssumeRole`, cached until five minutes before they
/// expire. Concurrent callers share one refresh.
public actor AssumeRoleCredentialProvider: CredentialProvider {
    public nonisolated let roleArn: String
    public nonisolated let externalId: String?
    public nonisolated let sessionName: String
    private let source: any CredentialProvider
    private let assume: @Sendable (AWSCredentials, AssumeRoleInput) async throws(ActionError) -> AWSCredentials
    private let clock: @Sendable () -> AWSDate
    private var cached: AWSCredentials?
    private var refresh: Task<Result<AWSCredentials, ActionError>, Never>?

    /// What AssumeRole is asked.
    public struct AssumeRoleInput: Sendable, Equatable {
        public var roleArn: String
        public var sessionName: String
        public var externalId: String?
        public var durationSeconds: Int
    }

    /// Refresh this long before expiry.
    public static let refreshMargin = 300

    /// - Parameters:
    ///   - source: the credentials that call AssumeRole.
    ///   - assume: performs the AssumeRole call (normally `STSClient.assumeRole`).
    public init(
        roleArn: String, externalId: String? = nil, sessionName: String = "cordon", source: any CredentialProvider,
        clock: @escaping @Sendable () -> AWSDate = { AWSDate.now() },
        assume: @escaping @Sendable (AWSCredentials, AssumeRoleInput) async throws(ActionError) -> AWSCredentials
    ) {
        self.roleArn = roleArn
        self.externalId = externalId
        self.sessionName = sessionName
        self.source = source
        self.assume = assume
        self.clock = clock
    }

    public func credentials() async throws(ActionError) -> AWSCredentials {
        if let cached, !needsRefresh(cached) { return cached }
        let task: Task<Result<AWSCredentials, ActionError>, Never>
        if let refresh {
            task = refresh
        } else {
            let source = self.source
            let assume = self.assume
            let input = AssumeRoleInput(roleArn: roleArn, sessionName: sessionName, externalId: externalId, durationSeconds: 3600)
            task = Task {
                do throws(ActionError) {
                    let base = try await source.credentials()
                    return .success(try await assume(base, input))
                } catch {
                    return .failure(error)
                }
            }
            refresh = task
        }
        let result = await task.value
        if refresh == task { refresh = nil }
        switch result {
        case .success(let creds):
            cached = creds
            return creds
        case .failure(let error):
            throw error
        }
    }

    private func needsRefresh(_ c: AWSCredentials) -> Bool {
        guard let exp = c.expiration else { return false }
        return clock().secondsSince1970 >= exp.secondsSince1970 - Self.refreshMargin
    }
}
