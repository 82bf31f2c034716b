import CordonCloud
import CordonCore
import Foundation

/// The AWS services Cordon calls, with what signing, endpoints and errors need.
public enum AWSService: String, Sendable, CaseIterable {
    case ec2, iam, sts, s3, sns, sqs, cloudtrail, kms

    /// The signing name (credential scope service).
    public var signingName: String { rawValue }
    /// The IAM action prefix (`ec2:DescribeInstances`).
    public var iamPrefix: String { rawValue }
    /// The suffix of `AWS_ENDPOINT_URL_<SERVICE>`.
    public var endpointVariable: String { "AWS_ENDPOINT_URL_" + rawValue.uppercased() }
    /// The query API version (query-protocol services).
    public var apiVersion: String? {
        switch self {
        case .ec2: "2016-11-15"
        case .iam: "2010-05-08"
        case .sts: "2011-06-15"
        case .sns: "2010-03-31"
        case .sqs: "2012-11-05"
        case .s3, .cloudtrail, .kms: nil
        }
    }
}

/// Where a service is called and how the request is signed.
public struct AWSEndpoint: Sendable, Equatable {
    public var scheme: String
    /// Host, with `:port` when not the default.
    public var host: String
    /// A path prefix from a custom endpoint URL (usually empty).
    public var basePath: String
    /// The region in the credential scope (IAM: us-east-1).
    public var signingRegion: String

    public var url: String { "\(scheme)://\(host)\(basePath)" }

    /// Parses `http(s)://host[:port][/path]`.
    public init?(url: String, signingRegion: String) {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = components.host, !host.isEmpty
        else { return nil }
        self.scheme = scheme
        var h = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        if let port = components.port, !(scheme == "https" && port == 443), !(scheme == "http" && port == 80) { h += ":\(port)" }
        self.host = h
        var path = components.percentEncodedPath
        while path.hasSuffix("/") { path.removeLast() }
        self.basePath = path.removingPercentEncoding ?? path
        self.signingRegion = signingRegion
    }

    public init(scheme: String, host: String, basePath: String = "", signingRegion: String) {
        self.scheme = scheme
        self.host = host
        self.basePath = basePath
        self.signingRegion = signingRegion
    }
}

/// The SDKs' configuration conventions over an injectable environment: region,
/// endpoints (`AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`) and the shared files.
public struct AWSConfig: Sendable {
    public var environment: [String: String]

    /// - Parameter environment: normally `ProcessInfo.processInfo.environment`; tests pass their own.
    public init(environment: [String: String]) {
        self.environment = environment
    }

    /// The process environment.
    public static var process: AWSConfig { AWSConfig(environment: ProcessInfo.processInfo.environment) }

    func value(_ name: String) -> String? {
        guard let v = environment[name]?.trimmingWhitespace(), !v.isEmpty else { return nil }
        return v
    }

    /// The profile name: `AWS_PROFILE`, else `default`.
    public var profileName: String { value("AWS_PROFILE") ?? value("AWS_DEFAULT_PROFILE") ?? "default" }

    /// The region: the caller's (e.g. from the finding), else `AWS_REGION`, else
    /// `AWS_DEFAULT_REGION`, else the profile's `region`.
    public func region(_ explicit: String? = nil) throws(ActionError) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let r = value("AWS_REGION") ?? value("AWS_DEFAULT_REGION") { return r }
        if let r = (try? profiles())?.profile(profileName)?["region"], !r.isEmpty { return r }
        throw .permanent("NoRegion", "no AWS region: the finding names none; set AWS_REGION (or AWS_DEFAULT_REGION, or region in the AWS profile)")
    }

    /// The endpoint of a service in a region.
    public func endpoint(_ service: AWSService, region: String) throws(ActionError) -> AWSEndpoint {
        let signingRegion = Self.signingRegion(service, region: region)
        for name in [service.endpointVariable, "AWS_ENDPOINT_URL"] {
            if let url = value(name) {
                guard let endpoint = AWSEndpoint(url: url, signingRegion: signingRegion) else {
                    throw .permanent("InvalidEndpoint", "\(name)=\(url) is not an http(s) URL such as http://127.0.0.1:5000")
                }
                return endpoint
            }
        }
        let suffix = region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com"
        let host: String
        switch service {
        case .iam:
            if region.hasPrefix("cn-") {
                host = "iam.cn-north-1.amazonaws.com.cn"
            } else if region.hasPrefix("us-gov-") {
                host = "iam.us-gov.amazonaws.com"
            } else {
                host = "iam.amazonaws.com"
            }
        default:
            host = "\(service.rawValue).\(region).\(suffix)"
        }
        return AWSEndpoint(scheme: "https", host: host, signingRegion: signingRegion)
    }

    /// The credential-scope region: IAM is global and signed in its partition's home region.
    static func signingRegion(_ service: AWSService, region: String) -> String {
        guard service == .iam else { return region }
        if region.hasPrefix("cn-") { return "cn-north-1" }
        if region.hasPrefix("us-gov-") { return "us-gov-west-1" }
        return "us-east-1"
    }

    // MARK: - Shared files

    var home: String { value("HOME") ?? NSHomeDirectory() }

    /// `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`.
    public var credentialsFile: String { expand(value("AWS_SHARED_CREDENTIALS_FILE") ?? "~/.aws/credentials") }
    /// `AWS_CONFIG_FILE`, else `~/.aws/config`.
    public var configFile: String { expand(value("AWS_CONFIG_FILE") ?? "~/.aws/config") }

    func expand(_ path: String) -> String {
        if path == "~" { return home }
        if path.hasPrefix("~/") { return home + path.dropFirst(1) }
        return path
    }

    /// Both shared files, parsed (missing files are empty).
    public func profiles() throws(ActionError) -> AWSProfiles {
        func read(_ path: String) throws(ActionError) -> String? {
            guard FileManager.default.fileExists(atPath: path) else { return nil }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw .permanent("InvalidConfiguration", "cannot read \(path)")
            }
            return String(decoding: data, as: UTF8.self)
        }
        let credentials = try read(credentialsFile).map { AWSProfiles.parseINI($0, isConfig: false) } ?? [:]
        let config = try read(configFile).map { AWSProfiles.parseINI($0, isConfig: true) } ?? [:]
        return AWSProfiles(credentials: credentials, config: config, credentialsPath: credentialsFile, configPath: configFile)
    }
}

/// The profiles of `~/.aws/credentials` and `~/.aws/config`.
public struct AWSProfiles: Sendable {
    public var credentials: [String: [String: String]]
    public var config: [String: [String: String]]
    public var credentialsPath: String
    public var configPath: String

    /// A profile's settings, the credentials file's values over the config file's; nil when neither has it.
    public func profile(_ name: String) -> [String: String]? {
        let c = config[name]
        let k = credentials[name]
        if c == nil && k == nil { return nil }
        return (c ?? [:]).merging(k ?? [:]) { _, new in new }
    }

    /// INI sections → key/value maps. In the config file, `[profile x]` is profile x and
    /// `[default]` the default; other sections (`[sso-session x]`, `[services x]`) are skipped.
    static func parseINI(_ text: String, isConfig: Bool) -> [String: [String: String]] {
        var out: [String: [String: String]] = [:]
        var current: String?
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            let line = String(rawLine).trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") {
                guard let close = line.firstIndex(of: "]") else {
                    current = nil
                    continue
                }
                let name = String(line[line.index(after: line.startIndex)..<close]).trimmingWhitespace()
                if isConfig {
                    if name == "default" {
                        current = "default"
                    } else if name.hasPrefix("profile ") || name.hasPrefix("profile\t") {
                        current = String(name.dropFirst(8)).trimmingWhitespace()
                    } else {
                        current = nil
                    }
                } else {
                    current = name
                }
                if let current, out[current] == nil { out[current] = [:] }
                continue
            }
            guard let current, let eq = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<eq]).trimmingWhitespace().lowercased()
            var value = String(line[line.index(after: eq)...]).trimmingWhitespace()
            // Inline comments need whitespace before them (`key = v # c`).
            for marker in [" #", " ;", "\t#", "\t;"] {
                if let r = value.range(of: marker) { value = String(value[..<r.lowerBound]).trimmingWhitespace() }
            }
            out[current, default: [:]][key] = value
        }
        return out
    }
}
