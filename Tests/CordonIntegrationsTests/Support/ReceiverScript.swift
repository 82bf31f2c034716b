// The local receivers the tests talk to (Python 3, standard library only).
enum ReceiverScript {
    static let source = #"""
        # Local stand-ins for Slack, Teams, PagerDuty, Opsgenie and a generic webhook receiver:
        # each checks the request shape the service documents and answers as the service does.
        # Prints its port on the first line; exits when stdin closes. Every request is recorded
        # and served back by GET /_requests. Environment:
        #   RECEIVER_TLS_CERT/KEY   serve HTTPS with this (self-signed) certificate
        #   RECEIVER_WEBHOOK_SECRET the webhook signing key to verify Cordon-Signature with
        #   RECEIVER_PD_KEY, RECEIVER_OPSGENIE_KEY  the credentials to expect
        import base64, hashlib, hmac, json, os, ssl, sys, threading, time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit, parse_qs

        lock = threading.Lock()
        requests = []
        pd_alerts = {}        # dedup_key -> {"status": "triggered"|"resolved", "count": n}
        og_alerts = {}        # alias -> {"status": "open"|"closed", "count": n}
        seen_keys = {}        # Idempotency-Key -> deliveries
        counters = {}

        def slack_check(b):
            if not isinstance(b, dict): return "invalid_payload"
            if not isinstance(b.get("text"), str) or not b["text"]: return "no_text"
            blocks = b.get("blocks")
            if blocks is None: return None
            if not isinstance(blocks, list) or len(blocks) > 50: return "invalid_blocks"
            for bl in blocks:
                t = bl.get("type")
                if t == "header":
                    tx = bl.get("text", {})
                    if tx.get("type") != "plain_text" or not isinstance(tx.get("text"), str) or not (0 < len(tx["text"]) <= 150): return "invalid_blocks"
                elif t == "section":
                    tx, fields = bl.get("text"), bl.get("fields")
                    if tx is None and fields is None: return "invalid_blocks"
                    if tx is not None and (tx.get("type") not in ("mrkdwn", "plain_text") or not isinstance(tx.get("text"), str) or not (0 < len(tx["text"]) <= 3000)): return "invalid_blocks"
                    if fields is not None:
                        if not isinstance(fields, list) or len(fields) > 10: return "invalid_blocks"
                        for f in fields:
                            if f.get("type") not in ("mrkdwn", "plain_text") or not isinstance(f.get("text"), str) or not (0 < len(f["text"]) <= 2000): return "invalid_blocks"
                elif t == "context":
                    els = bl.get("elements")
                    if not isinstance(els, list) or not (0 < len(els) <= 10): return "invalid_blocks"
                    for e in els:
                        if e.get("type") not in ("mrkdwn", "plain_text", "image") or (e.get("type") != "image" and not isinstance(e.get("text"), str)): return "invalid_blocks"
                elif t == "divider":
                    pass
                else:
                    return "invalid_blocks"
            return None

        def teams_check(b):
            if not isinstance(b, dict) or b.get("type") != "message": return "type must be message"
            att = b.get("attachments")
            if not isinstance(att, list) or len(att) != 1: return "one attachment expected"
            a = att[0]
            if a.get("contentType") != "application/vnd.microsoft.card.adaptive": return "contentType"
            if "contentUrl" in a and a["contentUrl"] is not None: return "contentUrl must be null"
            c = a.get("content", {})
            if c.get("type") != "AdaptiveCard" or not isinstance(c.get("version"), str) or not isinstance(c.get("body"), list): return "not an AdaptiveCard"
            def walk(items):
                for el in items:
                    t = el.get("type")
                    if t == "TextBlock":
                        if not isinstance(el.get("text"), str) or not el["text"]: return "TextBlock without text"
                    elif t == "FactSet":
                        for f in el.get("facts", []):
                            if not isinstance(f.get("title"), str) or not isinstance(f.get("value"), str): return "fact title/value must be strings"
                    elif t == "Container":
                        r = walk(el.get("items", []))
                        if r: return r
                    else:
                        return "unknown element " + str(t)
                return None
            return walk(c["body"])

        def pd_check(b):
            if not isinstance(b, dict): return "Event object is invalid"
            if b.get("routing_key") != os.environ.get("RECEIVER_PD_KEY"): return "Invalid Routing Key"
            act = b.get("event_action")
            if act not in ("trigger", "acknowledge", "resolve"): return "'event_action' is invalid"
            dk = b.get("dedup_key")
            if dk is not None and (not isinstance(dk, str) or len(dk) > 255): return "'dedup_key' is invalid"
            if act == "trigger":
                p = b.get("payload")
                if not isinstance(p, dict): return "'payload' is missing"
                for k in ("summary", "source", "severity"):
                    if not isinstance(p.get(k), str) or not p[k]: return "'payload.%s' is missing or blank" % k
                if len(p["summary"]) > 1024: return "'payload.summary' is too long"
                if p["severity"] not in ("critical", "error", "warning", "info"): return "'payload.severity' is invalid"
                if "custom_details" in p and not isinstance(p["custom_details"], dict): return "custom_details"
            elif dk is None:
                return "'dedup_key' is required for " + act
            return None

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *a): pass

            def reply(self, code, body=b"", ctype="text/plain", headers=()):
                if isinstance(body, (dict, list)): body, ctype = json.dumps(body).encode(), "application/json"
                if isinstance(body, str): body = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers: self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/_requests":
                    with lock: self.reply(200, {"requests": requests, "pagerduty": pd_alerts, "opsgenie": og_alerts})
                else:
                    self.handle_any(b"")

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.handle_any(self.rfile.read(n))

            def handle_any(self, raw):
                url = urlsplit(self.path)
                parts = [p for p in url.path.split("/") if p]
                try: body = json.loads(raw) if raw else None
                except ValueError: body = None
                rec = {"method": self.command, "path": url.path, "query": url.query, "headers": dict(self.headers.items()),
                       "body": raw.decode("utf-8", "replace"), "verdict": None}
                with lock: requests.append(rec)
                def verdict(v): rec["verdict"] = v
                head = parts[0] if parts else ""
                if head == "slack":
                    err = slack_check(body) if self.headers.get("Content-Type", "").startswith("application/json") else "invalid_payload"
                    verdict(err or "ok")
                    return self.reply(400 if err else 200, err or "ok")
                if head == "teams":
                    err = teams_check(body)
                    verdict(err or "ok")
                    return self.reply(400 if err else 202, json.dumps({"error": err}) if err else "")
                if head == "pagerduty" and url.path.endswith("/v2/enqueue"):
                    err = pd_check(body)
                    verdict(err or "ok")
                    if err: return self.reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": [err]})
                    dk = body.get("dedup_key") or hashlib.sha1(raw).hexdigest()
                    with lock:
                        a = pd_alerts.setdefault(dk, {"status": "triggered", "count": 0, "events": 0})
                        a["events"] += 1
                        if body["event_action"] == "trigger":
                            if a["status"] != "triggered" or a["count"] == 0: a["count"] += 1
                            a["status"] = "triggered"
                        elif body["event_action"] == "resolve":
                            a["status"] = "resolved"
                    return self.reply(202, {"status": "success", "message": "Event processed", "dedup_key": dk})
                if head == "opsgenie":
                    if self.headers.get("Authorization") != "GenieKey " + os.environ.get("RECEIVER_OPSGENIE_KEY", ""):
                        verdict("bad key")
                        return self.reply(401, {"message": "Key format is not valid!", "took": 0.0, "requestId": "r"})
                    if url.path.endswith("/close"):
                        alias = parts[-2]
                        if parse_qs(url.query).get("identifierType") != ["alias"]: verdict("identifierType"); return self.reply(422, {"message": "identifierType"})
                        with lock: og_alerts.setdefault(alias, {"count": 0})["status"] = "closed"
                    else:
                        if not isinstance(body, dict) or not isinstance(body.get("message"), str) or not (0 < len(body["message"]) <= 130):
                            verdict("message"); return self.reply(422, {"message": "Message can not be empty or longer than 130", "took": 0.0, "requestId": "r"})
                        if len(body.get("alias", "")) > 512 or len(body.get("description", "")) > 15000: verdict("length"); return self.reply(422, {"message": "too long"})
                        if not isinstance(body.get("details", {}), dict) or any(not isinstance(v, str) for v in body.get("details", {}).values()):
                            verdict("details must be strings"); return self.reply(422, {"message": "details must be a map of strings"})
                        if body.get("priority") not in ("P1", "P2", "P3", "P4", "P5"): verdict("priority"); return self.reply(422, {"message": "priority"})
                        with lock:
                            a = og_alerts.setdefault(body.get("alias") or str(len(og_alerts)), {"count": 0, "status": "open"})
                            a["count"] += 1
                    verdict("ok")
                    return self.reply(202, {"result": "Request will be processed", "took": 0.01, "requestId": "req-1"})
                if head == "webhook":
                    sig = self.headers.get("Cordon-Signature", "")
                    secret = os.environ.get("RECEIVER_WEBHOOK_SECRET", "").encode()
                    items = dict(p.split("=", 1) for p in sig.split(",") if "=" in p)
                    t = items.get("t", "")
                    ok = t.isdigit() and abs(time.time() - int(t)) <= 300 and hmac.compare_digest(
                        hmac.new(secret, t.encode() + b"." + raw, hashlib.sha256).hexdigest(), items.get("v1", ""))
                    if not ok: verdict("bad signature"); return self.reply(401, "bad signature")
                    key = self.headers.get("Idempotency-Key")
                    if not key: verdict("no idempotency key"); return self.reply(400, "Idempotency-Key required")
                    with lock:
                        seen_keys[key] = seen_keys.get(key, 0) + 1
                        dup = seen_keys[key] > 1
                    verdict("duplicate" if dup else "ok")
                    return self.reply(200, {"received": True, "duplicate": dup})
                if head == "status":
                    # /status/CODE[/RETRY_AFTER]
                    extra = [("Retry-After", parts[2])] if len(parts) > 2 else []
                    return self.reply(int(parts[1]), {"error": "status %s" % parts[1]}, headers=extra)
                if head == "flaky":
                    # /flaky/ID/N/CODE/RETRY_AFTER: N failures with CODE, then 200
                    with lock:
                        c = counters[parts[1]] = counters.get(parts[1], 0) + 1
                    if c <= int(parts[2]):
                        return self.reply(int(parts[3]), "slow down", headers=[("Retry-After", parts[4])])
                    return self.reply(200, {"ok": True, "attempt": c})
                if head == "echo":
                    return self.reply(200, {"path": url.path, "query": url.query, "headers": dict(self.headers.items()), "body": raw.decode("utf-8", "replace")})
                if head == "big":
                    return self.reply(200, b"x" * (3 << 20))
                if head == "hang":
                    time.sleep(60)
                    return
                return self.reply(404, "no such route")

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        srv = Server(("127.0.0.1", 0), H)
        if os.environ.get("RECEIVER_TLS_CERT"):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(os.environ["RECEIVER_TLS_CERT"], os.environ["RECEIVER_TLS_KEY"])
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        print(srv.server_address[1], flush=True)
        sys.stdin.read()
        """#
}
