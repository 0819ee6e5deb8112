package mpgdpr

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testOAuth   = "oauth-SENTINEL-7f3a9c"
	testProject = "project-SENTINEL-51d2e8"
)

// seen is one request as the test server received it.
type seen struct {
	Method, Path, RawPath, RawQuery, Auth string
	Tokens                                []string
	Body                                  []byte
}

// recorder is an httptest server behind the /api/app prefix every region
// uses, answering with reply and recording what it received.
type recorder struct {
	srv   *httptest.Server
	mu    sync.Mutex
	reqs  []seen
	reply func(w http.ResponseWriter, r *http.Request)
}

func newRecorder(t *testing.T, reply func(w http.ResponseWriter, r *http.Request)) *recorder {
	t.Helper()
	rec := &recorder{reply: reply}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, seen{r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Header.Get("Authorization"), r.URL.Query()["token"], b})
		rec.mu.Unlock()
		if !strings.HasPrefix(r.URL.Path, "/api/app/") {
			http.Error(w, "wrong prefix", http.StatusTeapot)
			return
		}
		rec.reply(w, r)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (r *recorder) requests() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.reqs...)
}

func (r *recorder) client(t *testing.T, opts ...Option) *Client {
	t.Helper()
	base := []Option{WithBaseURL(r.srv.URL + "/api/app"), WithRateLimiter(nil), WithRetryPolicy(fastRetries(3))}
	c, err := New(testOAuth, testProject, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fastRetries(n int) RetryPolicy {
	return RetryPolicy{MaxAttempts: n, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, MaxElapsed: 5 * time.Second, MaxRetryAfter: 20 * time.Millisecond}
}

func jsonReply(code int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

func TestRegionsBaseURL(t *testing.T) {
	want := map[Region]string{
		RegionUS: "https://mixpanel.com/api/app",
		RegionEU: "https://eu.mixpanel.com/api/app",
		RegionIN: "https://in.mixpanel.com/api/app",
	}
	for _, r := range Regions() {
		c, err := New(testOAuth, testProject, WithRegion(r))
		if err != nil {
			t.Fatal(err)
		}
		if c.BaseURL() != want[r] {
			t.Errorf("%s: base %s, want %s", r, c.BaseURL(), want[r])
		}
	}
	c, _ := New(testOAuth, testProject)
	if c.BaseURL() != want[RegionUS] {
		t.Errorf("default region base %s", c.BaseURL())
	}
	if _, err := New(testOAuth, testProject, WithRegion("au")); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("unknown region: %v", err)
	}
	for in, want := range map[string]Region{"EU": RegionEU, "india": RegionIN, " us ": RegionUS} {
		if got, err := ParseRegion(in); err != nil || got != want {
			t.Errorf("ParseRegion(%q) = %v, %v", in, got, err)
		}
	}
}

// TestOperations checks method, path, the single token, the bearer header
// and the body of each call, in the path layout every region shares.
func TestOperations(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost:
			jsonReply(200, `{"status":"ok","results":{"task_id":"task-1"}}`)(w, r)
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		default:
			jsonReply(200, `{"status":"ok","results":{"status":"PENDING"}}`)(w, r)
		}
	})
	c := rec.client(t)
	ctx := context.Background()
	if id, err := c.CreateRetrieval(ctx, RetrievalRequest{DistinctIDs: []string{"a", "b"}, ComplianceType: CCPA, DisclosureType: DisclosureCategories}); err != nil || id != "task-1" {
		t.Fatalf("CreateRetrieval = %q, %v", id, err)
	}
	if id, err := c.CreateDeletion(ctx, DeletionRequest{DistinctIDs: []string{"a"}, ComplianceType: GDPR}); err != nil || id != "task-1" {
		t.Fatalf("CreateDeletion = %q, %v", id, err)
	}
	if _, err := c.CheckRetrieval(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CheckDeletion(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	if err := c.CancelDeletion(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	want := []struct{ method, path, body string }{
		{"POST", "/api/app/data-retrievals/v3.0", `{"compliance_type":"CCPA","disclosure_type":"Categories","distinct_ids":["a","b"]}`},
		{"POST", "/api/app/data-deletions/v3.0", `{"compliance_type":"GDPR","distinct_ids":["a"]}`},
		{"GET", "/api/app/data-retrievals/v3.0/r1", ""},
		{"GET", "/api/app/data-deletions/v3.0/d1", ""},
		{"DELETE", "/api/app/data-deletions/v3.0/d1", ""},
	}
	got := rec.requests()
	if len(got) != len(want) {
		t.Fatalf("%d requests, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Method != w.method || g.Path != w.path {
			t.Errorf("#%d: %s %s, want %s %s", i, g.Method, g.Path, w.method, w.path)
		}
		if len(g.Tokens) != 1 || g.Tokens[0] != testProject {
			t.Errorf("#%d: token parameter %q, want exactly [%s]", i, g.Tokens, testProject)
		}
		if g.Auth != "Bearer "+testOAuth {
			t.Errorf("#%d: Authorization %q", i, g.Auth)
		}
		if w.body != "" {
			var a, b any
			_ = json.Unmarshal(g.Body, &a)
			_ = json.Unmarshal([]byte(w.body), &b)
			if !jsonEqual(a, b) {
				t.Errorf("#%d: body %s, want %s", i, g.Body, w.body)
			}
		}
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestCreateShapes: both documented create answers give the task id.
func TestCreateShapes(t *testing.T) {
	cases := map[string]struct {
		code int
		body string
		want string
	}{
		"object task_id 200": {200, `{"status":"ok","results":{"task_id":"abc"}}`, "abc"},
		"object task_id 201": {201, `{"status":"ok","results":{"task_id":"abc"}}`, "abc"},
		"array tracking_id":  {200, `{"status":"ok","results":[{"status":"PENDING","tracking_id":"1584","project_id":1978118,"compliance_type":"ccpa","disclosure_type":"DATA","date_requested":"2020-03-09T22:28:55.078315","destination_url":null,"requesting_user":"a@b.c","distinct_id_count":1}]}`, "1584"},
		"numeric id":         {200, `{"status":"ok","results":{"task_id":12345}}`, "12345"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := newRecorder(t, jsonReply(tc.code, tc.body)).client(t)
			id, err := c.CreateDeletion(context.Background(), DeletionRequest{DistinctIDs: []string{"x"}, ComplianceType: GDPR})
			if err != nil || id != tc.want {
				t.Fatalf("= %q, %v; want %q", id, err, tc.want)
			}
		})
	}
	for name, body := range map[string]string{
		"no id":      `{"status":"ok","results":{}}`,
		"not json":   `<html>ok</html>`,
		"two tasks":  `{"status":"ok","results":[{"tracking_id":"1"},{"tracking_id":"2"}]}`,
		"empty list": `{"status":"ok","results":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			c := newRecorder(t, jsonReply(200, body)).client(t)
			_, err := c.CreateRetrieval(context.Background(), RetrievalRequest{DistinctIDs: []string{"x"}, ComplianceType: GDPR})
			if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrMalformedResponse) {
				t.Fatalf("err = %v; want outcome unknown + malformed", err)
			}
		})
	}
}

// TestStatusShapes: every status shape in the facts file decodes.
func TestStatusShapes(t *testing.T) {
	cases := map[string]struct {
		body string
		want Task
	}{
		"docs deletion": {
			`{"status":"ok","results":{"tracking_id":"t1","status":"SUCCESS","requesting_user":"u@mail.com","compliance_type":"GDPR","project_id":1978118,"date_requested":"2020-03-09T22:28:55.078315","distinct_ids":["a","b"]}}`,
			Task{TrackingID: "t1", Status: StatusSuccess, RequestingUser: "u@mail.com", ComplianceType: "GDPR", ProjectID: 1978118, DistinctIDs: []string{"a", "b"}, DateRequested: time.Date(2020, 3, 9, 22, 28, 55, 78315000, time.UTC), DateRequestedRaw: "2020-03-09T22:28:55.078315"},
		},
		"prose: result link": {
			`{"status":"ok","results":{"status":"SUCCESS","result":"https://storage.example.com/x.zip","distinct_ids":["a"]}}`,
			Task{Status: StatusSuccess, DownloadURL: "https://storage.example.com/x.zip", DistinctIDs: []string{"a"}},
		},
		"third-party: download_url": {
			`{"status":"ok","results":{"status":"SUCCESS","download_url":"https://s.example.com/y.zip"}}`,
			Task{Status: StatusSuccess, DownloadURL: "https://s.example.com/y.zip"},
		},
		"nested results": {
			`{"status":"ok","results":{"status":"SUCCESS","results":"https://s.example.com/z.zip"}}`,
			Task{Status: StatusSuccess, DownloadURL: "https://s.example.com/z.zip"},
		},
		"quoted link": {
			`{"status":"ok","results":{"status":"SUCCESS","result":"\"https://s.example.com/q.zip\""}}`,
			Task{Status: StatusSuccess, DownloadURL: "https://s.example.com/q.zip"},
		},
		"pending, empty link": {
			`{"status":"ok","results":{"status":"PENDING","result":"","download_url":""}}`,
			Task{Status: StatusPending},
		},
		"deletion result text": {
			`{"status":"ok","results":{"status":"FAILURE","result":"scan failed"}}`,
			Task{Status: StatusFailure, Result: "scan failed"},
		},
		"unknown status, lower case": {
			`{"status":"ok","results":{"status":"archived","extra":{"x":1}}}`,
			Task{Status: "ARCHIVED"},
		},
		"top-level task": {
			`{"status":"STARTED","distinct_ids":["a"]}`,
			Task{Status: StatusStarted, DistinctIDs: []string{"a"}},
		},
		"project id as string": {
			`{"status":"ok","results":{"status":"PENDING","project_id":"42","distinct_id_count":"3"}}`,
			Task{Status: StatusPending, ProjectID: 42, DistinctIDCount: 3},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := newRecorder(t, jsonReply(200, tc.body)).client(t)
			for _, check := range []func(context.Context, string) (*Task, error){c.CheckRetrieval, c.CheckDeletion} {
				got, err := check(context.Background(), "t1")
				if err != nil {
					t.Fatal(err)
				}
				if len(got.Raw) == 0 || !json.Valid(got.Raw) {
					t.Fatalf("Raw = %q: the task object as received is lost", got.Raw)
				}
				got.Raw = nil
				if !jsonEqual(*got, tc.want) {
					g, _ := json.Marshal(got)
					w, _ := json.Marshal(tc.want)
					t.Fatalf("got  %s\nwant %s", g, w)
				}
			}
		})
	}
	c := newRecorder(t, jsonReply(200, `{"status":"ok"}`)).client(t)
	if _, err := c.CheckDeletion(context.Background(), "t"); !errors.Is(err, ErrMalformedResponse) {
		t.Errorf("no task status: %v", err)
	}
}

func TestStatusHelpers(t *testing.T) {
	terminal := map[Status]bool{StatusSuccess: true, StatusFailure: true, StatusRevoked: true, StatusNotFound: true}
	for _, s := range []Status{StatusPending, StatusStaging, StatusStarted, StatusSuccess, StatusFailure, StatusRevoked, StatusNotFound, StatusUnknown, "ARCHIVED"} {
		if s.Terminal() != terminal[s] {
			t.Errorf("%s.Terminal() = %v", s, s.Terminal())
		}
		if s.Succeeded() != (s == StatusSuccess) {
			t.Errorf("%s.Succeeded()", s)
		}
		if s.Cancellable() != (s == StatusPending || s == StatusStaging) {
			t.Errorf("%s.Cancellable()", s)
		}
		if s.Known() != (s != "ARCHIVED") {
			t.Errorf("%s.Known()", s)
		}
	}
}

// TestBadInputSendsNothing: every invalid call fails before any request.
func TestBadInputSendsNothing(t *testing.T) {
	rec := newRecorder(t, jsonReply(200, `{}`))
	c := rec.client(t, WithMaxIDsPerRequest(3, 2))
	ctx := context.Background()
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = strings.Repeat("i", i+1)
		}
		return out
	}
	calls := map[string]func() error{
		"no ids": func() error { _, e := c.CreateDeletion(ctx, DeletionRequest{ComplianceType: GDPR}); return e },
		"blank id": func() error {
			_, e := c.CreateDeletion(ctx, DeletionRequest{DistinctIDs: []string{"a", " \t"}, ComplianceType: GDPR})
			return e
		},
		"empty id": func() error {
			_, e := c.CreateRetrieval(ctx, RetrievalRequest{DistinctIDs: []string{""}, ComplianceType: GDPR})
			return e
		},
		"bad utf8": func() error {
			_, e := c.CreateDeletion(ctx, DeletionRequest{DistinctIDs: []string{"a\xff"}, ComplianceType: GDPR})
			return e
		},
		"duplicate": func() error {
			_, e := c.CreateDeletion(ctx, DeletionRequest{DistinctIDs: []string{"a", "a"}, ComplianceType: GDPR})
			return e
		},
		"too many del": func() error {
			_, e := c.CreateDeletion(ctx, DeletionRequest{DistinctIDs: ids(3), ComplianceType: GDPR})
			return e
		},
		"too many ret": func() error {
			_, e := c.CreateRetrieval(ctx, RetrievalRequest{DistinctIDs: ids(4), ComplianceType: GDPR})
			return e
		},
		"no compliance": func() error { _, e := c.CreateDeletion(ctx, DeletionRequest{DistinctIDs: []string{"a"}}); return e },
		"bad compliance": func() error {
			_, e := c.CreateDeletion(ctx, DeletionRequest{DistinctIDs: []string{"a"}, ComplianceType: "gdpr"})
			return e
		},
		"disclosure+GDPR": func() error {
			_, e := c.CreateRetrieval(ctx, RetrievalRequest{DistinctIDs: []string{"a"}, ComplianceType: GDPR, DisclosureType: DisclosureData})
			return e
		},
		"bad disclosure": func() error {
			_, e := c.CreateRetrieval(ctx, RetrievalRequest{DistinctIDs: []string{"a"}, ComplianceType: CCPA, DisclosureType: "All"})
			return e
		},
		"empty tracking":   func() error { _, e := c.CheckDeletion(ctx, ""); return e },
		"blank tracking":   func() error { _, e := c.CheckRetrieval(ctx, "  "); return e },
		"dotdot tracking":  func() error { return c.CancelDeletion(ctx, "..") },
		"dot tracking":     func() error { _, e := c.CheckDeletion(ctx, "."); return e },
		"control tracking": func() error { _, e := c.CheckDeletion(ctx, "a\nb"); return e },
	}
	for name, call := range calls {
		err := call()
		var ie *InputError
		if !errors.Is(err, ErrInvalidInput) || !errors.As(err, &ie) {
			t.Errorf("%s: err = %v, want invalid input", name, err)
		}
	}
	if n := len(rec.requests()); n != 0 {
		t.Fatalf("%d requests sent for invalid input", n)
	}
	for _, bad := range [][2]string{{"", "p"}, {"o", ""}, {" ", "p"}} {
		if _, err := New(bad[0], bad[1]); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("New(%q,%q) = %v", bad[0], bad[1], err)
		}
	}
	for _, base := range []string{"http://example.com/api", "ftp://x", "relative/path", "https://u:p@x.com", "https://x.com/?token=1"} {
		if _, err := New("o", "p", WithBaseURL(base)); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("base %q accepted", base)
		}
	}
	if _, err := New("o", "p", WithBaseURL("http://127.0.0.1:1/api/app")); err != nil {
		t.Errorf("loopback http refused: %v", err)
	}
}

// TestTrackingIDEscaped: an id with URL syntax stays one path segment.
func TestTrackingIDEscaped(t *testing.T) {
	rec := newRecorder(t, jsonReply(200, `{"status":"ok","results":{"status":"PENDING"}}`))
	c := rec.client(t)
	for _, id := range []string{"a/b", "a?token=evil", "a#frag", "../../x", "a%2Fb", "..%2F.."} {
		if _, err := c.CheckDeletion(context.Background(), id); err != nil {
			t.Fatalf("%q: %v", id, err)
		}
	}
	want := []string{"a/b", "a?token=evil", "a#frag", "../../x", "a%2Fb", "..%2F.."}
	for i, r := range rec.requests() {
		if r.Path != "/api/app/data-deletions/v3.0/"+want[i] {
			t.Errorf("%q: decoded path %q", want[i], r.Path)
		}
		if len(r.Tokens) != 1 || r.Tokens[0] != testProject {
			t.Errorf("%q: token %q", want[i], r.Tokens)
		}
	}
}

// TestNoSecretsInErrors: a transport failure's text carries no token.
func TestNoSecretsInErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: dial fails
	c, err := New(testOAuth, testProject, WithBaseURL("http://"+addr+"/api/app"), WithRateLimiter(nil), WithRetryPolicy(fastRetries(2)), WithAPISecret("api-SECRET-99"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CheckDeletion(context.Background(), "t1")
	if err == nil {
		t.Fatal("no error")
	}
	assertNoSecret(t, err.Error())
	if !strings.Contains(err.Error(), "REDACTED") {
		t.Errorf("expected the redacted URL in %q", err)
	}
	var ne *net.OpError
	if !errors.As(err, &ne) {
		t.Errorf("cause lost: %v", err)
	}
}

func assertNoSecret(t *testing.T, s string) {
	t.Helper()
	for _, secret := range []string{testOAuth, testProject, "SENTINEL", "api-SECRET-99"} {
		if strings.Contains(s, secret) {
			t.Fatalf("secret %q leaked in %q", secret, s)
		}
	}
}

// TestCrossHostRedirectRefused: the tokens never follow a redirect away.
func TestCrossHostRedirectRefused(t *testing.T) {
	var foreign int
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { foreign++ }))
	defer other.Close()
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal?"+r.URL.RawQuery, http.StatusFound)
	})
	c := rec.client(t)
	_, err := c.CheckDeletion(context.Background(), "t1")
	if err == nil || !strings.Contains(err.Error(), "refusing a redirect") {
		t.Fatalf("err = %v", err)
	}
	assertNoSecret(t, err.Error())
	if foreign != 0 {
		t.Fatalf("%d requests reached the other host", foreign)
	}
}
