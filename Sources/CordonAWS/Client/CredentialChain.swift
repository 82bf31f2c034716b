import CordonCloud
import CordonCore

/// Performs `sts:AssumeRole` with the given source credentials.
public typealias AssumeRoleFunction = @Sendable (AWSCredentials, AssumeRoleCredentialProvider.AssumeRoleInput) async throws(ActionError) -> AWSCredentials

/// The SDKs' default credential chain, over an injectable environment:
/// 1. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
/// 2. the profile `AWS_PROFILE` (default `default`) in `~/.aws/credentials` and
///    `~/.aws/config` (`AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`): static keys, or
///    `role_arn` + `source_profile` (+ `external_id`, `role_session_name`) to assume a role.
public enum CredentialChain {
    public static func provider(_ config: AWSConfig, assumeRole: @escaping AssumeRoleFunction) throws(ActionError) -> any CredentialProvider {
        let keyId = config.value("AWS_ACCESS_KEY_ID")
        let secret = config.value("AWS_SECRET_ACCESS_KEY")
        switch (keyId, secret) {
        case (let id?, let secret?):
            return StaticCredentialProvider(AWSCredentials(accessKeyId: id, secretAccessKey: secret, sessionToken: config.value("AWS_SESSION_TOKEN")))
        case (_?, nil):
            throw .permanent("NoCredentials", "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both, or neither and use AWS_PROFILE")
        case (nil, _?):
            throw .permanent("NoCredentials", "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both, or neither and use AWS_PROFILE")
        case (nil, nil):
            break
        }
        let profiles = try config.profiles()
        let name = config.profileName
        let explicit = config.value("AWS_PROFILE") != nil || config.value("AWS_DEFAULT_PROFILE") != nil
        guard profiles.profile(name) != nil else {
            if explicit {
                throw .permanent(
                    "NoCredentials", "AWS profile \"\(name)\" (from AWS_PROFILE) is in neither \(profiles.credentialsPath) nor \(profiles.configPath)")
            }
            throw .permanent(
                "NoCredentials",
                "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary keys) or AWS_PROFILE with a profile in \(profiles.credentialsPath) or \(profiles.configPath)"
            )
        }
        return try profileProvider(name, profiles, assumeRole: assumeRole, visited: [])
    }

    static func profileProvider(_ name: String, _ profiles: AWSProfiles, assumeRole: @escaping AssumeRoleFunction, visited: [String]) throws(ActionError)
        -> any CredentialProvider
    {
        guard let p = profiles.profile(name) else {
            throw .permanent("NoCredentials", "AWS profile \"\(name)\" (source_profile of \"\(visited.last ?? name)\") is in neither \(profiles.credentialsPath) nor \(profiles.configPath)")
        }
        if let roleArn = p["role_arn"], !roleArn.isEmpty {
            guard let source = p["source_profile"], !source.isEmpty else {
                throw .permanent(
                    "NoCredentials", "AWS profile \"\(name)\" has role_arn but no source_profile (credential_source is not supported): add source_profile = PROFILE")
            }
            if visited.contains(source) || visited.count > 8 {
                throw .permanent("NoCredentials", "AWS profile \"\(name)\": source_profile chain loops (\((visited + [name, source]).joined(separator: " -> ")))")
            }
            // A profile that is its own source uses its static keys.
            let sourceProvider: any CredentialProvider
            if source == name {
                sourceProvider = try staticKeys(name, p, profiles)
            } else {
                sourceProvider = try profileProvider(source, profiles, assumeRole: assumeRole, visited: visited + [name])
            }
            return AssumeRoleCredentialProvider(
                roleArn: roleArn, externalId: p["external_id"], sessionName: p["role_session_name"] ?? "cordon", source: sourceProvider, assume: assumeRole)
        }
        return try staticKeys(name, p, profiles)
    }

    static func staticKeys(_ name: String, _ p: [String: String], _ profiles: AWSProfiles) throws(ActionError) -> StaticCredentialProvider {
        guard let id = p["aws_access_key_id"], !id.isEmpty, let secret = p["aws_secret_access_key"], !secret.isEmpty else {
            throw .permanent(
                "NoCredentials",
                "AWS profile \"\(name)\" has no aws_access_key_id/aws_secret_access_key (nor role_arn with source_profile) in \(profiles.credentialsPath) or \(profiles.configPath)"
            )
        }
        let token = p["aws_session_token"].flatMap { $0.isEmpty ? nil : $0 }
        return StaticCredentialProvider(AWSCredentials(accessKeyId: id, secretAccessKey: secret, sessionToken: token))
    }
}
