package mpgdpr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pollServer answers the n-th check (from 1) with script(n).
type pollServer struct {
	*recorder
	mu    sync.Mutex
	times []time.Time
}

func newPollServer(t *testing.T, script func(n int) (int, string)) *pollServer {
	t.Helper()
	s := &pollServer{}
	s.recorder = newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.times = append(s.times, time.Now())
		n := len(s.times)
		s.mu.Unlock()
		code, body := script(n)
		jsonReply(code, body)(w, r)
	})
	return s
}

func (s *pollServer) polls() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.times)
}

func status(s string) string {
	return fmt.Sprintf(`{"status":"ok","results":{"status":%q}}`, s)
}

// fixedRand makes the client's jitter deterministic.
func fixedRand(c *Client, f float64) { c.rand = func() float64 { return f } }

// TestWaitDeletionPollsUntilTerminal: one request per poll, waits doubling
// from the start interval up to the max, every status shown to OnPoll.
func TestWaitDeletionPollsUntilTerminal(t *testing.T) {
	seq := []string{"PENDING", "STAGING", "STARTED", "STARTED", "STARTED", "SUCCESS"}
	srv := newPollServer(t, func(n int) (int, string) { return 200, status(seq[min(n, len(seq))-1]) })
	c := srv.client(t)
	fixedRand(c, 1) // waits exactly the interval: 20, 40, 80, 80, 80 ms
	var seen []string
	task, err := c.WaitDeletion(context.Background(), "del-1",
		WithPollInterval(20*time.Millisecond, 80*time.Millisecond),
		WithOnPoll(func(t *Task) { seen = append(seen, string(t.Status)) }))
	if err != nil || task.Status != StatusSuccess {
		t.Fatalf("= %+v, %v", task, err)
	}
	if !slices.Equal(seen, seq) {
		t.Fatalf("OnPoll saw %v", seen)
	}
	times := srv.polls()
	if len(times) != len(seq) {
		t.Fatalf("%d requests for %d polls", len(times), len(seq))
	}
	// A wait never ends early (how late it ends is the machine's load, not
	// a property); the intervals themselves are checked without a clock
	// below and in TestWaitJitter.
	want := []time.Duration{20, 40, 80, 80, 80}
	for i := 1; i < len(times); i++ {
		if gap, w := times[i].Sub(times[i-1]), want[i-1]*time.Millisecond; gap < w {
			t.Errorf("wait %d: %v, want at least %v", i, gap, w)
		}
	}
	iv := 20 * time.Millisecond
	for i, w := range want {
		if iv != w*time.Millisecond {
			t.Errorf("interval %d: %v, want %v", i+1, iv, w*time.Millisecond)
		}
		iv = nextPollInterval(iv, 80*time.Millisecond)
	}
	if got := nextPollInterval(time.Duration(1<<62), time.Duration(1<<62+1)); got != time.Duration(1<<62+1) {
		t.Errorf("doubling near the top: %v", got)
	}
	for _, r := range srv.requests() {
		if r.Method != http.MethodGet || r.Path != "/api/app/data-deletions/v3.0/del-1" {
			t.Fatalf("request %s %s", r.Method, r.Path)
		}
	}
}

// TestWaitTerminalStates: every terminal status ends the wait with that
// task and no error; the caller checks Succeeded.
func TestWaitTerminalStates(t *testing.T) {
	for _, st := range []Status{StatusSuccess, StatusFailure, StatusRevoked, StatusNotFound} {
		srv := newPollServer(t, func(int) (int, string) {
			return 200, `{"status":"ok","results":{"status":"` + strings.ToLower(string(st)) + `","result":"https://s.example.com/x.zip"}}`
		})
		task, err := srv.client(t).WaitRetrieval(context.Background(), "r1", WithPollInterval(time.Millisecond, time.Millisecond))
		if err != nil || task.Status != st || len(srv.polls()) != 1 {
			t.Errorf("%s: %+v, %v after %d polls", st, task, err, len(srv.polls()))
		}
		if st == StatusSuccess && task.DownloadURL != "https://s.example.com/x.zip" {
			t.Errorf("link %q", task.DownloadURL)
		}
	}
}

// TestWaitNoBusyPolling: against a task that never ends, the number of
// requests in a fixed time is bounded by the intervals, whatever the jitter.
func TestWaitNoBusyPolling(t *testing.T) {
	t.Parallel()
	for _, f := range []float64{0, 0.5, 1} {
		srv := newPollServer(t, func(int) (int, string) { return 200, status("PENDING") })
		c := srv.client(t)
		fixedRand(c, f)
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		task, err := c.WaitDeletion(ctx, "d", WithPollInterval(10*time.Millisecond, 40*time.Millisecond))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || task == nil || task.Status != StatusPending {
			t.Fatalf("jitter %v: %+v, %v", f, task, err)
		}
		n := len(srv.polls())
		// Shortest waits (f=0): 5, 10, 20, 20, … ms: at most 1+2+20 polls in
		// 400ms, however fast the machine. (A loaded one polls less: no
		// lower bound.)
		if n > 23 {
			t.Fatalf("jitter %v: %d polls in 400ms", f, n)
		}
		t.Logf("jitter %v: %d polls in 400ms", f, n)
	}
}

// TestWaitJitter: with an injected random source, each wait is between half
// and all of the interval.
func TestWaitJitter(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		want time.Duration
	}{{0, 50}, {0.5, 75}, {0.999999, 99}, {1, 100}, {-3, 50}, {7, 100}} {
		got := pollDelay(100*time.Millisecond, func() float64 { return tc.f })
		if got.Truncate(time.Millisecond) != tc.want*time.Millisecond {
			t.Errorf("rand %v: %v, want %v", tc.f, got, tc.want*time.Millisecond)
		}
	}
}

// TestWaitTransientAndPermanentErrors: 429/5xx polls are retried, and
// logged without secrets; 401/403/404 end the wait at once, with the last
// status seen.
func TestWaitTransientAndPermanentErrors(t *testing.T) {
	var logs bytes.Buffer
	srv := newPollServer(t, func(n int) (int, string) {
		switch n {
		case 1:
			return 503, `{"status":"error","error":"busy ` + testOAuth + `"}`
		case 2:
			return 429, `{"status":"error","error":"slow"}`
		case 3:
			return 200, `not json`
		}
		return 200, status("SUCCESS")
	})
	c := srv.client(t, WithRetryPolicy(NoRetries()), WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	task, err := c.WaitRetrieval(context.Background(), "r", WithPollInterval(time.Millisecond, time.Millisecond))
	if err != nil || task.Status != StatusSuccess || len(srv.polls()) != 4 {
		t.Fatalf("%+v, %v after %d polls", task, err, len(srv.polls()))
	}
	if n := strings.Count(logs.String(), "poll failed"); n != 3 {
		t.Fatalf("%d poll failures logged:\n%s", n, logs.String())
	}
	assertNoSecret(t, logs.String())

	for code, sentinel := range map[int]error{400: ErrBadRequest, 401: ErrUnauthorized, 403: ErrForbidden, 404: ErrNotFound} {
		srv := newPollServer(t, func(n int) (int, string) {
			if n == 1 {
				return 200, status("STARTED")
			}
			return code, `{"status":"error","error":"no"}`
		})
		task, err := srv.client(t).WaitDeletion(context.Background(), "d", WithPollInterval(time.Millisecond, time.Millisecond))
		if !errors.Is(err, sentinel) || task == nil || task.Status != StatusStarted || len(srv.polls()) != 2 {
			t.Errorf("%d: %+v, %v after %d polls", code, task, err, len(srv.polls()))
		}
	}
}

// TestWaitContextEnds: cancelling ends a long wait at once, keeping the
// last status; a deadline during failing polls reports both causes.
func TestWaitContextEnds(t *testing.T) {
	srv := newPollServer(t, func(int) (int, string) { return 200, status("STAGING") })
	c := srv.client(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	var task *Task
	var err error
	returnsWithin(t, time.Minute, func() { task, err = c.WaitDeletion(ctx, "d", WithPollInterval(time.Hour, time.Hour)) })
	if !errors.Is(err, context.Canceled) || task == nil || task.Status != StatusStaging || len(srv.polls()) != 1 {
		t.Fatalf("%+v, %v", task, err)
	}

	failing := newPollServer(t, func(int) (int, string) { return 502, "gateway" })
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	task, err = failing.client(t, WithRetryPolicy(NoRetries())).WaitDeletion(ctx2, "d", WithPollInterval(5*time.Millisecond, 10*time.Millisecond))
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrServer) || task != nil {
		t.Fatalf("%+v, %v", task, err)
	}
}

// TestWaitDefaultsAndInput: the default intervals, and an invalid tracking
// id fails before any request.
func TestWaitDefaultsAndInput(t *testing.T) {
	t.Parallel()
	srv := newPollServer(t, func(int) (int, string) { return 200, status("PENDING") })
	c := srv.client(t)
	fixedRand(c, 1)
	// The first poll is immediate; the second would be DefaultPollStart
	// later. A deadline just past the first poll proves the default start.
	ctx, cancel := context.WithTimeout(context.Background(), DefaultPollStart/10)
	defer cancel()
	if _, err := c.WaitDeletion(ctx, "d"); !errors.Is(err, context.DeadlineExceeded) || len(srv.polls()) != 1 {
		t.Fatalf("%v after %d polls", err, len(srv.polls()))
	}
	if DefaultPollStart != 5*time.Second || DefaultPollMax != 10*time.Minute {
		t.Fatal("documented defaults changed")
	}
	// A zero start keeps the default; a max below start is raised to it.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, err := c.WaitDeletion(ctx2, "d", WithPollInterval(0, time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) || len(srv.polls()) != 2 {
		t.Fatalf("zero start: %v after %d polls in all, want 2", err, len(srv.polls()))
	}
	ctx3, cancel3 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel3()
	// Counted as the loop sees them (OnPoll), not as the server does: a
	// poll the pipeline retried on a loaded machine reaches it twice.
	var n atomic.Int32
	_, _ = c.WaitDeletion(ctx3, "d", WithPollInterval(50*time.Millisecond, time.Millisecond), WithOnPoll(func(*Task) { n.Add(1) }))
	if n := n.Load(); n < 2 || n > 7 {
		t.Fatalf("start 50ms, max 1ms: %d polls in 300ms, want about 6 (each wait at least 50ms)", n)
	}
	before := len(srv.polls())
	for _, id := range []string{"", " ", "..", "a\nb"} {
		if _, err := c.WaitRetrieval(context.Background(), id); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%q: %v", id, err)
		}
	}
	if len(srv.polls()) != before {
		t.Fatal("an invalid tracking id was polled")
	}
}
