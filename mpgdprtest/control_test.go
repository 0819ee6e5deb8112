package mpgdprtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// ctl calls the control API and decodes the answer into out (if not nil).
func ctl(t *testing.T, s *mpgdprtest.Server, method, path, body string, out any) int {
	t.Helper()
	return ctlAuth(t, s, "", method, path, body, out)
}

func ctlAuth(t *testing.T, s *mpgdprtest.Server, token, method, path, body string, out any) int {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.ControlURL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode >= 500 {
		t.Errorf("%s %s: %s %s", method, path, resp.Status, data)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

type ctlTask struct {
	ID          string   `json:"id"`
	Kind        string   `json:"kind"`
	Status      string   `json:"status"`
	DistinctIDs []string `json:"distinct_ids"`
	Checks      int      `json:"checks"`
	DownloadURL string   `json:"download_url"`
}

type ctlTasks struct {
	Tasks []ctlTask `json:"tasks"`
}

type ctlViolations struct {
	Count      int `json:"count"`
	Violations []struct {
		Op, Kind, Reason, Message string
	} `json:"violations"`
}

type ctlError struct {
	Error string `json:"error"`
}

func TestControlNotMountedByDefault(t *testing.T) {
	s := newServer(t)
	if s.ControlURL() != "" {
		t.Errorf("ControlURL %q without WithControlAPI", s.ControlURL())
	}
	resp, err := http.Get(strings.TrimSuffix(s.URL(), mpgdprtest.BasePath) + "/_fake/tasks")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Not an API path either: answered 400 and kept as a violation.
	if resp.StatusCode != http.StatusBadRequest || len(s.Violations()) != 1 {
		t.Errorf("/_fake/ without the control API: %s, %d violations", resp.Status, len(s.Violations()))
	}
	// The handler exists all the same, for mounting elsewhere.
	if s.ControlHandler() == nil {
		t.Error("no ControlHandler")
	}
}

func TestControlTasks(t *testing.T) {
	s := newServer(t, mpgdprtest.WithControlAPI(), mpgdprtest.WithSchedule(mpgdprtest.Manual()))
	c := newClient(t, s)
	ctx := context.Background()
	rid, err := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: []string{"u1", "u2"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		t.Fatal(err)
	}
	did, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"u3"}, ComplianceType: mpgdpr.CCPA})
	if err != nil {
		t.Fatal(err)
	}

	var list ctlTasks
	if code := ctl(t, s, "GET", "/tasks", "", &list); code != 200 || len(list.Tasks) != 2 ||
		list.Tasks[0].ID != rid || list.Tasks[0].Kind != "retrieval" || list.Tasks[0].Status != "PENDING" ||
		strings.Join(list.Tasks[0].DistinctIDs, ",") != "u1,u2" || list.Tasks[1].ID != did {
		t.Fatalf("GET /tasks: %d %+v", code, list)
	}
	var one ctlTask
	if code := ctl(t, s, "POST", "/tasks/"+rid+"/advance", "", &one); code != 200 || one.Status != "STAGING" {
		t.Errorf("advance: %d %+v", code, one)
	}
	if code := ctl(t, s, "POST", "/advance", "", &list); code != 200 || list.Tasks[0].Status != "STARTED" || list.Tasks[1].Status != "STAGING" {
		t.Errorf("advance all: %d %+v", code, list)
	}
	ctl(t, s, "POST", "/advance", "", &list)
	if code := ctl(t, s, "GET", "/tasks/"+rid, "", &one); code != 200 || one.Status != "SUCCESS" || one.DownloadURL == "" {
		t.Errorf("finished retrieval: %d %+v", code, one)
	}
	// The client sees what the control API set.
	if tk, err := c.CheckRetrieval(ctx, rid); err != nil || tk.Status != mpgdpr.StatusSuccess || tk.DownloadURL != one.DownloadURL {
		t.Errorf("client sees %+v, %v", tk, err)
	}
	var e ctlError
	if code := ctl(t, s, "POST", "/tasks/"+rid+"/advance", "", &e); code != http.StatusConflict || !strings.Contains(e.Error, "SUCCESS") {
		t.Errorf("advancing a finished task: %d %+v", code, e)
	}
	if code := ctl(t, s, "PUT", "/tasks/"+did+"/status", `{"status":"FAILURE"}`, &one); code != 200 || one.Status != "FAILURE" {
		t.Errorf("set status: %d %+v", code, one)
	}
	if tk, err := c.CheckDeletion(ctx, did); err != nil || tk.Status != mpgdpr.StatusFailure {
		t.Errorf("client sees %+v, %v", tk, err)
	}
	for _, p := range []string{"GET /tasks/nope", "POST /tasks/nope/advance"} {
		m, path, _ := strings.Cut(p, " ")
		if code := ctl(t, s, m, path, "", &e); code != http.StatusNotFound || !strings.Contains(e.Error, "nope") {
			t.Errorf("%s: %d %+v", p, code, e)
		}
	}
	if code := ctl(t, s, "PUT", "/tasks/nope/status", `{"status":"FAILURE"}`, nil); code != http.StatusNotFound {
		t.Errorf("set status of an unknown task: %d", code)
	}
	s.AssertNoViolations(t)
}

func TestControlBadRequests(t *testing.T) {
	s := newServer(t, mpgdprtest.WithControlAPI())
	cases := []struct {
		method, path, body string
		code               int
		says               string
	}{
		{"PUT", "/tasks/x/status", `{"status":"DONE"}`, 400, "status"},
		{"PUT", "/tasks/x/status", `{"status":"FAILURE","extra":1}`, 400, "extra"},
		{"PUT", "/tasks/x/status", ``, 400, "body"},
		{"POST", "/faults", `{"op":"createEverything"}`, 400, "op"},
		{"POST", "/faults", `{"status":700}`, 400, "status"},
		{"POST", "/faults", `{"latency":5}`, 400, "latency"},
		{"POST", "/faults", `{"reset":"sometimes"}`, 400, "reset"},
		{"POST", "/faults", `not json`, 400, ""},
		{"GET", "/nothing-here", ``, 404, "no such control operation"},
		{"GET", "", ``, 404, ""},
		{"DELETE", "/tasks", ``, 405, "method"},
	}
	for _, c := range cases {
		var e ctlError
		code := ctl(t, s, c.method, c.path, c.body, &e)
		if code != c.code || e.Error == "" || !strings.Contains(e.Error, c.says) {
			t.Errorf("%s %s %s: %d %q, want %d mentioning %q", c.method, c.path, c.body, code, e.Error, c.code, c.says)
		}
	}
	if s.FaultsLeft() != 0 {
		t.Errorf("a refused fault was queued: %d left", s.FaultsLeft())
	}
	// Control traffic is neither recorded nor a contract violation.
	if len(s.Requests()) != 0 || len(s.Violations()) != 0 {
		t.Errorf("control traffic recorded: %d requests, %d violations", len(s.Requests()), len(s.Violations()))
	}
}

func TestControlFaults(t *testing.T) {
	s := newServer(t, mpgdprtest.WithControlAPI())
	c := newClient(t, s)
	ctx := context.Background()

	var q struct {
		Fault struct {
			Op     string `json:"op"`
			Status int    `json:"status"`
		} `json:"fault"`
		Left int    `json:"left"`
		Kind string `json:"kind"`
	}
	if code := ctl(t, s, "POST", "/faults", `{"op":"createRetrieval","status":503,"retry_after":"0","times":2}`, &q); code != 201 ||
		q.Left != 2 || q.Kind != "status" || q.Fault.Op != "createRetrieval" || q.Fault.Status != 503 {
		t.Fatalf("inject: %d %+v", code, q)
	}
	ctl(t, s, "POST", "/faults", `{"op":"download","reset":"before-body"}`, nil)
	var fl struct {
		Faults []struct {
			Left int    `json:"left"`
			Kind string `json:"kind"`
		} `json:"faults"`
	}
	if ctl(t, s, "GET", "/faults", "", &fl); len(fl.Faults) != 2 || fl.Faults[0].Left != 2 || fl.Faults[1].Kind != "reset-before-body" {
		t.Errorf("GET /faults: %+v", fl)
	}
	// A 503 is retried for every call: two of them, then the real answer.
	if _, err := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.GDPR}); err != nil {
		t.Fatalf("after two injected 503s: %v", err)
	}
	var reqs struct {
		Requests []struct {
			Op     string `json:"op"`
			Status int    `json:"status"`
			Fault  string `json:"fault"`
		} `json:"requests"`
	}
	ctl(t, s, "GET", "/requests", "", &reqs)
	if len(reqs.Requests) != 3 || reqs.Requests[0].Status != 503 || reqs.Requests[0].Fault != "status" || reqs.Requests[2].Status != 200 {
		t.Errorf("requests: %+v", reqs)
	}
	if code := ctl(t, s, "DELETE", "/faults", "", nil); code != 204 || s.FaultsLeft() != 0 {
		t.Errorf("clear faults: %d, %d left", code, s.FaultsLeft())
	}
	if code := ctl(t, s, "DELETE", "/requests", "", nil); code != 204 || len(s.Requests()) != 0 {
		t.Errorf("clear requests: %d", code)
	}
	// Latency then a truncated answer, as a Go test would inject them.
	ctl(t, s, "POST", "/faults", `{"op":"checkRetrieval","latency_ms":20,"truncate":5}`, nil)
	_, err := c.CheckRetrieval(ctx, "nope")
	if err == nil {
		t.Error("a cut answer was read as complete")
	}
	s.AssertNoViolations(t)
}

// TestControlViolations: GET /violations answers 409 while there is any,
// so `curl -f` fails a CI step on it; DELETE clears them.
func TestControlViolations(t *testing.T) {
	s := newServer(t, mpgdprtest.WithControlAPI())
	var v ctlViolations
	if code := ctl(t, s, "GET", "/violations", "", &v); code != 200 || v.Count != 0 || v.Violations == nil {
		t.Errorf("no violations: %d %+v", code, v)
	}
	// 2001 ids: more than the document allows.
	ids := make([]string, 2001)
	for i := range ids {
		ids[i] = "id"
	}
	body, _ := json.Marshal(map[string]any{"distinct_ids": ids, "compliance_type": "GDPR"})
	req, _ := http.NewRequest("POST", s.URL()+"/data-retrievals/v3.0?token="+s.ProjectToken(), bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.OAuthToken())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code := ctl(t, s, "GET", "/violations", "", &v); code != http.StatusConflict || v.Count != 1 ||
		v.Violations[0].Op != "createRetrieval" || !strings.Contains(v.Violations[0].Reason, "2000") || !strings.Contains(v.Violations[0].Message, "request violation") {
		t.Errorf("one violation: %d %+v", code, v)
	}
	if code := ctl(t, s, "DELETE", "/violations", "", nil); code != 204 {
		t.Errorf("clear: %d", code)
	}
	if code := ctl(t, s, "GET", "/violations", "", &v); code != 200 || v.Count != 0 {
		t.Errorf("after clearing: %d %+v", code, v)
	}
}

// TestControlNoCredentials: what the control API shows of requests holds
// no credential value, even one sent where it does not belong.
func TestControlNoCredentials(t *testing.T) {
	const oauth, project, secret = "oauth-SECRET-1234", "project-SECRET-5678", "api-SECRET-9012"
	s := newServer(t, mpgdprtest.WithControlAPI(), mpgdprtest.WithTokens(oauth, project), mpgdprtest.WithAPISecret(secret))
	c := newClient(t, s)
	ctx := context.Background()
	if _, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.GDPR}); err != nil {
		t.Fatal(err)
	}
	// A hostile client puts the tokens in the path.
	for _, p := range []string{"/data-deletions/v3.0/" + oauth, "/data-deletions/v3.0/" + project + "?token=wrong-token-value"} {
		req, _ := http.NewRequest("GET", s.URL()+p, nil)
		req.Header.Set("Authorization", "Bearer not-the-token-value")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	var all bytes.Buffer
	for _, p := range []string{"/requests", "/violations", "/tasks", "/info", "/faults"} {
		var raw json.RawMessage
		ctl(t, s, "GET", p, "", &raw)
		all.Write(raw)
	}
	for _, x := range []string{oauth, project, secret, "not-the-token-value", "wrong-token-value"} {
		if strings.Contains(all.String(), x) {
			t.Errorf("the control API shows a credential (%s): %s", x, all.String())
		}
	}
	if !strings.Contains(all.String(), `"bearer":"invalid"`) {
		t.Errorf("requests do not say what arrived: %s", all.String())
	}
}

func TestControlReset(t *testing.T) {
	s := newServer(t, mpgdprtest.WithControlAPI())
	c := newClient(t, s)
	ctx := context.Background()
	first, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		t.Fatal(err)
	}
	s.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCheckDeletion, Status: 500})
	_, _ = http.Get(s.URL() + "/nope")
	if code := ctl(t, s, "POST", "/reset", "", nil); code != 204 {
		t.Fatalf("reset: %d", code)
	}
	if len(s.Tasks()) != 0 || len(s.Requests()) != 0 || len(s.Violations()) != 0 || s.FaultsLeft() != 0 {
		t.Errorf("after reset: %d tasks, %d requests, %d violations, %d faults", len(s.Tasks()), len(s.Requests()), len(s.Violations()), s.FaultsLeft())
	}
	// The same person again: no conflict with the forgotten task, and a new id.
	second, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.GDPR})
	if err != nil || second == first {
		t.Errorf("after reset: %q, %v (first was %q)", second, err, first)
	}
}

func TestControlToken(t *testing.T) {
	s := newServer(t, mpgdprtest.WithControlToken("control-token-1"))
	var e ctlError
	for _, tok := range []string{"", "control-token-2", "control-token-1x"} {
		if code := ctlAuth(t, s, tok, "GET", "/tasks", "", &e); code != http.StatusUnauthorized || strings.Contains(e.Error, "control-token-1") {
			t.Errorf("token %q: %d %q", tok, code, e.Error)
		}
	}
	var info struct {
		APIURL               string `json:"api_url"`
		DownloadHost         string `json:"download_host"`
		ControlTokenRequired bool   `json:"control_token_required"`
		Schedule             string `json:"schedule"`
	}
	if code := ctlAuth(t, s, "control-token-1", "GET", "/info", "", &info); code != 200 || info.APIURL != s.URL() ||
		info.DownloadHost != s.DownloadHost() || !info.ControlTokenRequired || info.Schedule != "step-per-poll" {
		t.Errorf("info: %d %+v", code, info)
	}
	// The API itself does not take the control token, nor need it.
	if _, err := newClient(t, s).CheckDeletion(context.Background(), "x"); !errors.Is(err, mpgdpr.ErrNotFound) {
		t.Errorf("API call: %v", err)
	}
}

// TestStartRefuses: options that cannot work fail before anything listens.
func TestStartRefuses(t *testing.T) {
	cases := map[string][]mpgdprtest.Option{
		"remote control without a token": {mpgdprtest.WithListen("0.0.0.0:0"), mpgdprtest.WithControlAPI()},
		"remote control, empty token":    {mpgdprtest.WithListen(":0"), mpgdprtest.WithControlToken("")},
		"create status":                  {mpgdprtest.WithCreateResponse(202, mpgdprtest.CreateObject)},
		"link field":                     {mpgdprtest.WithLinkField("href")},
		"download URL with a path":       {mpgdprtest.WithDownloadURL("http://fake:8081/exports")},
		"download URL, no scheme":        {mpgdprtest.WithDownloadURL("fake:8081")},
		"negative rate":                  {mpgdprtest.WithRateLimit(-1)},
		"bad address":                    {mpgdprtest.WithListen("127.0.0.1:notaport")},
	}
	for name, opts := range cases {
		if s, err := mpgdprtest.Start(opts...); err == nil {
			s.Close()
			t.Errorf("%s: started", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestStartFixedPort: a chosen port, as docker-compose needs, and a
// download base URL other than the listener's.
func TestStartFixedPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s, err := mpgdprtest.Start(mpgdprtest.WithListen(addr), mpgdprtest.WithControlAPI(), mpgdprtest.WithDownloadURL("http://exports.invalid:8081"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.URL() != "http://"+addr+mpgdprtest.BasePath || s.ControlURL() != "http://"+addr+"/_fake" {
		t.Errorf("URL %s, ControlURL %s, want port of %s", s.URL(), s.ControlURL(), addr)
	}
	if s.DownloadHost() != "exports.invalid:8081" || s.DownloadURL() != "http://exports.invalid:8081" {
		t.Errorf("DownloadHost %s, DownloadURL %s", s.DownloadHost(), s.DownloadURL())
	}
	// The port is taken now: a second fake on it fails with an error, not a panic.
	if s2, err := mpgdprtest.Start(mpgdprtest.WithListen(addr)); err == nil {
		s2.Close()
		t.Error("two fakes on one port")
	}
	id, err := newClient(t, s).CreateRetrieval(context.Background(), mpgdpr.RetrievalRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.Advance(id); err != nil {
			t.Fatal(err)
		}
	}
	if tk, _ := s.Task(id); !strings.HasPrefix(tk.DownloadURL, "http://exports.invalid:8081/exports/"+id+".zip?sig=") {
		t.Errorf("link %s", tk.DownloadURL)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:0": true, "127.0.0.2:8080": true, "localhost:80": true, "[::1]:9": true, "::1": true,
		"0.0.0.0:8080": false, ":8080": false, "[::]:1": false, "192.168.1.2:80": false, "example.com:80": false, "": false,
	} {
		if got := mpgdprtest.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v", addr, got)
		}
	}
}

func TestParseSchedule(t *testing.T) {
	for in, want := range map[string]string{
		"step-per-poll": "step-per-poll", "": "step-per-poll", "manual": "manual",
		"timed:1s,2s,500ms": "timed:1s,2s,500ms", "timed:3s": "timed:3s,3s,3s",
	} {
		s, err := mpgdprtest.ParseSchedule(in)
		if err != nil || s.String() != want {
			t.Errorf("ParseSchedule(%q) = %v, %v; want %s", in, s, err, want)
		}
	}
	for _, in := range []string{"timed", "timed:", "timed:1s,2s", "timed:-1s", "hourly", "timed:1x"} {
		if _, err := mpgdprtest.ParseSchedule(in); err == nil {
			t.Errorf("ParseSchedule(%q) accepted", in)
		}
	}
}
