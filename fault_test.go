package mpgdpr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/time/rate"
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

// TestBackoffJitter: full jitter with an injected random source, doubling
// from BaseDelay to MaxDelay, and no overflow for any attempt or cap.
func TestBackoffJitter(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 10, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}.normalized()
	half := func() float64 { return 0.5 }
	want := []time.Duration{50, 100, 200, 400, 500, 500}
	for i, w := range want {
		if got := p.backoff(i+1, half); got != w*time.Millisecond {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	for _, tc := range []struct {
		f    float64
		want time.Duration
	}{{0, 0}, {math.NaN(), 0}, {-1, 0}, {1, time.Second}, {2, time.Second}, {0.999, 999 * time.Millisecond}} {
		if got := p.backoff(20, func() float64 { return tc.f }); got != tc.want {
			t.Errorf("rand %v: %v, want %v", tc.f, got, tc.want)
		}
	}
	huge := RetryPolicy{BaseDelay: time.Second, MaxDelay: math.MaxInt64, MaxElapsed: math.MaxInt64}.normalized()
	for n := 1; n < 500; n++ {
		if d := huge.backoff(n, func() float64 { return 0.999999 }); d < 0 || (n > 1 && d < huge.backoff(n-1, func() float64 { return 0.999999 })) {
			t.Fatalf("backoff(%d) = %v: overflow", n, d)
		}
	}
	if got := p.wait(3, 7*time.Second, half); got != 7*time.Second {
		t.Errorf("Retry-After not used: %v", got)
	}
	if got := p.wait(3, time.Hour, half); got != DefaultRetryPolicy().MaxRetryAfter {
		t.Errorf("Retry-After not capped: %v", got)
	}
	if d := (RetryPolicy{}).normalized(); d != DefaultRetryPolicy() {
		t.Errorf("zero policy normalizes to %+v", d)
	}
	unl := RetryPolicy{MaxAttempts: -1}.normalized()
	if !unl.attemptsLeft(1<<40) || NoRetries().normalized().attemptsLeft(1) {
		t.Error("attempt limits")
	}
}

// TestRetryJitterInPipeline: the waits the pipeline takes (as logged) are
// the jittered backoff of the client's random source.
func TestRetryJitterInPipeline(t *testing.T) {
	rec := newRecorder(t, failFirst(3, jsonReply(503, `{"status":"error","error":"busy"}`)))
	c, logs := faultClient(t, rec, RetryPolicy{MaxAttempts: 5, BaseDelay: 4 * time.Millisecond, MaxDelay: time.Second, MaxElapsed: time.Minute})
	c.rand = func() float64 { return 0.5 }
	if err := checkDel(c, context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []time.Duration
	for _, r := range logs.retries(t) {
		got = append(got, logWait(r))
		if r["status"] != float64(503) || r["op"] != "CheckDeletion" {
			t.Errorf("log record %v", r)
		}
	}
	want := []time.Duration{2 * time.Millisecond, 4 * time.Millisecond, 8 * time.Millisecond}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("waits %v, want %v", got, want)
	}
}

// TestRetryLongBudget: a budget of hours with unlimited attempts keeps
// retrying (30 × 429 here) and then succeeds.
func TestRetryLongBudget(t *testing.T) {
	rec := newRecorder(t, failFirst(30, jsonReply(429, `{"status":"error","error":"scan cap"}`)))
	c, _ := faultClient(t, rec, RetryPolicy{MaxAttempts: -1, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, MaxElapsed: 10 * time.Hour, MaxRetryAfter: time.Hour})
	if err := createDel(c, context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.requests()); n != 31 {
		t.Fatalf("%d requests, want 31", n)
	}
}

// TestRetryBudgetsCut: a retry that would end past MaxElapsed or the
// context's deadline is not waited for: the last failure comes back at once.
func TestRetryBudgetsCut(t *testing.T) {
	retryAfter := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		jsonReply(429, `{"status":"error","error":"slow down"}`)(w, r)
	}
	rec := newRecorder(t, retryAfter)
	c, logs := faultClient(t, rec, RetryPolicy{MaxAttempts: 5, MaxElapsed: 10 * time.Second, MaxRetryAfter: time.Minute})
	err := checkDel(c, context.Background())
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrRateLimited) || e.RetryAfter != 30*time.Second {
		t.Fatalf("err = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c2, logs2 := faultClient(t, rec, RetryPolicy{MaxAttempts: 5, MaxElapsed: time.Hour, MaxRetryAfter: time.Minute})
	if err := createDel(c2, ctx); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("deadline cut: %v", err)
	}
	// A retry is logged before its wait begins: none logged, none waited for.
	if n := len(logs.retries(t)) + len(logs2.retries(t)); n != 0 {
		t.Fatalf("%d retries begun that could not happen", n)
	}
	if n := len(rec.requests()); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

// TestMaxElapsedCoversTheWholeCall: RetryPolicy.MaxElapsed bounds the
// limiter's wait and the attempt in flight, not only the waits between
// attempts. Before, a call waited an hour for its turn, or for an answer
// that never came, with MaxElapsed at 200 ms. (The outer context is
// cancelled after a minute only to keep a regression from hanging the
// test; it has no deadline, which the pacer would see.)
func TestMaxElapsedCoversTheWholeCall(t *testing.T) {
	outer, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(time.Minute, cancel)
	pol := RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, MaxElapsed: 200 * time.Millisecond}

	// The limiter's next slot is an hour away: refused at once.
	rec := newRecorder(t, okReply)
	c, _ := faultClient(t, rec, pol, WithRateLimiter(rate.NewLimiter(rate.Every(time.Hour), 1)))
	if err := checkDel(c, outer); err != nil {
		t.Fatal(err)
	}
	err := checkDel(c, outer)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "MaxElapsed") || outer.Err() != nil {
		t.Fatalf("limiter wait: %v (outer context: %v)", err, outer.Err())
	}

	// The answer never comes: the attempt in flight is cut, a check is not
	// retried past the budget, and a create's outcome is unknown.
	hang := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	c, _ = faultClient(t, hang, pol)
	err = checkDel(c, outer)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "MaxElapsed") || outer.Err() != nil {
		t.Fatalf("check in flight: %v (outer context: %v)", err, outer.Err())
	}
	if n := len(hang.requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	err = createDel(c, outer)
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) || outer.Err() != nil {
		t.Fatalf("create in flight: %v (outer context: %v)", err, outer.Err())
	}
}

// TestRetryWaitEndsOnCancel: cancelling during a long backoff returns at
// once with context.Canceled, for a check and for a create (a 429'd create
// was not processed, so its outcome is known).
func TestRetryWaitEndsOnCancel(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		jsonReply(429, `{"status":"error","error":"slow down"}`)(w, r)
	})
	c, _ := faultClient(t, rec, RetryPolicy{MaxAttempts: 5, MaxElapsed: 10 * time.Hour, MaxRetryAfter: 2 * time.Hour})
	for name, call := range map[string]func(*Client, context.Context) error{"check": checkDel, "create": createDel} {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		var err error
		returnsWithin(t, time.Minute, func() { err = call(c, ctx) }) // the wait is an hour
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrOutcomeUnknown) {
			t.Fatalf("%s: err = %v", name, err)
		}
	}
}

// ---- Retry-After ----

// TestRetryAfterForms: Retry-After in seconds and as an HTTP date is
// honoured (measured between the two requests the server saw), a long one
// is capped at MaxRetryAfter, and a past or garbled one falls back to the
// backoff.
func TestRetryAfterForms(t *testing.T) {
	cases := []struct {
		name     string
		header   func() string
		cap      time.Duration
		min, max time.Duration // the wait chosen; the gap between the two requests is at least min
	}{
		{"seconds", func() string { return "1" }, time.Hour, time.Second, 3 * time.Second},
		{"http date", func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }, time.Hour, 900 * time.Millisecond, 4 * time.Second},
		{"capped", func() string { return "3600" }, 60 * time.Millisecond, 60 * time.Millisecond, time.Second},
		{"capped date", func() string { return time.Now().Add(time.Hour).UTC().Format(http.TimeFormat) }, 60 * time.Millisecond, 60 * time.Millisecond, time.Second},
		{"past date", func() string { return time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat) }, time.Hour, 0, 500 * time.Millisecond},
		{"garbage", func() string { return "soon" }, time.Hour, 0, 500 * time.Millisecond},
	}
	for _, tc := range cases {
		for _, method := range []string{"GET", "POST"} {
			t.Run(tc.name+" "+method, func(t *testing.T) {
				t.Parallel()
				var mu sync.Mutex
				var times []time.Time
				rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					times = append(times, time.Now())
					n := len(times)
					mu.Unlock()
					if n == 1 {
						w.Header().Set("Retry-After", tc.header())
						jsonReply(429, `{"status":"error","error":"slow down"}`)(w, r)
						return
					}
					okReply(w, r)
				})
				c, logs := faultClient(t, rec, RetryPolicy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond, MaxDelay: 10 * time.Millisecond, MaxElapsed: time.Minute, MaxRetryAfter: tc.cap})
				call := checkDel
				if method == "POST" {
					call = createDel
				}
				if err := call(c, context.Background()); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				defer mu.Unlock()
				if len(times) != 2 {
					t.Fatalf("%d requests", len(times))
				}
				// Never retried before the wait (how much later is the
				// machine's load); the wait chosen is the logged one.
				if gap := times[1].Sub(times[0]); gap < tc.min {
					t.Fatalf("retried after %v, want at least %v", gap, tc.min)
				}
				recs := logs.retries(t)
				if len(recs) != 1 || logWait(recs[0]) > max(tc.cap, 10*time.Millisecond) || logWait(recs[0]) < tc.min || logWait(recs[0]) > tc.max {
					t.Fatalf("logged %v, want a wait of %v..%v", recs, tc.min, tc.max)
				}
			})
		}
	}
}

// ---- 5xx ----

// TestServerErrors: 503 is retried for checks, and for creates only with a
// Retry-After (CreateRefused); 502 and 504 only for checks (a create gets
// ErrOutcomeUnknown, not a resend); 500 is never retried, and on a create
// its outcome is unknown too. Before the CreateRefused rule, a create
// answered 503 without Retry-After was retried, though a gateway may have
// passed it on.
func TestServerErrors(t *testing.T) {
	for _, tc := range []struct {
		code                    int
		retryAfter              string
		getRetried, postRetried bool
	}{{503, "0", true, true}, {503, "", true, false}, {502, "", true, false}, {504, "", true, false}, {500, "", false, false}} {
		for _, post := range []bool{false, true} {
			name := fmt.Sprintf("%d retry-after=%q post=%v", tc.code, tc.retryAfter, post)
			fail := jsonReply(tc.code, `{"status":"error","error":"down"}`)
			if tc.retryAfter != "" {
				inner := fail
				fail = func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Retry-After", tc.retryAfter)
					inner(w, r)
				}
			}
			rec := newRecorder(t, failFirst(1, fail))
			c, _ := faultClient(t, rec, fastRetries(3))
			retried := tc.getRetried
			call := checkDel
			if post {
				retried, call = tc.postRetried, createDel
			}
			err := call(c, context.Background())
			n := len(rec.requests())
			switch {
			case retried:
				if err != nil || n != 2 {
					t.Errorf("%s: %v after %d requests, want success after 2", name, err, n)
				}
			case post:
				if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrServer) || n != 1 {
					t.Errorf("%s: %v after %d requests, want outcome unknown after 1", name, err, n)
				}
			default:
				if !errors.Is(err, ErrServer) || errors.Is(err, ErrOutcomeUnknown) || n != 1 {
					t.Errorf("%s: %v after %d requests, want a server error after 1", name, err, n)
				}
			}
		}
	}
	// Retries run out: the last 503 becomes the error.
	rec := newRecorder(t, jsonReply(503, `{"status":"error","error":"down"}`))
	c, logs := faultClient(t, rec, fastRetries(4))
	var e *Error
	if err := checkDel(c, context.Background()); !errors.As(err, &e) || e.StatusCode != 503 {
		t.Fatalf("err = %v", err)
	}
	if n := len(rec.requests()); n != 4 || len(logs.retries(t)) != 3 {
		t.Fatalf("%d requests, %d retries logged", n, len(logs.retries(t)))
	}
}

// TestCreateRefusedRule: every answer to a create is either a certain
// refusal (4xx, a 503 with Retry-After) or an unknown outcome, through the
// pipeline as in CreateRefused. Before the rule, 501, 503 without
// Retry-After, 505-508 and the CDN codes 520-527 were certain refusals.
func TestCreateRefusedRule(t *testing.T) {
	refused := map[int]bool{400: true, 401: true, 403: true, 404: true, 405: true, 408: true, 409: true, 413: true, 422: true, 429: true}
	codes := []int{300, 400, 401, 403, 404, 405, 408, 409, 413, 422, 429, 500, 501, 502, 503, 504, 505, 507, 508, 511, 520, 521, 522, 523, 524, 525, 526, 527, 530, 599}
	for _, code := range codes {
		rec := newRecorder(t, jsonReply(code, `{"status":"error","error":"x"}`))
		c, _ := faultClient(t, rec, NoRetries())
		err := createDel(c, context.Background())
		var e *Error
		switch {
		case refused[code]:
			if errors.Is(err, ErrOutcomeUnknown) || !errors.As(err, &e) || e.StatusCode != code {
				t.Errorf("%d: %v, want a certain refusal", code, err)
			}
		default:
			var ou *OutcomeUnknownError
			if !errors.As(err, &ou) || !errors.Is(err, ErrOutcomeUnknown) || !errors.As(err, &e) || e.StatusCode != code || errors.Is(err, ErrServer) != (code >= 500) {
				t.Errorf("%d: %v, want an unknown outcome", code, err)
			}
		}
		if got := CreateRefused(code, nil); got != refused[code] {
			t.Errorf("CreateRefused(%d) = %v", code, got)
		}
	}
	ra := http.Header{"Retry-After": {"3"}}
	if !CreateRefused(503, ra) || CreateRefused(503, http.Header{"Retry-After": {"soon"}}) || CreateRefused(502, ra) || !CreateRefused(429, nil) {
		t.Error("CreateRefused and Retry-After")
	}
	// A 503 with Retry-After whose retries run out is a refusal: the IDs
	// may be sent again.
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "0")
		jsonReply(503, `{"status":"error","error":"busy"}`)(w, r)
	})
	c, _ := faultClient(t, rec, fastRetries(2))
	if err := createDel(c, context.Background()); errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrServer) || len(rec.requests()) != 2 {
		t.Errorf("503 with Retry-After: %v after %d requests", err, len(rec.requests()))
	}
}

// ---- Connection failures ----

// TestConnectionResets: a reset before any answer, after the request body
// was read, or in the middle of the answer's body: checks are retried and
// succeed; creates are not re-sent and report an unknown outcome.
func TestConnectionResets(t *testing.T) {
	midBody := func(w http.ResponseWriter, r *http.Request) {
		conn, buf, _ := w.(http.Hijacker).Hijack()
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"status\":\"ok\",\"res")
		_ = buf.Flush()
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = conn.Close()
	}
	faults := map[string]func(http.ResponseWriter, *http.Request){
		"before answer":   func(w http.ResponseWriter, _ *http.Request) { resetConn(w) },
		"after body read": func(w http.ResponseWriter, r *http.Request) { _, _ = io.ReadAll(r.Body); resetConn(w) },
		"mid answer":      midBody,
	}
	for name, fault := range faults {
		t.Run(name, func(t *testing.T) {
			rec := newRecorder(t, failFirst(1, fault))
			c, logs := faultClient(t, rec, fastRetries(3))
			if err := checkDel(c, context.Background()); err != nil {
				t.Fatalf("check: %v", err)
			}
			if n := len(rec.requests()); n != 2 || len(logs.retries(t)) != 1 {
				t.Fatalf("check: %d requests, want 2", n)
			}
			rec2 := newRecorder(t, failFirst(1, fault))
			c2, _ := faultClient(t, rec2, fastRetries(3))
			err := createDel(c2, context.Background())
			var ou *OutcomeUnknownError
			if !errors.As(err, &ou) || ou.Op != "CreateDeletion" {
				t.Fatalf("create: err = %v, want *OutcomeUnknownError", err)
			}
			if n := len(rec2.requests()); n != 1 {
				t.Fatalf("create sent %d times", n)
			}
		})
	}
}

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

// TestDialErrorsRetried: a request that never left (the dial failed) is
// retried, a create too; when dialling never works the error says so and
// is not an unknown outcome.
func TestDialErrorsRetried(t *testing.T) {
	rec := newRecorder(t, okReply)
	c, logs := faultClient(t, rec, fastRetries(3), WithHTTPClient(flakyDialer(2)))
	if err := createDel(c, context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.requests()); n != 1 || len(logs.retries(t)) != 2 {
		t.Fatalf("%d creates arrived, %d retries logged", n, len(logs.retries(t)))
	}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	_ = ln.Close()
	logs2 := &logSink{}
	c2, err := New(testOAuth, testProject, WithBaseURL("http://"+addr+"/api/app"), WithRateLimiter(nil), WithRetryPolicy(fastRetries(3)), WithLogger(logs2.logger()))
	if err != nil {
		t.Fatal(err)
	}
	err = createDel(c2, context.Background())
	var op *net.OpError
	if err == nil || errors.Is(err, ErrOutcomeUnknown) || !errors.As(err, &op) || !strings.Contains(err.Error(), "giving up after 3 attempts") {
		t.Fatalf("err = %v", err)
	}
	if n := len(logs2.retries(t)); n != 2 {
		t.Fatalf("%d retries logged", n)
	}
}

// TestCreateCancelled: a create cancelled before it could connect is known
// not to have been sent (even when the dialer reports the cancellation
// without a dial error), as is one whose TLS handshake failed; one
// cancelled while the server holds it is an unknown outcome, and still
// matches context.Canceled.
func TestCreateCancelled(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	c, _ := faultClient(t, rec, fastRetries(3))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := createDel(c, ctx); !errors.Is(err, context.Canceled) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("cancelled before sending: %v", err)
	}
	// net/http dials with a context of its own, not the request's: stop
	// the dial when the test ends so that it does not outlive it.
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	stuckDial := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-stop:
				return nil, context.Canceled
			}
		},
	}}
	c2, _ := faultClient(t, rec, fastRetries(3), WithHTTPClient(stuckDial))
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	if err := createDel(c2, ctx); !errors.Is(err, context.Canceled) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("cancelled while dialling: %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	err := createDel(c, ctx)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("cancelled in flight: %v", err)
	}
	if n := len(rec.requests()); n != 1 {
		t.Fatalf("%d creates arrived", n)
	}

	// An untrusted certificate: the handshake fails before anything is
	// sent, and a retry would fail the same way.
	var reached atomic.Int64
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Add(1) }))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake failure is expected
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	logs := &logSink{}
	c3, err := New(testOAuth, testProject, WithBaseURL(tlsSrv.URL+"/api/app"), WithRateLimiter(nil), WithRetryPolicy(fastRetries(3)), WithLogger(logs.logger()))
	if err != nil {
		t.Fatal(err)
	}
	err = createDel(c3, context.Background())
	if err == nil || errors.Is(err, ErrOutcomeUnknown) || reached.Load() != 0 || len(logs.retries(t)) != 0 {
		t.Fatalf("bad certificate: %v, %d reached, %d retries", err, reached.Load(), len(logs.retries(t)))
	}
	assertNoSecret(t, err.Error())
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

// TestTimeouts: a slow answer (headers, or the body after them) times out
// under the http.Client's Timeout; a check is retried, a create reports an
// unknown outcome. A context deadline ends a slow body promptly.
func TestTimeouts(t *testing.T) {
	// The holds end when the client goes away; they are long so that only
	// a timeout or deadline can end a call with these errors.
	slowHeaders := func(w http.ResponseWriter, r *http.Request) { holdUntil(r, time.Minute) }
	slowBody := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "200")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, `{"status":"ok",`)
		w.(http.Flusher).Flush()
		holdUntil(r, time.Minute)
	}
	for name, slow := range map[string]func(http.ResponseWriter, *http.Request){"headers": slowHeaders, "body": slowBody} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t, failFirst(1, slow))
			c, _ := faultClient(t, rec, fastRetries(3), WithHTTPClient(&http.Client{Timeout: 150 * time.Millisecond}))
			if err := checkDel(c, context.Background()); err != nil {
				t.Fatalf("check: %v", err)
			}
			if n := len(rec.requests()); n != 2 {
				t.Fatalf("check: %d requests", n)
			}
			rec2 := newRecorder(t, failFirst(1, slow))
			c2, _ := faultClient(t, rec2, fastRetries(3), WithHTTPClient(&http.Client{Timeout: 150 * time.Millisecond}))
			if err := createDel(c2, context.Background()); !errors.Is(err, ErrOutcomeUnknown) || len(rec2.requests()) != 1 {
				t.Fatalf("create: %v after %d requests", err, len(rec2.requests()))
			}
			rec3 := newRecorder(t, slow)
			c3, _ := faultClient(t, rec3, fastRetries(3))
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
			defer cancel()
			var err error
			returnsWithin(t, 30*time.Second, func() { err = checkDel(c3, ctx) })
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("deadline: %v", err)
			}
		})
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

// countingTransport counts the response body bytes the client reads.
type countingTransport struct {
	rt   http.RoundTripper
	read atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(r)
	if resp != nil {
		resp.Body = &countingBody{resp.Body, &c.read}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// TestHugeBodies: a 10 MiB error body costs at most 64 KiB of reading,
// retried ones at most 4 KiB each; a success body over 8 MiB is refused
// after reading just past the limit.
func TestHugeBodies(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("x", 10<<20)
	for _, tc := range []struct {
		name  string
		code  int
		limit int64
		want  error
	}{
		{"error", 400, 64 << 10, ErrBadRequest},
		{"retried 503", 503, 3*(4<<10) + 64<<10, ErrServer},
		{"success", 200, maxSuccessBody + 1, ErrMalformedResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(t, jsonReply(tc.code, huge))
			ct := &countingTransport{rt: http.DefaultTransport.(*http.Transport).Clone()}
			c, _ := faultClient(t, rec, fastRetries(4), WithHTTPClient(&http.Client{Transport: ct}))
			err := checkDel(c, context.Background())
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v", err)
			}
			if got := ct.read.Load(); got > tc.limit {
				t.Fatalf("read %d bytes of a 10 MiB body, limit %d", got, tc.limit)
			} else {
				t.Logf("read %d bytes of a 10 MiB body", got)
			}
			if len(err.Error()) > 2048 {
				t.Fatalf("error text of %d bytes", len(err.Error()))
			}
		})
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
