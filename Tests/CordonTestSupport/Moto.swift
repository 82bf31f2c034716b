import Foundation
import Synchronization

/// moto_server (moto 5, `ThreadedMotoServer`) on a free loopback port. A test that needs
/// moto fails, never skips, when it cannot start.
public enum Moto {
    public static let script = #"""
        import sys
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as e:
            print("error: moto is not installed (pip install 'moto[server]'): %s" % e, flush=True)
            sys.exit(1)
        \#(authorizationShim)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        print(server.get_host_and_port()[1], flush=True)
        sys.stdin.read()
        server.stop()
        """#

    /// Makes moto's IAM enforcement (`/moto-api/reset-auth`) closer to AWS's, where a
    /// policy that scopes resources or denies by resource is tested:
    /// - requests name their resource: IAM calls with a UserName the user's ARN (moto
    ///   gives one only for RoleName), SNS calls the topic's ARN, CloudTrail calls the
    ///   trail's ARN (moto evaluates all three against `*`);
    /// - `NotResource` is honoured (moto treats a statement without `Resource` as
    ///   matching everything);
    /// - `${aws:username}` resolves to the calling user's name, and a statement with it
    ///   matches nothing for a role session, which has no user name;
    /// - `*` and `?` are the only wildcards of a pattern (moto used it as a regex);
    /// - a bucket's public access block is authorized as `s3:GetBucketPublicAccessBlock`
    ///   and `s3:PutBucketPublicAccessBlock` (moto checked `s3:ListBucket` and
    ///   `s3:CreateBucket`, its key for them never matching the query string).
    static let authorizationShim = #"""
        import contextvars, re
        from moto.iam import access_control as _ac
        from moto.iam.responses import IamResponse as _IAM
        from moto.sns.responses import SNSResponse as _SNS
        from moto.cloudtrail.responses import CloudTrailResponse as _Trail

        _caller = contextvars.ContextVar("cordon_caller", default=None)

        def _pattern(text):
            return re.escape(text).replace(r"\*", ".*").replace(r"\?", ".")

        def _match(pattern, string):
            if "${aws:username}" in pattern:
                user = _caller.get()
                if user is None:
                    return None
                regex = re.escape(user).join(_pattern(p) for p in pattern.split("${aws:username}"))
            else:
                regex = _pattern(pattern)
            return re.match("^" + regex + "$", string)
        _ac.IAMPolicyStatement._match = staticmethod(_match)

        from moto.s3 import responses as _s3
        for _method, _verb in (("GET", "Get"), ("PUT", "Put"), ("DELETE", "Delete")):
            _s3.ACTION_MAP["BUCKET"][_method].pop("public_access_block", None)
            _s3.ACTION_MAP["BUCKET"][_method]["publicAccessBlock"] = _verb + "BucketPublicAccessBlock"

        _check = _ac.IAMRequestBase.check_action_permitted
        def _check_action_permitted(self, resource):
            token = _caller.set(getattr(self._access_key, "_owner_user_name", None))
            try:
                return _check(self, resource)
            finally:
                _caller.reset(token)
        _ac.IAMRequestBase.check_action_permitted = _check_action_permitted

        _statement = _ac.IAMPolicyStatement.is_action_permitted
        def _is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
            s = self._statement
            if "NotResource" in s and "Resource" not in s and "Condition" not in s and "Principal" not in s:
                if "NotAction" in s:
                    concerned = not self._check_element_matches("NotAction", action)
                else:
                    concerned = self._check_element_matches("Action", action)
                if not concerned or self._check_element_matches("NotResource", resource):
                    return _ac.PermissionResult.NEUTRAL
                return _ac.PermissionResult.PERMITTED if s["Effect"] == "Allow" else _ac.PermissionResult.DENIED
            return _statement(self, action, resource, principal, incoming_condition_values)
        _ac.IAMPolicyStatement.is_action_permitted = _is_action_permitted

        _iam_resource = _IAM._determine_resource
        def _iam_determine_resource(self):
            resource = _iam_resource(self)
            names = self.data.get("UserName") if isinstance(self.data, dict) else None
            if resource == "*" and names:
                name = names[0] if isinstance(names, list) else names
                try:
                    return self.backend.get_user(name).arn
                except Exception:
                    return "arn:%s:iam::%s:user/%s" % (self.partition, self.current_account, name)
            return resource
        _IAM._determine_resource = _iam_determine_resource

        def _sns_determine_resource(self):
            return self._get_param("TopicArn") or self._get_param("TargetArn") or "*"
        _SNS._determine_resource = _sns_determine_resource

        def _trail_determine_resource(self):
            name = self._get_param("Name")
            if not name:
                return "*"
            if name.startswith("arn:"):
                return name
            return "arn:%s:cloudtrail:%s:%s:trail/%s" % (self.partition, self.region, self.current_account, name)
        _Trail._determine_resource = _trail_determine_resource
        """#

    private static let started = Mutex<Result<PythonServer, TestFailure>?>(nil)

    /// The server shared by every test in the process, started on first use (blocking:
    /// from async code, call it through `offPool`).
    public static func server() throws -> PythonServer {
        try started.withLock { started in
            if started == nil {
                do {
                    started = .success(try PythonServer(name: "moto", script: script))
                } catch let e as TestFailure {
                    started = .failure(e)
                } catch {
                    started = .failure(TestFailure("cannot start python3: \(error)"))
                }
            }
            return try started!.get()
        }
    }

    /// A moto_server of its own (a test that seeds a whole inventory, or turns on IAM
    /// enforcement, must not share state with the others). Blocking.
    public static func dedicated(_ name: String) throws -> PythonServer {
        try PythonServer(name: "moto-\(name)", script: script)
    }

    /// The environment for a moto server on `port` (every service), with dummy
    /// credentials and no home directory (so no ~/.aws config).
    public static func environment(port: Int, _ extra: [String: String] = [:]) -> [String: String] {
        var env = [
            "AWS_ENDPOINT_URL": "http://127.0.0.1:\(port)",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "HOME": "/nonexistent",
        ]
        for (k, v) in extra { env[k] = v }
        return env
    }

    /// The environment for the shared server (started if need be).
    public static func environment(_ extra: [String: String] = [:]) throws -> [String: String] {
        environment(port: try server().port, extra)
    }
}
