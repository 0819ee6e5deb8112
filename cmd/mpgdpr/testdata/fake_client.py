"""Drive `mpgdpr fake` from Python's standard library only (urllib, zipfile).

Run by TestFakeFromPython (fake_python_test.go), which starts the fakes and
passes their addresses in the environment:
  FAKE_BIN         the mpgdpr binary: this script starts one fake itself,
                   as the README's pytest fixture does
  FAKE_RATE_API    the API URL of a fake started with --rate 0.01
  FAKE_OUT         a directory to save the export in (the Go test then
                   opens it with Info-ZIP unzip -P)
  MPGDPR_FAKE_*    the credentials both fakes accept
Exits non-zero, with the reason, on the first failed check.
"""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile

OAUTH = os.environ["MPGDPR_FAKE_OAUTH_TOKEN"]
PROJECT = os.environ["MPGDPR_FAKE_PROJECT_TOKEN"]
SECRET = os.environ["MPGDPR_FAKE_API_SECRET"]

# The fake is on loopback: never through an http_proxy from the environment.
urllib.request.install_opener(urllib.request.build_opener(urllib.request.ProxyHandler({})))


def start_fake(*args):
    """Start `mpgdpr fake --json`, return (process, first line as a dict)."""
    proc = subprocess.Popen(
        [os.environ["FAKE_BIN"], "fake", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return proc, json.loads(proc.stdout.readline())


def call(method, url, body=None, bearer=None):
    """One request; returns (status, headers, parsed JSON body or None)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if bearer:
        req.add_header("Authorization", "Bearer " + bearer)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, resp.headers, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, err.headers, (json.loads(raw) if raw else None)


def api(fake, method, path, body=None, token=PROJECT, bearer=OAUTH):
    url = fake["api_url"] + path + "?" + urllib.parse.urlencode({"token": token})
    return call(method, url, body, bearer)


def control(fake, method, path, body=None):
    return call(method, fake["control_url"] + path, body)


def check(cond, what, got=None):
    if not cond:
        sys.exit("FAIL: %s (got %r)" % (what, got))
    print("ok:", what)


def main():
    proc, fake = start_fake("--schedule", "manual")
    try:
        run(fake)
    finally:
        proc.terminate()
        check(proc.wait(timeout=30) == 0, "the fake stops with exit 0 on SIGTERM", proc.returncode)


def run(fake):
    # The five operations.
    code, _, body = api(fake, "POST", "/data-retrievals/v3.0", {"distinct_ids": ["py-1", "py-2"], "compliance_type": "GDPR"})
    check(code == 200 and body["results"]["task_id"], "create a retrieval", (code, body))
    rid = body["results"]["task_id"]
    code, _, body = api(fake, "POST", "/data-deletions/v3.0", {"distinct_ids": ["py-1"], "compliance_type": "CCPA"})
    check(code == 200, "create a deletion", (code, body))
    did = body["results"]["task_id"]
    code, _, body = api(fake, "GET", "/data-retrievals/v3.0/" + rid)
    check(code == 200 and body["results"]["status"] == "PENDING", "check a retrieval", body)
    code, _, body = api(fake, "GET", "/data-deletions/v3.0/" + did)
    check(code == 200 and body["results"]["distinct_ids"] == ["py-1"], "check a deletion", body)
    code, _, _ = api(fake, "DELETE", "/data-deletions/v3.0/" + did)
    check(code == 204, "cancel a pending deletion", code)

    # 409: a deletion of someone a running deletion covers.
    api(fake, "POST", "/data-deletions/v3.0", {"distinct_ids": ["py-3"], "compliance_type": "GDPR"})
    code, _, body = api(fake, "POST", "/data-deletions/v3.0", {"distinct_ids": ["py-3", "py-4"], "compliance_type": "GDPR"})
    check(code == 409 and body["error"]["conflicting_distinct_ids"] == ["py-3"], "409 names the conflicting id", (code, body))

    # Wrong credentials.
    check(api(fake, "GET", "/data-deletions/v3.0/" + did, bearer="wrong")[0] == 401, "401 for a wrong OAuth token")
    check(api(fake, "GET", "/data-deletions/v3.0/" + did, token="wrong")[0] == 403, "403 for a wrong project token")

    # A fault, once: the next check answers 503, the one after is normal.
    code, _, body = control(fake, "POST", "/faults", {"op": "checkRetrieval", "status": 503, "retry_after": "2"})
    check(code == 201 and body["left"] == 1, "inject a fault", (code, body))
    code, headers, _ = api(fake, "GET", "/data-retrievals/v3.0/" + rid)
    check(code == 503 and headers["Retry-After"] == "2", "the injected 503", code)
    check(api(fake, "GET", "/data-retrievals/v3.0/" + rid)[0] == 200, "then the real answer")

    # The manual schedule, advanced through the control API.
    for _ in range(3):
        code, _, body = control(fake, "POST", "/tasks/" + rid + "/advance")
        check(code == 200, "advance the retrieval", (code, body))
    code, _, body = control(fake, "POST", "/tasks/" + rid + "/advance")
    check(code == 409, "a finished task cannot advance", (code, body))
    code, _, body = api(fake, "GET", "/data-retrievals/v3.0/" + rid)
    link = body["results"]["download_url"]
    check(body["results"]["status"] == "SUCCESS" and link.startswith(fake["download_url"]), "the retrieval succeeded, with a link", body)

    # The export: downloaded with no credentials, opened as the privacy
    # integrations do (zipfile with the API secret as password).
    with urllib.request.urlopen(link, timeout=30) as resp:
        data = resp.read()
    path = os.path.join(os.environ["FAKE_OUT"], "export.zip")
    with open(path, "wb") as f:
        f.write(data)
    with zipfile.ZipFile(path) as z:
        names = sorted(z.namelist())
        check(names == ["events/py-1.json", "events/py-2.json", "profiles/py-1.json", "profiles/py-2.json"], "the export's files", names)
        events = json.loads(z.read("events/py-1.json", pwd=SECRET.encode()))
        check(events[0]["properties"]["distinct_id"] == "py-1", "the export decrypts with the API secret", events[0])

    # A request the document forbids: 400, and GET /_fake/violations says 409.
    code, _, body = api(fake, "POST", "/data-deletions/v3.0", {"distinct_ids": [], "compliance_type": "GDPR"})
    check(code == 400, "an empty id list is refused", (code, body))
    code, _, body = control(fake, "GET", "/violations")
    check(code == 409 and body["count"] == 1 and body["violations"][0]["op"] == "createDeletion", "the violation is reported", body)
    check(control(fake, "DELETE", "/violations")[0] == 204, "clear the violations")
    check(control(fake, "GET", "/violations")[0] == 200, "no violation left")

    # Recorded requests, without credential values.
    code, _, body = control(fake, "GET", "/requests")
    text = json.dumps(body)
    check(code == 200 and OAUTH not in text and PROJECT not in text and SECRET not in text, "requests are recorded without credentials", len(body["requests"]))
    check(any(r["op"] == "download" and r["bearer"] == "absent" for r in body["requests"]), "the download carried no credential")

    # Set a status, then reset everything.
    code, _, body = control(fake, "PUT", "/tasks/" + did + "/status", {"status": "NOT_FOUND"})
    check(code == 200 and body["status"] == "NOT_FOUND", "force a status", body)
    check(control(fake, "POST", "/reset")[0] == 204, "reset")
    check(control(fake, "GET", "/tasks")[2]["tasks"] == [], "no task after the reset")

    # 429 from the rate limit, on the fake started with --rate 0.01.
    rate = {"api_url": os.environ["FAKE_RATE_API"]}
    codes = [api(rate, "GET", "/data-deletions/v3.0/none")[0] for _ in range(2)]
    check(codes == [404, 429], "429 above the rate limit", codes)


if __name__ == "__main__":
    main()
