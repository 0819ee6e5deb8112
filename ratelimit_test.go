package mpgdpr

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// strictServer answers 429 to any request arriving less than interval after
// the previous one (whatever that one's answer was), as a server enforcing
// "1 request per interval" to the letter would. Other requests get
// reply, or a plausible create/check answer.
//
// Every answer leaves a little more than interval/2 after the request was
// timed, as a real server's work would. The pacer's credit is at most
// interval/2 and is taken from the time after the answer's first byte, so
// with this hold no request can arrive early whatever the network and
// scheduler do: a gap under the interval is a pacing bug, never load, and
// the tests asserting "no gap under the interval" cannot flake.
type strictServer struct {
	*recorder
	interval time.Duration
	mu       sync.Mutex
	last     time.Time
	arrivals []time.Time
	n429     int
	minGap   time.Duration
}

func newStrictServer(t *testing.T, interval time.Duration, reply func(http.ResponseWriter, *http.Request)) *strictServer {
	t.Helper()
	return newStrictServerAfter(t, interval, nil, reply)
}

// newStrictServerAfter is newStrictServer whose handler first runs before,
// if not nil: time spent there is on the request's way in, before the
// server times it.
func newStrictServerAfter(t *testing.T, interval time.Duration, before func(), reply func(http.ResponseWriter, *http.Request)) *strictServer {
	t.Helper()
	s := &strictServer{interval: interval, minGap: time.Hour}
	if reply == nil {
		reply = okReply
	}
	s.recorder = newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if before != nil {
			before()
		}
		s.mu.Lock()
		now := time.Now()
		tooSoon := false
		if !s.last.IsZero() {
			gap := now.Sub(s.last)
			s.minGap = min(s.minGap, gap)
			tooSoon = gap < s.interval
		}
		s.last = now
		s.arrivals = append(s.arrivals, now)
		if tooSoon {
			s.n429++
		}
		s.mu.Unlock()
		time.Sleep(s.interval/2 + time.Millisecond)
		if tooSoon {
			jsonReply(http.StatusTooManyRequests, `{"status":"error","error":"rate limit exceeded"}`)(w, r)
			return
		}
		reply(w, r)
	})
	return s
}

func (s *strictServer) counts() (requests, tooMany int, minGap time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.arrivals), s.n429, s.minGap
}

// okReply answers a create with a task id and anything else with PENDING.
func okReply(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		jsonReply(200, `{"status":"ok","results":{"task_id":"task-1"}}`)(w, r)
	case http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	default:
		jsonReply(200, `{"status":"ok","results":{"status":"PENDING"}}`)(w, r)
	}
}

// hammer makes goroutines×calls calls through the given clients (round
// robin), alternating checks and creates, and returns how many succeeded
// and the errors of the others.
func hammer(clients []*Client, goroutines, calls int) (int, []error) {
	var ok atomic.Int64
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for g := range goroutines {
		c := clients[g%len(clients)]
		wg.Go(func() {
			for i := range calls {
				var err error
				if (g+i)%2 == 0 {
					_, err = c.CheckDeletion(context.Background(), "t1")
				} else {
					_, err = c.CreateDeletion(context.Background(), DeletionRequest{DistinctIDs: []string{"a"}, ComplianceType: GDPR})
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	return int(ok.Load()), errs
}

// TestRateLimitConcurrentNo429 is the target, sped up: 8 goroutines
// × 5 calls through one client with burst 1, against a server that answers
// 429 to any two requests closer than the limit. Retries are off, so a
// single 429 would also fail a call.
func TestRateLimitConcurrentNo429(t *testing.T) {
	t.Parallel()
	const interval = 25 * time.Millisecond
	srv := newStrictServer(t, interval, nil)
	c := srv.client(t, WithRateLimit(rate.Every(interval), 1), WithRetryPolicy(NoRetries()))
	start := time.Now()
	ok, errs := hammer([]*Client{c}, 8, 5)
	elapsed := time.Since(start)
	n, n429, minGap := srv.counts()
	t.Logf("%d/40 succeeded, %d requests, %d × 429, closest gap %v, %v in all", ok, n, n429, minGap, elapsed)
	if ok != 40 || n429 != 0 || n != 40 {
		t.Fatalf("%d/40 succeeded, %d × 429, %d requests; errors: %v", ok, n429, n, errs)
	}
	if elapsed < 39*interval {
		t.Fatalf("40 requests in %v: not paced at %v", elapsed, interval)
	}
}

// TestRateLimitSharedLimiter: two clients sharing one limiter together stay
// within it, as clients of one project must.
func TestRateLimitSharedLimiter(t *testing.T) {
	t.Parallel()
	const interval = 25 * time.Millisecond
	srv := newStrictServer(t, interval, nil)
	shared := rate.NewLimiter(rate.Every(interval), 1)
	a := srv.client(t, WithRateLimiter(shared), WithRetryPolicy(NoRetries()))
	b := srv.client(t, WithRateLimiter(shared), WithRetryPolicy(NoRetries()))
	ok, errs := hammer([]*Client{a, b}, 8, 5)
	n, n429, minGap := srv.counts()
	t.Logf("shared: %d/40 succeeded, %d × 429, closest gap %v", ok, n429, minGap)
	if ok != 40 || n429 != 0 || n != 40 {
		t.Fatalf("%d/40 succeeded, %d × 429, %d requests; errors: %v", ok, n429, n, errs)
	}
	// Separate limiters, by contrast, overrun the server: the test can fail.
	srv2 := newStrictServer(t, interval, nil)
	x := srv2.client(t, WithRateLimit(rate.Every(interval), 1), WithRetryPolicy(NoRetries()))
	y := srv2.client(t, WithRateLimit(rate.Every(interval), 1), WithRetryPolicy(NoRetries()))
	hammer([]*Client{x, y}, 4, 3)
	if _, n429, _ := srv2.counts(); n429 == 0 {
		t.Errorf("two unshared limiters drew no 429: the strict server is not strict")
	}
}

// TestRateLimitDefaultOnePerSecond: the default client, with no rate
// option, keeps to Mixpanel's real limit: 6 calls from 3 goroutines against
// a server enforcing one request per second.
func TestRateLimitDefaultOnePerSecond(t *testing.T) {
	t.Parallel()
	srv := newStrictServer(t, time.Second, nil)
	c, err := New(testOAuth, testProject, WithBaseURL(srv.srv.URL+"/api/app"), WithRetryPolicy(NoRetries()))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ok, errs := hammer([]*Client{c}, 3, 2)
	elapsed := time.Since(start)
	n, n429, minGap := srv.counts()
	t.Logf("1/s: %d/6 succeeded, %d × 429, closest gap %v, %v in all", ok, n429, minGap, elapsed)
	if ok != 6 || n429 != 0 || n != 6 || minGap < time.Second {
		t.Fatalf("%d/6 succeeded, %d × 429, %d requests, closest gap %v; errors: %v", ok, n429, n, minGap, errs)
	}
	if elapsed < 5*time.Second {
		t.Fatalf("6 requests in %v at 1/s", elapsed)
	}
}

// TestRetry429UnderSharedLimiter: retries take their turn at the shared
// limiter like any request. The server answers 429 to the first three
// requests whatever their timing (Retry-After: 0, so only pacing spaces the
// retries), and times every request strictly as well.
func TestRetry429UnderSharedLimiter(t *testing.T) {
	const interval = 25 * time.Millisecond
	var calls atomic.Int64
	srv := newStrictServer(t, interval, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 3 {
			w.Header().Set("Retry-After", "0")
			jsonReply(http.StatusTooManyRequests, `{"status":"error","error":"scan cap"}`)(w, r)
			return
		}
		okReply(w, r)
	})
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	shared := rate.NewLimiter(rate.Every(interval), 1)
	pol := RetryPolicy{MaxAttempts: 10, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, MaxElapsed: 10 * time.Second}
	a := srv.client(t, WithRateLimiter(shared), WithRetryPolicy(pol), WithLogger(logger))
	b := srv.client(t, WithRateLimiter(shared), WithRetryPolicy(pol), WithLogger(logger))
	ok, errs := hammer([]*Client{a, b}, 4, 3)
	n, strict429, minGap := srv.counts()
	if ok != 12 || len(errs) != 0 {
		t.Fatalf("%d/12 succeeded: %v", ok, errs)
	}
	if strict429 != 0 || minGap < interval {
		t.Fatalf("retries bypassed the limiter: %d requests closer than %v (closest %v)", strict429, interval, minGap)
	}
	if n != 15 || strings.Count(logs.String(), "mpgdpr: retrying") != 3 {
		t.Fatalf("%d requests (want 12 + 3 retries); log:\n%s", n, logs.String())
	}
}

// TestRateLimitBurst: a burst above 1 lets that many requests go at once.
func TestRateLimitBurst(t *testing.T) {
	rec := newRecorder(t, okReply)
	c := rec.client(t, WithRateLimit(rate.Every(time.Minute), 3))
	// A token a minute away would be refused at once under this deadline:
	// the three succeed only if they go as a burst.
	burstCtx, cancelBurst := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelBurst()
	for i := range 3 {
		if _, err := c.CheckDeletion(burstCtx, "t"); err != nil {
			t.Fatalf("request %d of a burst of 3: %v", i+1, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.CheckDeletion(ctx, "t"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a 4th request within the minute: %v, want deadline exceeded", err)
	}
	if n := len(rec.requests()); n != 3 {
		t.Fatalf("%d requests sent, want 3", n)
	}
	for _, bad := range [][2]float64{{0, 1}, {-1, 1}, {1, 0}} {
		if _, err := New(testOAuth, testProject, WithRateLimit(rate.Limit(bad[0]), int(bad[1]))); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("WithRateLimit(%v, %v) accepted", bad[0], bad[1])
		}
	}
}

// TestRateLimitWaitEndsWithContext: a caller waiting for its turn stops at
// once when its context ends, and does not keep the turn from others.
func TestRateLimitWaitEndsWithContext(t *testing.T) {
	const interval = 300 * time.Millisecond
	srv := newStrictServer(t, interval, nil)
	c := srv.client(t, WithRateLimit(rate.Every(interval), 1), WithRetryPolicy(NoRetries()))
	if _, err := c.CheckDeletion(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	// The next slot is ~300ms away: a 20ms deadline fails without waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	// The error says the pacer refused without waiting; a wait cut by the
	// deadline would end with the context's own error.
	if _, err := c.CheckDeletion(ctx, "t"); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "next slot is past the deadline") {
		t.Fatalf("err = %v, want deadline exceeded without waiting", err)
	}
	// Cancelled while queued behind another caller's turn.
	ctx2, cancel2 := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { _, err := c.CheckDeletion(context.Background(), "t"); done <- err }()
	go func() { _, err := c.CheckDeletion(ctx2, "t"); done <- err }()
	time.Sleep(30 * time.Millisecond)
	cancel2()
	var errs []error
	for range 2 {
		select {
		case err := <-done:
			errs = append(errs, err)
		case <-time.After(time.Minute): // a guard against a hang, not a speed check
			t.Fatal("a caller is stuck waiting for its turn")
		}
	}
	nCanceled, nOK := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			nOK++
		case errors.Is(err, context.Canceled):
			nCanceled++
		}
	}
	// Which of the two got the turn first is up to the scheduler; either
	// way one was cancelled and the other went through.
	if nOK != 1 || nCanceled != 1 {
		t.Fatalf("results %v, want one success and one cancellation", errs)
	}
	if _, err := c.CheckDeletion(context.Background(), "t"); err != nil {
		t.Fatalf("after cancellations: %v", err)
	}
	if _, n429, _ := srv.counts(); n429 != 0 {
		t.Fatalf("%d × 429", n429)
	}
}

// TestPacingCreditSavesRoundTrip: once creditAfter answers are in, the
// pacer gives credit (half the best round trip, at most half an interval),
// and the strict server still sees every gap at or above the interval. How
// much time the credit saves is a measurement, not a property: it is in
// BenchmarkPacingCredit (BENCHMARKS.md). A test asserting it flaked under
// load (issue 13).
func TestPacingCreditSavesRoundTrip(t *testing.T) {
	t.Parallel()
	const interval = 50 * time.Millisecond
	srv := newStrictServer(t, interval, nil)
	c := srv.client(t, WithRateLimit(rate.Every(interval), 1), WithRetryPolicy(NoRetries()))
	const calls = 8
	for i := range calls {
		if _, err := c.CheckDeletion(context.Background(), "t"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	n, n429, minGap := srv.counts()
	if n != calls || n429 != 0 || minGap < interval {
		t.Fatalf("%d requests, %d × 429, closest gap %v (interval %v)", n, n429, minGap, interval)
	}
	p := pacerFor(c.limiter)
	// The server holds each answer over interval/2 after timing it: the
	// best round trip is at least that, so the credit is at least half of
	// it, and at most half an interval.
	if cr := p.credit(interval); p.samples != calls || p.strict || cr < interval/4 || cr > interval/2 {
		t.Fatalf("pacer: %d samples, strict %v, credit %v; want %d, false, between %v and %v", p.samples, p.strict, cr, calls, interval/4, interval/2)
	}
}

// TestPacingOneStrike: the credit rests on the network's legs not being
// faster than half the best round trip seen. Whatever causes a 429 under
// a limiter (another client of the project, a server stricter than
// assumed), the pacer never gives credit again: every later request goes
// by pure causality, which no network can break. Here the server answers
// 429 to one request once credit is being given (Retry-After 0, the client
// retries), and no other request is refused.
func TestPacingOneStrike(t *testing.T) {
	t.Parallel()
	const interval = 40 * time.Millisecond
	var calls atomic.Int64
	srv := newStrictServer(t, interval, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == creditAfter+2 {
			w.Header().Set("Retry-After", "0")
			jsonReply(http.StatusTooManyRequests, `{"status":"error","error":"another client took the slot"}`)(w, r)
			return
		}
		okReply(w, r)
	})
	c := srv.client(t, WithRateLimit(rate.Every(interval), 1), WithRetryPolicy(fastRetries(3)))
	p := pacerFor(c.limiter)
	for i := range 8 {
		if _, err := c.CheckDeletion(context.Background(), "t"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if i == creditAfter-1 && p.credit(interval) == 0 {
			t.Fatalf("no credit after %d answers", creditAfter)
		}
	}
	n, n429, minGap := srv.counts()
	if n != 9 || n429 != 0 || minGap < interval {
		t.Fatalf("%d requests (want 8 + 1 retry), %d refused for pacing, closest gap %v", n, n429, minGap)
	}
	if !p.strict || p.credit(interval) != 0 {
		t.Fatalf("after a 429 the pacer still gives credit %v", p.credit(interval))
	}
}

// TestPacingNoHooksNoCredit: a transport that never calls the trace hooks
// yields no round trip, so the pacer stays with pure causality.
func TestPacingNoHooksNoCredit(t *testing.T) {
	t.Parallel()
	srv := newStrictServer(t, 10*time.Millisecond, nil)
	hookless := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		// A fresh context drops the trace, as a transport of its own would.
		return http.DefaultTransport.RoundTrip(r.Clone(context.Background()))
	})
	c := srv.client(t, WithRateLimit(rate.Every(10*time.Millisecond), 1), WithHTTPClient(&http.Client{Transport: hookless}))
	for range creditAfter + 2 {
		if _, err := c.CheckDeletion(context.Background(), "t"); err != nil {
			t.Fatal(err)
		}
	}
	if p := pacerFor(c.limiter); p.samples != 0 || p.credit(time.Second) != 0 {
		t.Fatalf("%d round trips measured without hooks, credit %v", p.samples, p.credit(time.Second))
	}
}

// TestPacerCredit: the credit's rule, without a network.
func TestPacerCredit(t *testing.T) {
	const gap = 100 * time.Millisecond
	p := &pacer{}
	for i, rtt := range []time.Duration{30 * time.Millisecond, 0, 12 * time.Millisecond, 20 * time.Millisecond} {
		if got := p.credit(gap); got != 0 {
			t.Fatalf("credit %v after %d answers", got, i)
		}
		p.observe(http.StatusOK, rtt)
	}
	p.observe(0, time.Millisecond) // no answer: not a round trip
	if got := p.credit(gap); got != 6*time.Millisecond {
		t.Fatalf("credit %v, want half the best round trip (6ms)", got)
	}
	p.observe(http.StatusOK, time.Second)
	if got := p.credit(gap); got != 6*time.Millisecond {
		t.Fatalf("a slow answer changed the credit to %v", got)
	}
	q := &pacer{bestRTT: time.Second, samples: creditAfter}
	if got := q.credit(gap); got != gap/2 {
		t.Fatalf("credit %v, want at most half the interval", got)
	}
	p.observe(http.StatusTooManyRequests, time.Millisecond)
	p.observe(http.StatusOK, time.Millisecond)
	if got := p.credit(gap); got != 0 {
		t.Fatalf("credit %v after a 429", got)
	}
}

// TestSleepUntil: never early, and a cancelled wait returns at once.
func TestSleepUntil(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{0, 300 * time.Microsecond, 3 * time.Millisecond} {
		at := time.Now().Add(d)
		if err := sleepUntil(context.Background(), at); err != nil {
			t.Fatal(err)
		}
		if now := time.Now(); now.Before(at) {
			t.Fatalf("returned %v early", at.Sub(now))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	var err error
	returnsWithin(t, time.Minute, func() { err = sleepUntil(ctx, time.Now().Add(time.Hour)) })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// connCount is the per-connection request counter of newDroppingServer.
type connCount struct{}

// TestPacingCoversTransportReplays: when a kept-alive connection drops
// after the server has read a GET, net/http replays the request on a new
// connection inside one attempt. Each replay must take its turn too. The
// server here enforces the interval by arrival time and hangs up, without
// an answer, on the second request of every connection, so every other
// request on the wire is such a replay. Before replays were paced, the
// replay arrived a millisecond after the dropped request and was refused
// (README promises at most one request per limiter is ever refused for
// pacing; here a call failed each time).
func TestPacingCoversTransportReplays(t *testing.T) {
	t.Parallel()
	const interval = 40 * time.Millisecond
	var mu sync.Mutex
	var arrivals []time.Time
	var dropped, tooSoon int
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := r.Context().Value(connCount{}).(*atomic.Int32).Add(1)
		mu.Lock()
		now := time.Now()
		early := len(arrivals) > 0 && now.Sub(arrivals[len(arrivals)-1]) < interval
		arrivals = append(arrivals, now)
		if early {
			tooSoon++
		}
		if n == 2 {
			dropped++
		}
		mu.Unlock()
		if n == 2 { // read, then hang up: the client sees EOF on a reused connection
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		time.Sleep(interval/2 + time.Millisecond) // see strictServer: no credit can make a request early
		if early {
			jsonReply(http.StatusTooManyRequests, `{"status":"error","error":"rate limit exceeded"}`)(w, r)
			return
		}
		okReply(w, r)
	}))
	srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connCount{}, new(atomic.Int32))
	}
	srv.Start()
	t.Cleanup(srv.Close)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := New(testOAuth, testProject, WithBaseURL(srv.URL+"/api/app"), WithHTTPClient(&http.Client{Transport: tr}),
		WithRateLimit(rate.Every(interval), 1), WithRetryPolicy(NoRetries()))
	if err != nil {
		t.Fatal(err)
	}
	const calls = 6
	for i := range calls {
		if _, err := c.CheckDeletion(context.Background(), "t"); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if dropped == 0 {
		t.Fatal("no connection was dropped: the test tests nothing")
	}
	if len(arrivals) != calls+dropped || tooSoon != 0 {
		t.Fatalf("%d requests for %d calls and %d drops, %d arrived closer than %v", len(arrivals), calls, dropped, tooSoon, interval)
	}
	for i := 1; i < len(arrivals); i++ {
		if g := arrivals[i].Sub(arrivals[i-1]); g < interval {
			t.Fatalf("requests %d and %d arrived %v apart, under the interval %v", i, i+1, g, interval)
		}
	}
}

// TestPacingCoversRedirects: a redirect to the same API host that the
// http.Client follows is a second request on the wire within one attempt;
// it takes its turn like a replay (the GotConn hook runs for it too).
func TestPacingCoversRedirects(t *testing.T) {
	t.Parallel()
	const interval = 40 * time.Millisecond
	srv := newStrictServer(t, interval, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("hop") == "" {
			http.Redirect(w, r, r.URL.Path+"?"+r.URL.RawQuery+"&hop=1", http.StatusTemporaryRedirect)
			return
		}
		okReply(w, r)
	})
	c := srv.client(t, WithRateLimit(rate.Every(interval), 1), WithRetryPolicy(NoRetries()))
	for i := range 3 {
		if _, err := c.CheckDeletion(context.Background(), "t"); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	if n, n429, minGap := srv.counts(); n != 6 || n429 != 0 || minGap < interval {
		t.Fatalf("%d requests (want 3 + 3 redirected), %d × 429, closest gap %v", n, n429, minGap)
	}
}
