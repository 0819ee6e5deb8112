//go:build unix

package main

// `mpgdpr fake` driven by a plain net/http client that knows nothing of
// the project: the view of a test suite in any other language.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// httpc is a client with no retries and no shared connections between
// tests.
func httpc() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
}

type call struct {
	code   int
	header http.Header
	body   []byte
	err    error
}

// do sends one request; body is JSON if not empty.
func do(t *testing.T, c *http.Client, method, u, bearer, body string) call {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		return call{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return call{code: resp.StatusCode, header: resp.Header, body: b, err: err}
}

// decode unmarshals a call's body, failing the test on a transport error.
func (c call) decode(t *testing.T, v any) call {
	t.Helper()
	if c.err != nil {
		t.Fatal(c.err)
	}
	if err := json.Unmarshal(c.body, v); err != nil {
		t.Fatalf("answer %d %q: %v", c.code, c.body, err)
	}
	return c
}

// mixpanel calls one API operation with the fake's credentials.
func mixpanel(t *testing.T, c *http.Client, f *fakeProc, method, path, body string) call {
	t.Helper()
	return do(t, c, method, f.ready.APIURL+path+"?token="+url.QueryEscape(fakeProject), fakeOAuth, body)
}

type apiTask struct {
	Status  string `json:"status"`
	Results struct {
		TaskID      string   `json:"task_id"`
		TrackingID  string   `json:"tracking_id"`
		Status      string   `json:"status"`
		DownloadURL string   `json:"download_url"`
		DistinctIDs []string `json:"distinct_ids"`
	} `json:"results"`
}

type apiConflict struct {
	Error struct {
		IDs   []string `json:"conflicting_distinct_ids"`
		Tasks []string `json:"conflicting_task_ids"`
	} `json:"error"`
}

type controlTasks struct {
	Tasks []struct {
		ID          string `json:"id"`
		Kind        string `json:"kind"`
		Status      string `json:"status"`
		DownloadURL string `json:"download_url"`
		Downloads   int    `json:"downloads"`
	} `json:"tasks"`
}

type controlViolations struct {
	Count      int `json:"count"`
	Violations []struct {
		Op      string `json:"op"`
		Message string `json:"message"`
	} `json:"violations"`
}

// TestFakeOverHTTP: every operation, a 409, faults, a manual schedule
// advanced through the control API, an export downloaded and decrypted by
// Info-ZIP unzip, and a violation reported (curl -f fails on it).
func TestFakeOverHTTP(t *testing.T) {
	t.Parallel()
	f := startFake(t, fakeEnv, "--json", "--schedule", "manual")
	c := httpc()
	if !strings.HasPrefix(f.ready.APIURL, "http://127.0.0.1:") || !strings.HasSuffix(f.ready.APIURL, "/api/app") ||
		f.ready.ControlURL != strings.TrimSuffix(f.ready.APIURL, "/api/app")+"/_fake" || f.ready.DownloadHost == "" || f.ready.PID != f.cmd.Process.Pid {
		t.Fatalf("first line %+v", f.ready)
	}

	// Create a retrieval (with the docs' trailing slash) and a deletion.
	var created apiTask
	if r := mixpanel(t, c, f, "POST", "/data-retrievals/v3.0/", `{"distinct_ids":["alice","bob"],"compliance_type":"GDPR"}`).decode(t, &created); r.code != 200 || created.Results.TaskID == "" {
		t.Fatalf("create retrieval: %d %s", r.code, r.body)
	}
	rid := created.Results.TaskID
	if r := mixpanel(t, c, f, "POST", "/data-deletions/v3.0", `{"distinct_ids":["alice"],"compliance_type":"CCPA"}`).decode(t, &created); r.code != 200 {
		t.Fatalf("create deletion: %d %s", r.code, r.body)
	}
	did := created.Results.TaskID

	// The same person again while that deletion runs: 409 naming it.
	var conflict apiConflict
	if r := mixpanel(t, c, f, "POST", "/data-deletions/v3.0", `{"distinct_ids":["alice","carol"],"compliance_type":"GDPR"}`).decode(t, &conflict); r.code != 409 ||
		strings.Join(conflict.Error.IDs, ",") != "alice" || strings.Join(conflict.Error.Tasks, ",") != did {
		t.Errorf("conflict: %d %s", r.code, r.body)
	}

	// The manual schedule: nothing moves until the control API says so.
	var task apiTask
	mixpanel(t, c, f, "GET", "/data-retrievals/v3.0/"+rid, "").decode(t, &task)
	if task.Results.Status != "PENDING" || task.Results.DownloadURL != "" {
		t.Errorf("new retrieval: %+v", task.Results)
	}
	if r := do(t, c, "POST", f.ready.ControlURL+"/tasks/"+rid+"/advance", "", ""); r.code != 200 {
		t.Errorf("advance: %d %s", r.code, r.body)
	}
	var tasks controlTasks
	for range 2 {
		do(t, c, "POST", f.ready.ControlURL+"/advance", "", "").decode(t, &tasks)
	}
	if len(tasks.Tasks) != 2 || tasks.Tasks[0].Status != "SUCCESS" || tasks.Tasks[1].Status != "STARTED" {
		t.Errorf("after advancing: %+v", tasks)
	}
	mixpanel(t, c, f, "GET", "/data-retrievals/v3.0/"+rid, "").decode(t, &task)
	link := task.Results.DownloadURL
	if task.Results.Status != "SUCCESS" || !strings.Contains(link, f.ready.DownloadHost) {
		t.Fatalf("finished retrieval: %+v (download host %s)", task.Results, f.ready.DownloadHost)
	}

	// A started deletion can no longer be cancelled: 405.
	if r := mixpanel(t, c, f, "DELETE", "/data-deletions/v3.0/"+did, ""); r.code != 405 {
		t.Errorf("cancel a STARTED deletion: %d %s", r.code, r.body)
	}
	// A new one, PENDING, can: 204, then REVOKED.
	mixpanel(t, c, f, "POST", "/data-deletions/v3.0", `{"distinct_ids":["dave"],"compliance_type":"GDPR"}`).decode(t, &created)
	if r := mixpanel(t, c, f, "DELETE", "/data-deletions/v3.0/"+created.Results.TaskID, ""); r.code != 204 {
		t.Errorf("cancel: %d %s", r.code, r.body)
	}
	if mixpanel(t, c, f, "GET", "/data-deletions/v3.0/"+created.Results.TaskID, "").decode(t, &task); task.Results.Status != "REVOKED" {
		t.Errorf("cancelled deletion: %+v", task.Results)
	}
	// A status forced through the control API is what the API shows.
	if r := do(t, c, "PUT", f.ready.ControlURL+"/tasks/"+did+"/status", "", `{"status":"FAILURE"}`); r.code != 200 {
		t.Errorf("set status: %d %s", r.code, r.body)
	}
	if mixpanel(t, c, f, "GET", "/data-deletions/v3.0/"+did, "").decode(t, &task); task.Results.Status != "FAILURE" {
		t.Errorf("forced status: %+v", task.Results)
	}

	// Wrong credentials.
	if r := do(t, c, "GET", f.ready.APIURL+"/data-deletions/v3.0/"+did+"?token="+fakeProject, "wrong-oauth-token", ""); r.code != 401 {
		t.Errorf("wrong OAuth token: %d", r.code)
	}
	if r := do(t, c, "GET", f.ready.APIURL+"/data-deletions/v3.0/"+did+"?token=wrong-project", fakeOAuth, ""); r.code != 403 {
		t.Errorf("wrong project token: %d", r.code)
	}

	// Faults: a 503 with Retry-After, once.
	do(t, c, "POST", f.ready.ControlURL+"/faults", "", `{"op":"checkRetrieval","status":503,"retry_after":"7"}`)
	if r := mixpanel(t, c, f, "GET", "/data-retrievals/v3.0/"+rid, ""); r.code != 503 || r.header.Get("Retry-After") != "7" {
		t.Errorf("injected 503: %d %v", r.code, r.header)
	}
	if r := mixpanel(t, c, f, "GET", "/data-retrievals/v3.0/"+rid, ""); r.code != 200 {
		t.Errorf("after the fault: %d", r.code)
	}
	// A create carried out, then the connection dropped: the client cannot
	// know, the control API can. (A POST: net/http never replays it.)
	do(t, c, "POST", f.ready.ControlURL+"/faults", "", `{"op":"createRetrieval","reset":"after-handling"}`)
	if r := mixpanel(t, c, f, "POST", "/data-retrievals/v3.0", `{"distinct_ids":["frank"],"compliance_type":"GDPR"}`); r.err == nil {
		t.Errorf("injected reset answered %d", r.code)
	}
	if do(t, c, "GET", f.ready.ControlURL+"/tasks", "", "").decode(t, &tasks); len(tasks.Tasks) != 4 || tasks.Tasks[3].Kind != "retrieval" {
		t.Errorf("the dropped create's task: %+v", tasks)
	}

	// The export: no credentials, a zip that Info-ZIP opens with the secret.
	dir := t.TempDir()
	r := do(t, c, "GET", link, "", "")
	if r.err != nil || r.code != 200 || r.header.Get("Content-Type") != "application/zip" {
		t.Fatalf("download: %d %v %v", r.code, r.header, r.err)
	}
	zipPath := filepath.Join(dir, "export.zip")
	if err := os.WriteFile(zipPath, r.body, 0o600); err != nil {
		t.Fatal(err)
	}
	unzipExport(t, zipPath, fakeSecret, "alice", "bob")

	// A request the document forbids: 400, and the control API reports it.
	// curl -f: exit 22 on an HTTP error status. Without curl (make deps
	// does not install it) only this check is left out.
	curlPath, _ := exec.LookPath("curl")
	curl := func(want int) {
		t.Helper()
		if curlPath == "" {
			t.Log("curl is not installed: its check of GET /_fake/violations is left out")
			return
		}
		err := exec.Command(curlPath, "--noproxy", "*", "-fsS", "-o", os.DevNull, f.ready.ControlURL+"/violations").Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != want {
			t.Errorf("curl -f %s/violations: exit %d, want %d", f.ready.ControlURL, code, want)
		}
	}
	curl(0)
	if r := mixpanel(t, c, f, "POST", "/data-deletions/v3.0", `{"distinct_ids":["erin"],"compliance_type":"HIPAA"}`); r.code != 400 {
		t.Errorf("an unknown compliance type: %d %s", r.code, r.body)
	}
	var vs controlViolations
	if r := do(t, c, "GET", f.ready.ControlURL+"/violations", "", "").decode(t, &vs); r.code != 409 || vs.Count != 1 ||
		vs.Violations[0].Op != "createDeletion" || !strings.Contains(vs.Violations[0].Message, "compliance_type") {
		t.Errorf("violations: %d %s", r.code, r.body)
	}
	curl(22) // an HTTP error status

	// What the fake recorded: every request, no credential value.
	r = do(t, c, "GET", f.ready.ControlURL+"/requests", "", "")
	noLeak(t, "GET /_fake/requests", string(r.body))
	var reqs struct {
		Requests []struct {
			Op, Bearer, ProjectToken string
			Status                   int
		} `json:"requests"`
	}
	r.decode(t, &reqs)
	var downloads int
	for _, q := range reqs.Requests {
		if q.Op == "download" {
			downloads++
			if q.Bearer != "absent" {
				t.Errorf("a credential reached the download host: %+v", q)
			}
		}
	}
	if len(reqs.Requests) < 15 || downloads != 1 {
		t.Errorf("%d requests recorded, %d downloads", len(reqs.Requests), downloads)
	}

	// Clear and reset.
	if r := do(t, c, "DELETE", f.ready.ControlURL+"/violations", "", ""); r.code != 204 {
		t.Errorf("clear violations: %d", r.code)
	}
	curl(0)
	if r := do(t, c, "POST", f.ready.ControlURL+"/reset", "", ""); r.code != 204 {
		t.Errorf("reset: %d", r.code)
	}
	if do(t, c, "GET", f.ready.ControlURL+"/tasks", "", "").decode(t, &tasks); len(tasks.Tasks) != 0 {
		t.Errorf("tasks after reset: %+v", tasks)
	}
	if code := f.stop(t); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	if s := f.stderr.String(); !strings.Contains(s, "stopped after") {
		t.Errorf("stderr: %s", s)
	}
}

// unzipExport extracts an export with Info-ZIP unzip -P, checks each
// person's files are there and a wrong password fails.
func unzipExport(t *testing.T, zipPath, secret string, ids ...string) {
	t.Helper()
	unzip, err := exec.LookPath("unzip")
	if err != nil {
		t.Logf("unzip is not installed (make deps installs it): the export of %v is not opened with Info-ZIP", ids)
		return
	}
	out := filepath.Join(t.TempDir(), "x")
	if b, err := exec.Command(unzip, "-P", secret, "-q", "-d", out, zipPath).CombinedOutput(); err != nil {
		t.Fatalf("unzip -P: %v: %s", err, b)
	}
	for _, id := range ids {
		for _, dir := range []string{"events", "profiles"} {
			b, err := os.ReadFile(filepath.Join(out, dir, id+".json"))
			if err != nil || !strings.Contains(string(b), `"`+id+`"`) {
				t.Errorf("%s/%s.json: %v %.80s", dir, id, err, b)
			}
		}
	}
	if b, err := exec.Command(unzip, "-P", "not-the-secret", "-q", "-o", "-d", filepath.Join(t.TempDir(), "y"), zipPath).CombinedOutput(); err == nil {
		t.Errorf("unzip with a wrong password succeeded: %s", b)
	}
}

// TestFakeRateLimit: above --rate, 429 with a Retry-After in seconds.
func TestFakeRateLimit(t *testing.T) {
	t.Parallel()
	// One request per 100 s: the second one is refused however slow the
	// machine is.
	f := startFake(t, fakeEnv, "--json", "--rate", "0.01")
	c := httpc()
	var codes []int
	var retryAfter string
	for range 2 {
		r := mixpanel(t, c, f, "GET", "/data-deletions/v3.0/no-such-task", "")
		codes = append(codes, r.code)
		retryAfter = r.header.Get("Retry-After")
	}
	if codes[0] != 404 || codes[1] != 429 {
		t.Fatalf("answers %v, want 404 then 429", codes)
	}
	if n, err := strconv.Atoi(retryAfter); err != nil || n < 1 {
		t.Errorf("Retry-After %q", retryAfter)
	}
	// The control API is never rate-limited.
	for range 3 {
		if r := do(t, c, "GET", f.ready.ControlURL+"/info", "", ""); r.code != 200 {
			t.Errorf("control under the rate limit: %d", r.code)
		}
	}
}

// TestFakeFixedPortAndToken: a port named in --listen (docker-compose
// style), the plain first line, and a control token.
func TestFakeFixedPortAndToken(t *testing.T) {
	t.Parallel()
	addr := freePort(t)
	f := startFake(t, append([]string{"MPGDPR_FAKE_CONTROL_TOKEN=" + fakeControl}, fakeEnv...), "--listen", addr, "--create-status", "201", "--create-shape", "array")
	fields := map[string]string{}
	for _, kv := range strings.Fields(f.first) {
		k, v, _ := strings.Cut(kv, "=")
		fields[k] = v
	}
	if fields["api"] != "http://"+addr+"/api/app" || fields["control"] != "http://"+addr+"/_fake" || fields["download"] == "" || fields["download"] == addr {
		t.Fatalf("first line %q", f.first)
	}
	f.ready = fakeReadyLine{APIURL: fields["api"], ControlURL: fields["control"], DownloadHost: fields["download"]}
	c := httpc()
	if r := do(t, c, "GET", f.ready.ControlURL+"/tasks", "", ""); r.code != 401 || r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("control without the token: %d", r.code)
	}
	if r := do(t, c, "GET", f.ready.ControlURL+"/tasks", "wrong", ""); r.code != 401 {
		t.Errorf("control with a wrong token: %d", r.code)
	}
	var info struct {
		CreateStatus         int  `json:"create_status"`
		ControlTokenRequired bool `json:"control_token_required"`
	}
	if r := do(t, c, "GET", f.ready.ControlURL+"/info", fakeControl, "").decode(t, &info); r.code != 200 || info.CreateStatus != 201 || !info.ControlTokenRequired {
		t.Errorf("info: %d %s", r.code, r.body)
	}
	// The array-shaped 201 create answer.
	var created struct {
		Results []struct {
			TrackingID string `json:"tracking_id"`
		} `json:"results"`
	}
	if r := mixpanel(t, c, f, "POST", "/data-retrievals/v3.0", `{"distinct_ids":["a"],"compliance_type":"CCPA","disclosure_type":"Data"}`).decode(t, &created); r.code != 201 ||
		len(created.Results) != 1 || created.Results[0].TrackingID == "" {
		t.Errorf("create: %d %s", r.code, r.body)
	}
	// A second fake on the same port fails, and says why.
	res := runBin(t, "", fakeEnv, "fake", "--listen", addr)
	if res.code != 1 || !strings.Contains(res.stderr, "address already in use") {
		t.Errorf("a second fake on %s: exit %d, %s", addr, res.code, res.stderr)
	}
}

type fakeResult struct {
	code           int
	stdout, stderr string
}

// runBin runs the binary to its end, in dir (if not empty).
func runBin(t *testing.T, dir string, env []string, args ...string) fakeResult {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("mpgdpr %v did not end", args)
	}
	noLeak(t, fmt.Sprint("mpgdpr ", args), out.String()+errOut.String())
	return fakeResult{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errOut.String()}
}
