"""A DSR platform, in Python's standard library only (urllib, hmac, http.server).

Run by TestAPIFromPython (api_python_test.go), which starts
`mpgdpr worker --listen` against a fake Mixpanel, and passes in the
environment:
  API_URL        the worker's HTTP API (first stdout line of mpgdpr worker)
  API_KEY        an API key with the scopes file, read and export
  CALLBACK_KEY   the callbacks' signing key (the worker's [callbacks] key_file)
  CALLBACK_PORT  the loopback port to receive callbacks on (allowed in the config)
It files a retrieval and a deletion over HTTP, follows them to the end,
receives each one's callback and checks its signature, and downloads the
export, checking its SHA-256. Exits non-zero, with the reason, on the first
failed check.
"""

import hashlib
import hmac
import http.server
import json
import os
import queue
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

API = os.environ["API_URL"].rstrip("/")
KEY = os.environ["API_KEY"]
CALLBACK_KEY = os.environ["CALLBACK_KEY"].encode()
CALLBACK_PORT = int(os.environ["CALLBACK_PORT"])

# Loopback only: never through an http_proxy from the environment.
urllib.request.install_opener(urllib.request.build_opener(urllib.request.ProxyHandler({})))


def fail(why):
    print("FAIL:", why, file=sys.stderr)
    sys.exit(1)


def call(method, path, body=None, key=KEY):
    """One request; returns (status, headers, body bytes)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(API + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def call_json(method, path, body=None, key=KEY):
    status, headers, raw = call(method, path, body, key)
    return status, headers, json.loads(raw) if raw else None


def verify_signature(header, body, tolerance=300):
    """Check `t=<unix>,v1=<hex HMAC-SHA-256 of "<t>.<body>">` (Stripe's scheme)."""
    parts = {}
    for item in header.split(","):
        k, _, v = item.strip().partition("=")
        parts.setdefault(k, []).append(v)
    if "t" not in parts or "v1" not in parts:
        return False
    t = parts["t"][0]
    if abs(time.time() - int(t)) > tolerance:
        return False
    want = hmac.new(CALLBACK_KEY, t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(want, v) for v in parts["v1"])


notices = queue.Queue()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ok = verify_signature(self.headers.get("Mpgdpr-Signature", ""), body)
        notices.put((ok, json.loads(body) if body else None, self.headers))
        self.send_response(204 if ok else 400)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", CALLBACK_PORT), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
callback = "http://127.0.0.1:%d/dsr-callback" % CALLBACK_PORT

# 1. The API refuses a caller without a key, before anything else.
status, headers, problem = call_json("GET", "/v1/requests", key=None)
if status != 401:
    fail("no key: want 401, got %d" % status)
if not headers.get("Content-Type", "").startswith("application/problem+json"):
    fail("no key: want a problem, got " + headers.get("Content-Type", ""))

# 2. File a retrieval and a deletion; filing one again is a no-op (200).
requests = {
    "PY-SAR-1": {"kind": "retrieval", "compliance_type": "GDPR", "distinct_ids": ["py-person-1"]},
    "PY-DEL-1": {"kind": "deletion", "compliance_type": "GDPR", "distinct_ids": ["py-person-1", "py-person-2"]},
}
for ref, req in requests.items():
    body = dict(req, reference=ref, all_projects=True, callback_url=callback)
    status, _, res = call_json("POST", "/v1/requests", body)
    if status != 202:
        fail("file %s: want 202, got %d %s" % (ref, status, res))
    if not res.get("due"):
        fail("file %s: no due date in %s" % (ref, res))
    status, _, again = call_json("POST", "/v1/requests", body)
    if status != 200 or again.get("reference") != ref:
        fail("file %s again: want 200 and the same request, got %d %s" % (ref, status, again))
    other = dict(body, distinct_ids=["someone-else"])
    status, _, problem = call_json("POST", "/v1/requests", other)
    if status != 409:
        fail("other content under %s: want 409, got %d" % (ref, status))
    if "someone-else" in json.dumps(problem):
        fail("a problem quotes a distinct ID: %s" % problem)

# 3. Follow both to the end.
deadline = time.time() + 120
final = {}
while len(final) < len(requests):
    if time.time() > deadline:
        fail("not done in time: %s" % final)
    for ref in requests:
        status, _, st = call_json("GET", "/v1/requests/" + urllib.parse.quote(ref, safe=""))
        if status != 200:
            fail("status %s: %d %s" % (ref, status, st))
        if st["state"] in ("done", "failed", "unknown", "cancelled"):
            final[ref] = st
    time.sleep(0.2)
for ref, st in final.items():
    if st["state"] != "done":
        fail("%s ended %s" % (ref, st["state"]))

# 4. Each request's callback came, signed.
got = {}
while len(got) < len(requests):
    try:
        ok, notice, headers = notices.get(timeout=60)
    except queue.Empty:
        fail("callbacks missing: got %s" % sorted(got))
    if not ok:
        fail("a callback's signature does not verify")
    got[notice["reference"]] = notice
for ref in requests:
    if got.get(ref, {}).get("state") != "done":
        fail("callback for %s: %s" % (ref, got.get(ref)))

# 5. Download the retrieval's export from the path its status gives; its
#    SHA-256 is the one the status gives too.
sar = final["PY-SAR-1"]
downloads = 0
for item in sar["items"]:
    for task in item["tasks"]:
        export = task.get("export")
        if not export:
            continue
        status, headers, raw = call("GET", export["url"])
        if status != 200:
            fail("export %s: %d" % (export["url"], status))
        if hashlib.sha256(raw).hexdigest() != export["sha256"] or len(raw) != export["size"]:
            fail("export %s: size or SHA-256 differs from the status" % export["url"])
        if not raw.startswith(b"PK"):
            fail("export %s is not a zip" % export["url"])
        downloads += 1
if downloads == 0:
    fail("no export to download: %s" % sar)

print("ok: %d requests filed, followed, called back and %d exports downloaded" % (len(requests), downloads))
server.shutdown()
