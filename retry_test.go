package mpgdpr

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestMaxElapsedAfter429s: when MaxElapsed runs out after 429s, the error
// still says the call was rate limited (errors.Is ErrRateLimited, errors.As
// *Error with the 429), as well as that the budget ran out. Before, it
// matched only context.DeadlineExceeded. Two ways to run out: the limiter's
// next turn is past the budget, or the next attempt hangs until it ends.
func TestMaxElapsedAfter429s(t *testing.T) {
	outer, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(time.Minute, cancel) // only keeps a regression from hanging
	pol := RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, MaxElapsed: 300 * time.Millisecond}
	var n atomic.Int32
	throttleThenHang := func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			jsonReply(http.StatusTooManyRequests, `{"status":"error","error":"slow down"}`)(w, r)
			return
		}
		<-r.Context().Done()
	}
	for name, opts := range map[string][]Option{
		"limiter":   {WithRateLimiter(rate.NewLimiter(rate.Every(time.Hour), 2))},
		"in flight": nil,
	} {
		t.Run(name, func(t *testing.T) {
			n.Store(0)
			c, _ := faultClient(t, newRecorder(t, throttleThenHang), pol, opts...)
			err := checkDel(c, outer)
			var apiErr *Error
			if !errors.Is(err, ErrRateLimited) || !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests {
				t.Errorf("the 429 is lost: %v", err)
			}
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "MaxElapsed") || outer.Err() != nil {
				t.Errorf("the budget's end is lost: %v", err)
			}
		})
	}
	// A create whose last attempt may have been received is an unknown
	// outcome, and must not look like a refusal (a 429 of an earlier try).
	n.Store(1)
	c, _ := faultClient(t, newRecorder(t, throttleThenHang), pol)
	err := createDel(c, outer)
	var apiErr *Error
	if !errors.Is(err, ErrOutcomeUnknown) || errors.As(err, &apiErr) {
		t.Errorf("create cut in flight after a 429: %v", err)
	}
}

// TestShouldRetry is the retry rule's table: every way an attempt can end,
// for a check (idempotent) and a create.
func TestShouldRetry(t *testing.T) {
	reset := &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}
	dial := &net.OpError{Op: "dial", Err: errors.New("connection refused")}
	withRA := http.Header{"Retry-After": {"3"}}
	for _, tc := range []struct {
		name string
		a    attemptResult
		want decision
	}{
		{"check: 200", attemptResult{idempotent: true, sent: true, status: 200}, deliver},
		{"check: 400", attemptResult{idempotent: true, sent: true, status: 400}, deliver},
		{"check: 404", attemptResult{idempotent: true, sent: true, status: 404}, deliver},
		{"check: 429", attemptResult{idempotent: true, sent: true, status: 429}, retry},
		{"check: 500", attemptResult{idempotent: true, sent: true, status: 500}, deliver},
		{"check: 502", attemptResult{idempotent: true, sent: true, status: 502}, retry},
		{"check: 503", attemptResult{idempotent: true, sent: true, status: 503}, retry},
		{"check: 504", attemptResult{idempotent: true, sent: true, status: 504}, retry},
		{"create: 200", attemptResult{sent: true, status: 200}, deliver},
		{"create: 429", attemptResult{sent: true, status: 429}, retry},
		{"create: 503 with Retry-After", attemptResult{sent: true, status: 503, header: withRA}, retry},
		{"create: 503 without", attemptResult{sent: true, status: 503}, deliver},
		{"create: 502", attemptResult{sent: true, status: 502}, deliver},
		{"create: 504", attemptResult{sent: true, status: 504}, deliver},
		{"check: reset", attemptResult{idempotent: true, sent: true, err: reset}, retry},
		{"check: dial failed", attemptResult{idempotent: true, err: dial}, retry},
		{"create: dial failed", attemptResult{err: dial}, retry},
		{"create: reset after sending", attemptResult{sent: true, err: reset}, unknown},
		{"create: cancelled after sending", attemptResult{sent: true, err: context.Canceled, ctxDone: true}, unknown},
		{"check: cancelled", attemptResult{idempotent: true, sent: true, err: context.Canceled, ctxDone: true}, fail},
		{"check: refused redirect", attemptResult{idempotent: true, sent: true, err: &redirectError{errors.New("no")}}, fail},
		{"check: bad certificate", attemptResult{idempotent: true, sent: true, err: x509.UnknownAuthorityError{}}, fail},
		{"create: refused by a wrapper", attemptResult{sent: true, err: &unsentError{msg: "no"}}, refused},
		{"check: refused by a wrapper", attemptResult{idempotent: true, err: &unsentError{msg: "no"}}, refused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := shouldRetry(tc.a)
			if got != tc.want || why == "" {
				t.Errorf("shouldRetry = %d (%s), want %d", got, why, tc.want)
			}
		})
	}
}

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
