package mpgdpr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

const testSecret = "api-SECRET-99" // assertNoSecret looks for it too

// logSink captures a client's slog output as JSON lines.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logSink) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// retries returns the "mpgdpr: retrying" records.
func (l *logSink) retries(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == "mpgdpr: retrying" {
			out = append(out, rec)
		}
	}
	return out
}

func logWait(rec map[string]any) time.Duration {
	f, _ := rec["wait"].(float64)
	return time.Duration(f)
}

// faultClient is a client with a log sink, the API secret set, no rate
// limit and the given retry policy.
func faultClient(t *testing.T, rec *recorder, pol RetryPolicy, opts ...Option) (*Client, *logSink) {
	t.Helper()
	logs := &logSink{}
	return rec.client(t, append([]Option{WithRetryPolicy(pol), WithLogger(logs.logger()), WithAPISecret(testSecret)}, opts...)...), logs
}

// resetConn aborts the connection with a TCP reset.
func resetConn(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// rawReply writes a raw HTTP/1.1 response, for status lines net/http
// would not write.
func rawReply(w http.ResponseWriter, raw string) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	_, _ = buf.WriteString(raw)
	_ = buf.Flush()
	_ = conn.Close()
}

// failFirst answers the first n requests with fail, then with okReply.
func failFirst(n int64, fail func(http.ResponseWriter, *http.Request)) func(http.ResponseWriter, *http.Request) {
	var count atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		if count.Add(1) <= n {
			fail(w, r)
			return
		}
		okReply(w, r)
	}
}

func createDel(c *Client, ctx context.Context) error {
	_, err := c.CreateDeletion(ctx, DeletionRequest{DistinctIDs: []string{"a"}, ComplianceType: GDPR})
	return err
}

func checkDel(c *Client, ctx context.Context) error {
	_, err := c.CheckDeletion(ctx, "t1")
	return err
}

// ---- Retry policy and jitter ----

// ---- Retry-After ----

// ---- 5xx ----

// ---- Connection failures ----

// flakyDialer fails its first n dials, as when nothing listens yet.
func flakyDialer(n int64) *http.Client {
	var count atomic.Int64
	d := &net.Dialer{}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if count.Add(1) <= n {
				return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused")}
			}
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// ---- Slow answers ----

// holdUntil blocks a handler for d, or until the client goes away.
// returnsWithin runs f and fails the test if it has not returned after d:
// a guard against a hang, far longer than f needs even on a loaded machine,
// not a speed check.
func returnsWithin(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("still running after %v", d)
	}
}

func holdUntil(r *http.Request, d time.Duration) {
	select {
	case <-time.After(d):
	case <-r.Context().Done():
	}
}

// ---- Bad bodies ----

// TestMalformedAnswers: a 2xx that is not a task is ErrMalformedResponse
// for a check and also ErrOutcomeUnknown for a create; neither is retried.
func TestMalformedAnswers(t *testing.T) {
	for _, body := range []string{`{"status":`, `[]`, `<html>`, `{"status":"ok","results":{"status":{"x":1}}}`, "\x00\xff"} {
		rec := newRecorder(t, jsonReply(200, body))
		c, _ := faultClient(t, rec, fastRetries(3))
		if err := checkDel(c, context.Background()); !errors.Is(err, ErrMalformedResponse) {
			t.Errorf("check %q: %v", body, err)
		}
		if err := createDel(c, context.Background()); !errors.Is(err, ErrMalformedResponse) || !errors.Is(err, ErrOutcomeUnknown) {
			t.Errorf("create %q: %v", body, err)
		}
		if n := len(rec.requests()); n != 2 {
			t.Errorf("%q: %d requests, want 2 (no retries)", body, n)
		}
	}
}

// ---- Redirects ----

// TestRedirectsNeverCarryCredentials: a redirect to another host is
// refused, for checks and creates, 302 and 307 alike, and not retried; the
// other host sees nothing. A redirect within the API host is followed.
func TestRedirectsNeverCarryCredentials(t *testing.T) {
	var foreign atomic.Int64
	var leaked atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreign.Add(1)
		if strings.Contains(r.URL.RawQuery, testProject) || strings.Contains(r.Header.Get("Authorization"), testOAuth) {
			leaked.Store(true)
		}
	}))
	t.Cleanup(other.Close)
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		for _, post := range []bool{false, true} {
			rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+"/steal?"+r.URL.RawQuery, code)
			})
			c, _ := faultClient(t, rec, fastRetries(3))
			call := checkDel
			if post {
				call = createDel
			}
			err := call(c, context.Background())
			if err == nil || !strings.Contains(err.Error(), "refusing a redirect") {
				t.Fatalf("%d post=%v: err = %v", code, post, err)
			}
			if n := len(rec.requests()); n != 1 {
				t.Fatalf("%d post=%v: %d requests to the API (a refused redirect is not retried)", code, post, n)
			}
		}
	}
	if foreign.Load() != 0 || leaked.Load() {
		t.Fatalf("%d requests reached the other host (credentials: %v)", foreign.Load(), leaked.Load())
	}
	var hops atomic.Int64
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if hops.Add(1) == 1 {
			http.Redirect(w, r, "/api/app/data-deletions/v3.0/moved?"+r.URL.RawQuery, http.StatusFound)
			return
		}
		okReply(w, r)
	})
	c, _ := faultClient(t, rec, fastRetries(3))
	if err := checkDel(c, context.Background()); err != nil {
		t.Fatalf("same-host redirect: %v", err)
	}
}

// ---- Secrets ----

// TestSecretsNeverLeak runs a hostile server through many failure modes,
// echoing the OAuth token, project token and API secret wherever it can
// (error text, JSON-escaped text, 409 ids, reason phrases, redirect
// targets, malformed bodies, past the truncation point), and counts the
// secrets in every error string and every log line: the count must be 0.
func TestSecretsNeverLeak(t *testing.T) {
	all := testOAuth + " " + testProject + " " + testSecret
	escaped := func(s string) string { // every character as \u00XX
		var b strings.Builder
		for _, r := range s {
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		return b.String()
	}
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	_ = dead.Close()

	type mode struct {
		name  string
		reply func(http.ResponseWriter, *http.Request)
		call  func(*Client, context.Context) error
		opts  []Option
		base  string
	}
	modes := []mode{
		{name: "400 message", reply: jsonReply(400, `{"status":"error","error":"bad `+all+`"}`), call: checkDel},
		{name: "400 JSON-escaped", reply: jsonReply(400, `{"status":"error","error":"`+escaped(all)+`"}`), call: createDel},
		{name: "401 plain text", reply: jsonReply(401, "token "+all+" is invalid"), call: checkDel},
		{name: "409 ids", reply: jsonReply(409, conflict409([]string{testOAuth, "a"}, []string{testProject, testSecret})), call: createDel},
		{name: "409 batch", reply: jsonReply(409, conflict409([]string{"zz" + testOAuth}, []string{testProject})), call: func(c *Client, ctx context.Context) error {
			_, err := c.DeleteAll(ctx, []string{"a", "b"}, GDPR)
			return err
		}},
		{name: "409 JSON-escaped ids", reply: jsonReply(409, `{"status":"error","error":{"conflicting_distinct_ids":["`+escaped(testOAuth)+`"],"conflicting_task_ids":["`+escaped(testProject)+`","`+escaped(testSecret)+`"]}}`), call: createDel},
		{name: "escaped at truncation point", reply: jsonReply(400, `{"status":"error","error":"`+strings.Repeat("p", 505)+escaped(testOAuth)+`"}`), call: checkDel},
		{name: "truncation point", reply: jsonReply(400, `{"status":"error","error":"`+strings.Repeat("p", 505)+testOAuth+`"}`), call: checkDel},
		{name: "503 reason phrase", reply: func(w http.ResponseWriter, _ *http.Request) {
			rawReply(w, "HTTP/1.1 503 Busy "+all+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		}, call: checkDel},
		{name: "429 retried", reply: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "0")
			jsonReply(429, `{"status":"error","error":"`+all+`"}`)(w, r)
		}, call: createDel},
		{name: "500 create", reply: jsonReply(500, `{"status":"error","error":"`+all+`"}`), call: createDel},
		{name: "malformed 200 check", reply: jsonReply(200, `{"status":"ok","results":{"status":["`+all+`"`), call: checkDel},
		{name: "malformed 200 create", reply: jsonReply(200, `{"status":"`+all+`","results":[{"tracking_id":"`+testOAuth+`"},{"tracking_id":"x"}]}`), call: createDel},
		{name: "redirect", reply: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://evil-"+strings.ToLower(testProject)+".example/"+testOAuth+"?token="+testProject+"&s="+testSecret, http.StatusFound)
		}, call: checkDel},
		{name: "reset", reply: func(w http.ResponseWriter, _ *http.Request) { resetConn(w) }, call: checkDel},
		{name: "reset create", reply: func(w http.ResponseWriter, _ *http.Request) { resetConn(w) }, call: createDel},
		{name: "timeout", reply: func(w http.ResponseWriter, r *http.Request) { holdUntil(r, time.Second) }, call: createDel,
			opts: []Option{WithHTTPClient(&http.Client{Timeout: 50 * time.Millisecond})}},
		{name: "dial error", call: checkDel, base: "http://" + deadAddr + "/api/app"},
		{name: "wait", reply: jsonReply(503, `{"status":"error","error":"`+all+`"}`), call: func(c *Client, ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			_, err := c.WaitDeletion(ctx, "t", WithPollInterval(5*time.Millisecond, 5*time.Millisecond))
			return err
		}},
	}
	var texts []string
	for _, m := range modes {
		logs := &logSink{}
		base := m.base
		if base == "" {
			base = newRecorder(t, m.reply).srv.URL + "/api/app"
		}
		opts := append([]Option{WithBaseURL(base), WithRateLimiter(nil), WithRetryPolicy(fastRetries(2)), WithLogger(logs.logger()), WithAPISecret(testSecret)}, m.opts...)
		c, err := New(testOAuth, testProject, opts...)
		if err != nil {
			t.Fatal(err)
		}
		err = m.call(c, context.Background())
		if err == nil {
			t.Fatalf("%s: no error", m.name)
		}
		texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", errors.Unwrap(err)), logs.String())
		var e *Error
		if errors.As(err, &e) {
			texts = append(texts, fmt.Sprintf("%+v", *e))
		}
	}
	leaks := 0
	for _, s := range texts {
		for _, secret := range []string{testOAuth, testProject, testSecret, "SENTINEL", "SECRET-99"} {
			leaks += strings.Count(s, secret)
		}
	}
	t.Logf("%d failure modes, %d texts checked, %d secret occurrences", len(modes), len(texts), leaks)
	if leaks != 0 || len(modes) < 10 {
		for _, s := range texts {
			if strings.Contains(s, "SENTINEL") || strings.Contains(s, "SECRET-99") {
				t.Errorf("leak: %s", s)
			}
		}
		t.Fatalf("%d secret occurrences", leaks)
	}
}

// TestNoCredentialsToOtherHosts: the client refuses to build a request for
// a host other than its own, and its redirect guard keeps tokens home (see
// TestRedirectsNeverCarryCredentials); its base URL must be https unless
// loopback.
func TestNoCredentialsToOtherHosts(t *testing.T) {
	for _, base := range []string{"http://mixpanel.com/api/app", "http://10.0.0.1/api/app", "http://[::2]/api/app"} {
		if _, err := New(testOAuth, testProject, WithBaseURL(base)); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s accepted", base)
		}
	}
	for _, base := range []string{"http://127.0.0.1:8080/api/app", "http://[::1]:8080/api/app", "http://localhost:1/api/app", "https://eu.mixpanel.com/api/app"} {
		if _, err := New(testOAuth, testProject, WithBaseURL(base)); err != nil {
			t.Errorf("%s refused: %v", base, err)
		}
	}
	c, _ := New(testOAuth, testProject)
	req, _ := http.NewRequest(http.MethodGet, "https://evil.example/api/app/data-deletions/v3.0/x", nil)
	if err := c.authorize(context.Background(), req); err == nil || req.Header.Get("Authorization") != "" || strings.Contains(req.URL.RawQuery, testProject) {
		t.Fatalf("credentials put on a foreign request: %v", err)
	}
}

// TestMain fails the package's tests if any goroutine outlives them: a
// retry timer, a limiter wait or a connection left behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
