import CordonCloud
import CordonCore
import Foundation
import NIOCore

/// How `AWSCloud` finds credentials and roles.
public struct AWSCloudOptions: Sendable {
    /// The environment (credentials, region, endpoints, profile files); tests inject their own.
    public var environment: [String: String]
    /// For calls into another account: the role to assume there, with `{account}` in
    /// place of the account id, e.g. `arn:aws:iam::{account}:role/CordonResponder`.
    /// nil: every account is reached with the default credentials.
    public var roleArnTemplate: String?
    public var externalId: String?
    public var roleSessionName: String
    /// For the HTTP client `AWSCloud` makes when it is given none.
    public var connectTimeout: TimeAmount
    /// For the HTTP client `AWSCloud` makes when it is given none.
    public var requestTimeout: TimeAmount
    /// Told of every service call (not of the STS calls that fetch credentials).
    public var observer: AWSCallObserver?
    /// Faults every service call may meet (drills on a local endpoint); nil: none.
    public var faults: FaultInjector?

    public init(
        environment: [String: String], roleArnTemplate: String? = nil, externalId: String? = nil, roleSessionName: String = "cordon",
        connectTimeout: TimeAmount = .seconds(5), requestTimeout: TimeAmount = .seconds(30), observer: AWSCallObserver? = nil,
        faults: FaultInjector? = nil
    ) {
        self.observer = observer
        self.faults = faults
        self.environment = environment
        self.roleArnTemplate = roleArnTemplate
        self.externalId = externalId
        self.roleSessionName = roleSessionName
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
    }

    /// The role ARN for an account, from the template.
    public func roleArn(account: String) -> String? {
        roleArnTemplate.map { $0.replacingOccurrences(of: "{account}", with: account) }
    }
}

/// The real AWS (or any endpoint that speaks its APIs, such as moto_server): signed
/// requests over one shared HTTP client. Call `shutdown()` when done.
public final class AWSCloud: FaultInjectableCloud {
    public var kind: String { "aws" }
    public let options: AWSCloudOptions
    public let config: AWSConfig
    public let http: AWSHTTPClient
    private let ownsHTTP: Bool
    private let providers: ProviderCache

    /// - Parameter http: a shared transport (the caller shuts it down); nil creates one
    ///   that `shutdown()` closes.
    public init(options: AWSCloudOptions, http: AWSHTTPClient? = nil) {
        self.options = options
        self.config = AWSConfig(environment: options.environment)
        if let http {
            self.http = http
            self.ownsHTTP = false
        } else {
            self.http = AWSHTTPClient(connectTimeout: options.connectTimeout, requestTimeout: options.requestTimeout)
            self.ownsHTTP = true
        }
        self.providers = ProviderCache()
    }

    /// Closes the HTTP client when this cloud created it.
    public func shutdown() async throws {
        if ownsHTTP { try await http.shutdown() }
    }

    /// AssumeRole through STS in the default region (else us-east-1).
    var assumeRoleFunction: AssumeRoleFunction {
        let config = self.config
        let http = self.http
        return { (creds: AWSCredentials, input: AssumeRoleCredentialProvider.AssumeRoleInput) async throws(ActionError) -> AWSCredentials in
            let region = (try? config.region()) ?? "us-east-1"
            let endpoint = try config.endpoint(.sts, region: region)
            let sts = AWSSTS(client: AWSServiceClient(service: .sts, endpoint: endpoint, credentials: StaticCredentialProvider(creds), http: http))
            return try await sts.assumeRole(input)
        }
    }

    /// The default credentials (environment, then profile).
    public func defaultCredentials() async throws(ActionError) -> any CredentialProvider {
        let config = self.config
        let assume = assumeRoleFunction
        return try await providers.base { () throws(ActionError) -> any CredentialProvider in
            try CredentialChain.provider(config, assumeRole: assume)
        }
    }

    /// The credentials for a scope: for another account with a role template, the role
    /// assumed there (cached per account until shortly before it expires).
    public func credentials(for scope: CloudScope) async throws(ActionError) -> any CredentialProvider {
        let base = try await defaultCredentials()
        guard let account = scope.account, let roleArn = options.roleArn(account: account) else { return base }
        let options = self.options
        let assume = assumeRoleFunction
        return await providers.role(account) {
            AssumeRoleCredentialProvider(
                roleArn: roleArn, externalId: options.externalId, sessionName: options.roleSessionName, source: base, assume: assume)
        }
    }

    /// A client for one service in the scope's region (the scope's, else the environment's).
    public func client(_ service: AWSService, _ scope: CloudScope) async throws(ActionError) -> AWSServiceClient {
        let region = try config.region(scope.region)
        let endpoint = try config.endpoint(service, region: region)
        var client = AWSServiceClient(service: service, endpoint: endpoint, credentials: try await credentials(for: scope), http: http)
        client.observer = options.observer
        client.faults = options.faults
        if let account = scope.account, options.roleArnTemplate == nil { client.explain = { await self.explainAccount(account, $0) } }
        return client
    }

    /// A resource not found (or access denied) in an account the default credentials are
    /// not of, with no role to assume there: the error says so, and how to reach it.
    func explainAccount(_ account: String, _ error: ActionError) async -> ActionError {
        guard error.code.hasSuffix("NotFound") || error.code.hasSuffix(".NotFound") || error.code == "NoSuchEntity" || error.code.contains("AccessDenied")
            || error.code == "UnauthorizedOperation"
        else { return error }
        guard let own = await providers.callerAccount(using: { () async throws(ActionError) -> String in
            try await self.sts(CloudScope(region: (try? self.config.region()) ?? "us-east-1")).getCallerIdentity().account
        }), own != account
        else { return error }
        var explained = error
        explained.message += " (the finding is in account \(account), but the credentials are account \(own)'s and no role is assumed there: give --assume-role-arn arn:aws:iam::{account}:role/NAME, or credentials of account \(account))"
        return explained
    }

    /// The same endpoint and credentials (and transport: shut this cloud down, not the
    /// answer), with `faults` applied to every service call.
    public func injecting(_ faults: FaultInjector) -> any Cloud {
        var options = self.options
        options.faults = faults
        return AWSCloud(options: options, http: http)
    }

    public func ec2(_ scope: CloudScope) async throws(ActionError) -> any EC2API { AWSEC2(client: try await client(.ec2, scope)) }
    public func iam(_ scope: CloudScope) async throws(ActionError) -> any IAMAPI { AWSIAM(client: try await client(.iam, scope)) }
    public func s3(_ scope: CloudScope) async throws(ActionError) -> any S3API { AWSS3(client: try await client(.s3, scope)) }
    public func cloudTrail(_ scope: CloudScope) async throws(ActionError) -> any CloudTrailAPI {
        AWSCloudTrail(client: try await client(.cloudtrail, scope))
    }
    public func sns(_ scope: CloudScope) async throws(ActionError) -> any SNSAPI { AWSSNS(client: try await client(.sns, scope)) }
    public func sts(_ scope: CloudScope) async throws(ActionError) -> AWSSTS { AWSSTS(client: try await client(.sts, scope)) }
}

/// Credential providers shared by every client of one `AWSCloud`.
actor ProviderCache {
    private var baseProvider: (any CredentialProvider)?
    private var roles: [String: any CredentialProvider] = [:]
    /// The default credentials' account, once asked (nil: not known, or STS failed).
    private var ownAccount: String??

    func callerAccount(using ask: @Sendable () async throws(ActionError) -> String) async -> String? {
        if let known = ownAccount { return known }
        let account = try? await ask()
        ownAccount = .some(account)
        return account
    }

    func base(_ make: () throws(ActionError) -> any CredentialProvider) throws(ActionError) -> any CredentialProvider {
        if let baseProvider { return baseProvider }
        let p = try make()
        baseProvider = p
        return p
    }

    func role(_ account: String, _ make: () -> any CredentialProvider) -> any CredentialProvider {
        if let p = roles[account] { return p }
        let p = make()
        roles[account] = p
        return p
    }
}
