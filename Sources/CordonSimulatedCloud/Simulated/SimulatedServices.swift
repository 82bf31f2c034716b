import CordonAWS
import CordonCloud
import CordonCore

/// IAM of one account of the simulated cloud (global: the region is only recorded).
struct SimulatedIAM: IAMAPI {
    let cloud: SimulatedCloud
    let account: String
    let region: String

    private func call<T: Sendable>(_ name: String, _ body: (inout SimAccount, inout SimulatedCloud.Context) throws(ActionError) -> T) async throws(ActionError) -> T {
        try await cloud.perform(SimOperation("iam", name), account: account, region: region, body)
    }

    static func userNotFound(_ name: String) -> ActionError { .permanent("NoSuchEntity", "The user with name \(name) cannot be found.") }

    static func checkExists(_ a: SimAccount, _ p: Principal) throws(ActionError) {
        switch p {
        case .user(let name): guard a.users[name] != nil else { throw userNotFound(name) }
        case .role(let name): guard a.roles[name] != nil else { throw .permanent("NoSuchEntity", "The role with name \(name) cannot be found.") }
        }
    }

    private func verb(_ p: Principal, _ verb: String) -> String {
        switch p {
        case .user: "\(verb)UserPolicy"
        case .role: "\(verb)RolePolicy"
        }
    }

    func inlinePolicy(_ principal: Principal, name: String) async throws(ActionError) -> String? {
        try await call(verb(principal, "Get")) { (a, _) throws(ActionError) in
            try Self.checkExists(a, principal)
            switch principal {
            case .user(let u): return a.users[u]?.inlinePolicies[name]
            case .role(let r): return a.roles[r]?.inlinePolicies[name]
            }
        }
    }

    func putInlinePolicy(_ principal: Principal, name: String, document: String) async throws(ActionError) {
        try await call(verb(principal, "Put")) { (a, _) throws(ActionError) in
            try Self.checkExists(a, principal)
            guard !name.isEmpty, name.count <= 128 else { throw .permanent("ValidationError", "The specified value for policyName is invalid.") }
            guard case .object? = try? JSONParser.parse(document) else {
                throw .permanent("MalformedPolicyDocument", "Syntax errors in policy.")
            }
            switch principal {
            case .user(let u): a.users[u]?.inlinePolicies[name] = document
            case .role(let r): a.roles[r]?.inlinePolicies[name] = document
            }
        }
    }

    func deleteInlinePolicy(_ principal: Principal, name: String) async throws(ActionError) {
        try await call(verb(principal, "Delete")) { (a, _) throws(ActionError) in
            try Self.checkExists(a, principal)
            switch principal {
            case .user(let u): a.users[u]?.inlinePolicies[name] = nil
            case .role(let r): a.roles[r]?.inlinePolicies[name] = nil
            }
        }
    }

    func listAccessKeys(userName: String) async throws(ActionError) -> [AccessKey] {
        try await call("ListAccessKeys") { (a, _) throws(ActionError) in
            guard let user = a.users[userName] else { throw Self.userNotFound(userName) }
            return user.accessKeys
        }
    }

    func updateAccessKey(userName: String, accessKeyId: String, status: String) async throws(ActionError) {
        try await call("UpdateAccessKey") { (a, _) throws(ActionError) in
            guard let user = a.users[userName] else { throw Self.userNotFound(userName) }
            guard status == "Active" || status == "Inactive" else {
                throw .permanent("ValidationError", "1 validation error detected: Value '\(status)' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]")
            }
            guard let i = user.accessKeys.firstIndex(where: { $0.id == accessKeyId }) else {
                throw .permanent("NoSuchEntity", "The Access Key with id \(accessKeyId) cannot be found.")
            }
            a.users[userName]?.accessKeys[i].status = status
        }
    }

    func loginProfile(userName: String) async throws(ActionError) -> LoginProfile? {
        try await call("GetLoginProfile") { (a, _) throws(ActionError) in
            guard let user = a.users[userName] else { throw Self.userNotFound(userName) }
            return user.loginProfile
        }
    }

    func deleteLoginProfile(userName: String) async throws(ActionError) {
        try await call("DeleteLoginProfile") { (a, _) throws(ActionError) in
            guard let user = a.users[userName] else { throw Self.userNotFound(userName) }
            guard user.loginProfile != nil else { throw .permanent("NoSuchEntity", "Login Profile for User \(userName) cannot be found.") }
            a.users[userName]?.loginProfile = nil
        }
    }
}

/// S3 (bucket-level Block Public Access) of one account of the simulated cloud.
struct SimulatedS3: S3API {
    let cloud: SimulatedCloud
    let account: String
    let region: String

    private func call<T: Sendable>(_ name: String, iam: String, bucket: String, _ body: (inout SimBucket) throws(ActionError) -> T) async throws(ActionError) -> T {
        try await cloud.perform(SimOperation("s3", name, iam: iam), account: account, region: region) { (a, _) throws(ActionError) -> T in
            guard var b = a.buckets[bucket] else { throw .permanent("NoSuchBucket", "The specified bucket does not exist") }
            let value = try body(&b)
            a.buckets[bucket] = b
            return value
        }
    }

    func publicAccessBlock(bucket: String) async throws(ActionError) -> PublicAccessBlock? {
        try await call("GetPublicAccessBlock", iam: "GetBucketPublicAccessBlock", bucket: bucket) { (b) throws(ActionError) in b.publicAccessBlock }
    }

    func putPublicAccessBlock(bucket: String, _ configuration: PublicAccessBlock) async throws(ActionError) {
        try await call("PutPublicAccessBlock", iam: "PutBucketPublicAccessBlock", bucket: bucket) { (b) throws(ActionError) in b.publicAccessBlock = configuration }
    }

    /// AWS authorizes DeletePublicAccessBlock with s3:PutBucketPublicAccessBlock.
    func deletePublicAccessBlock(bucket: String) async throws(ActionError) {
        try await call("DeletePublicAccessBlock", iam: "PutBucketPublicAccessBlock", bucket: bucket) { (b) throws(ActionError) in b.publicAccessBlock = nil }
    }
}

/// CloudTrail in one account and region of the simulated cloud. Trails are named by
/// name or ARN; an ARN is looked up in its own region (as for a multi-Region trail).
struct SimulatedCloudTrail: CloudTrailAPI {
    let cloud: SimulatedCloud
    let account: String
    let region: String

    private func call<T: Sendable>(_ name: String, trail: String, _ body: (inout SimTrail) throws(ActionError) -> T) async throws(ActionError) -> T {
        let (account, region) = (self.account, self.region)
        return try await cloud.perform(SimOperation("cloudtrail", name), account: account, region: region) { (a, _) throws(ActionError) -> T in
            var home = region
            var trailName = trail
            if trail.hasPrefix("arn:") {
                let parts = trail.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false).map(String.init)
                guard parts.count == 6, parts[2] == "cloudtrail", parts[5].hasPrefix("trail/") else {
                    throw .permanent("InvalidTrailNameException", "Trail name or ARN can only contain uppercase letters, lowercase letters, numbers, periods (.), hyphens (-), and underscores (_).")
                }
                guard parts[4] == account else { throw Self.notFound(trail, account) }
                home = parts[3]
                trailName = String(parts[5].dropFirst("trail/".count))
            }
            guard var t = a.regions[home]?.trails[trailName] else {
                throw Self.notFound(trail.hasPrefix("arn:") ? trail : "arn:aws:cloudtrail:\(region):\(account):trail/\(trail)", account)
            }
            let value = try body(&t)
            a.regions[home]?.trails[trailName] = t
            return value
        }
    }

    static func notFound(_ arn: String, _ account: String) -> ActionError {
        .permanent("TrailNotFoundException", "Unknown trail: \(arn) for the user: \(account)")
    }

    func isLogging(trail: String) async throws(ActionError) -> Bool {
        try await call("GetTrailStatus", trail: trail) { (t) throws(ActionError) in t.isLogging }
    }

    func startLogging(trail: String) async throws(ActionError) {
        try await call("StartLogging", trail: trail) { (t) throws(ActionError) in t.isLogging = true }
    }

    func stopLogging(trail: String) async throws(ActionError) {
        try await call("StopLogging", trail: trail) { (t) throws(ActionError) in t.isLogging = false }
    }
}

/// SNS in one account and region of the simulated cloud; published messages are kept.
struct SimulatedSNS: SNSAPI {
    let cloud: SimulatedCloud
    let account: String
    let region: String

    func publish(topicArn: String, message: String, subject: String?) async throws(ActionError) -> String {
        let (account, region) = (self.account, self.region)
        return try await cloud.perform(SimOperation("sns", "Publish"), account: account, region: region) { (a, c) throws(ActionError) -> String in
            let parts = topicArn.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 6, parts[0] == "arn", parts[2] == "sns", !parts[5].isEmpty else {
                throw .permanent("InvalidParameter", "Invalid parameter: TopicArn")
            }
            guard parts[3] == region else {
                throw .permanent("InvalidParameter", "Invalid parameter: TopicArn (the topic is in \(parts[3]), the call went to \(region))")
            }
            guard parts[4] == account, a.regions[region]?.topics[parts[5]] != nil else { throw .permanent("NotFound", "Topic does not exist") }
            guard !message.isEmpty else { throw .permanent("InvalidParameter", "Invalid parameter: Empty message") }
            guard message.utf8.count <= 262_144 else { throw .permanent("InvalidParameter", "Invalid parameter: Message too long") }
            if let subject {
                guard !subject.isEmpty, subject.count <= 100, subject.unicodeScalars.allSatisfy({ $0.isASCII && $0.value >= 32 && $0.value < 127 }) else {
                    throw .permanent("InvalidParameter", "Invalid parameter: Subject")
                }
            }
            let id = c.nextUUID()
            a.regions[region]?.topics[parts[5]]?.messages.append(PublishedMessage(messageId: id, subject: subject, message: message, time: AWSTime.iso8601Millis(c.now)))
            return id
        }
    }
}
