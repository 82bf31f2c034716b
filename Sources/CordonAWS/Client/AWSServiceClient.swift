import CordonCloud
import CordonCore
import Crypto
import Foundation

/// One service in one region: builds, signs and sends requests in the service's protocol
/// (query, JSON 1.1 or REST-XML) and maps error responses.
public struct AWSServiceClient: Sendable {
    public let service: AWSService
    public let endpoint: AWSEndpoint
    public let credentials: any CredentialProvider
    public let http: AWSHTTPClient
    /// The signing clock (tests fix it).
    public var clock: @Sendable () -> AWSDate = { AWSDate.now() }
    /// Told of every call after its answer (tests and `cordon iam-policy` checks).
    public var observer: AWSCallObserver?
    /// Faults injected into this client's calls (drills on a real endpoint); nil: none.
    public var faults: FaultInjector?
    /// Adds to an AWS error what explains it (the credentials' account is not the
    /// finding's, say); nil: the error as AWS said it.
    public var explain: (@Sendable (ActionError) async -> ActionError)?

    public init(service: AWSService, endpoint: AWSEndpoint, credentials: any CredentialProvider, http: AWSHTTPClient) {
        self.service = service
        self.endpoint = endpoint
        self.credentials = credentials
        self.http = http
    }

    var signer: SigV4Signer {
        service == .s3 ? .s3(region: endpoint.signingRegion) : SigV4Signer(service: service.signingName, region: endpoint.signingRegion)
    }

    /// Signs and sends; non-2xx responses throw the mapped AWS error.
    public func send(_ request: AWSRequest, operation: String, parameters: [(String, String)] = []) async throws(ActionError) -> AWSResponse {
        if let faults {
            let names = FaultInjector.names(service, operation)
            if let effect = faults.fire(operation: names.operation, iamAction: names.iamAction, aliases: names.aliases) {
                let error = FaultInjector.error(effect, service: service, operation: operation, iamAction: names.iamAction, region: endpoint.signingRegion)
                if case .timeout(let d) = effect { await faults.sleep(d) }
                observer?(AWSCall(service: service, operation: operation, parameters: parameters, errorCode: error.code))
                throw error
            }
        }
        var request = request
        let creds = try await credentials.credentials()
        signer.sign(&request, credentials: creds, date: clock())
        let response: AWSResponse
        do {
            response = try await http.send(request, service: service, operation: operation)
        } catch {
            observer?(AWSCall(service: service, operation: operation, parameters: parameters, errorCode: error.code))
            throw error
        }
        guard (200..<300).contains(response.status) else {
            let error = AWSErrorMapper.error(service: service, operation: operation, status: response.status, headers: response.headers, body: response.body)
            observer?(AWSCall(service: service, operation: operation, parameters: parameters, errorCode: error.code))
            if let explain { throw await explain(error) }
            throw error
        }
        observer?(AWSCall(service: service, operation: operation, parameters: parameters, errorCode: nil))
        return response
    }

    func baseRequest(method: String, path: String = "/") -> AWSRequest {
        var base = endpoint.basePath
        if base.hasSuffix("/") { base.removeLast() }
        return AWSRequest(method: method, scheme: endpoint.scheme, host: endpoint.host, path: base + path, headers: [("Host", endpoint.host)])
    }

    /// A query-protocol call (EC2, IAM, STS, SNS, SQS): `Action`, `Version` and the
    /// parameters form-encoded in a POST body; returns the parsed XML response.
    public func query(_ action: String, _ parameters: [(String, String)] = []) async throws(ActionError) -> XMLTree {
        var request = baseRequest(method: "POST")
        var pairs = [("Action", action)]
        if let version = service.apiVersion { pairs.append(("Version", version)) }
        pairs += parameters
        request.body = Array(pairs.map { Self.formEncode($0.0) + "=" + Self.formEncode($0.1) }.joined(separator: "&").utf8)
        request.headers.append(("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"))
        let response = try await send(request, operation: action, parameters: pairs)
        return try parseXML(response, operation: action)
    }

    /// `application/x-www-form-urlencoded` as botocore writes it: RFC 3986 unreserved
    /// characters as they are, a space as `+`, everything else percent-encoded. (AWS
    /// hashes the bytes it receives either way; servers that re-encode the parsed form
    /// before checking the signature, as moto does, expect exactly this.)
    static func formEncode(_ s: String) -> String {
        SigV4Signer.uriEncode(s, encodeSlash: true).replacingOccurrences(of: "%20", with: "+")
    }

    /// An AWS JSON call (1.1: CloudTrail; 1.0: SQS): `X-Amz-Target: <prefix>.<operation>`;
    /// returns the JSON body.
    public func json(targetPrefix: String, _ operation: String, _ body: JSONValue, version: String = "1.1") async throws(ActionError) -> JSONValue {
        var request = baseRequest(method: "POST")
        request.body = JSONWriter.bytes(body)
        request.headers.append(("Content-Type", "application/x-amz-json-\(version)"))
        request.headers.append(("X-Amz-Target", "\(targetPrefix).\(operation)"))
        let response = try await send(request, operation: operation)
        if response.body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return .object([:]) }
        do {
            return try JSONParser.parse(response.body)
        } catch {
            throw .permanent("InvalidResponse", "\(service.rawValue) \(operation) answered with JSON that does not parse: \(error)")
        }
    }

    /// A REST call (S3, path style): `path` is decoded (`/bucket`), `query` decoded pairs.
    public func rest(
        _ method: String, path: String, query: [(name: String, value: String)] = [], headers: [(name: String, value: String)] = [], body: [UInt8] = [],
        operation: String
    ) async throws(ActionError) -> AWSResponse {
        var request = baseRequest(method: method, path: path)
        request.query = query
        request.headers += headers
        request.body = body
        return try await send(request, operation: operation)
    }

    func parseXML(_ response: AWSResponse, operation: String) throws(ActionError) -> XMLTree {
        guard let tree = XMLTree.parse(response.body) else {
            throw .permanent("InvalidResponse", "\(service.rawValue) \(operation) answered with a body that is not XML (HTTP \(response.status), \(response.body.count) bytes)")
        }
        return tree
    }
}

/// One call as an `AWSCallObserver` sees it.
public struct AWSCall: Sendable, CustomStringConvertible {
    public var service: AWSService
    /// The API operation (`ModifyNetworkInterfaceAttribute`, `PutBucketPublicAccessBlock`…).
    public var operation: String
    /// The query parameters (query-protocol calls only).
    public var parameters: [(String, String)]
    /// The error code when the call failed.
    public var errorCode: String?

    /// The IAM action that authorizes the call (`ec2:CreateSnapshot`).
    public var iamAction: String { AWSErrorMapper.iamAction(service: service, operation: operation) }

    public func parameter(_ name: String) -> String? { parameters.first { $0.0 == name }?.1 }
    /// Values of a list parameter (`SecurityGroupId.1`, `SecurityGroupId.2`…), in order.
    public func list(_ prefix: String) -> [String] {
        var values: [String] = []
        var i = 1
        while let v = parameter("\(prefix).\(i)") {
            values.append(v)
            i += 1
        }
        return values
    }

    public var description: String { iamAction + (errorCode.map { " -> \($0)" } ?? "") }
}

public typealias AWSCallObserver = @Sendable (AWSCall) -> Void

/// Query-protocol parameter lists (`Name.1`, `Name.2`…).
package struct QueryParams {
    package var pairs: [(String, String)] = []

    package init() {}

    package mutating func add(_ name: String, _ value: String?) {
        if let value { pairs.append((name, value)) }
    }

    package mutating func addList(_ prefix: String, _ values: [String]) {
        for (i, v) in values.enumerated() { pairs.append(("\(prefix).\(i + 1)", v)) }
    }

    package mutating func addTags(_ prefix: String, _ tags: [Tag]) {
        for (i, t) in tags.enumerated() {
            pairs.append(("\(prefix).\(i + 1).Key", t.key))
            pairs.append(("\(prefix).\(i + 1).Value", t.value))
        }
    }

    /// `Filter.N.Name` / `Filter.N.Value.M`.
    package mutating func addFilters(_ filters: [(String, [String])]) {
        for (i, f) in filters.enumerated() {
            pairs.append(("Filter.\(i + 1).Name", f.0))
            for (j, v) in f.1.enumerated() { pairs.append(("Filter.\(i + 1).Value.\(j + 1)", v)) }
        }
    }
}
