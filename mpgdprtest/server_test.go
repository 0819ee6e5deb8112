package mpgdprtest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/export"
	"github.com/privacykit/mpgdpr/gen"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

func newServer(t *testing.T, opts ...mpgdprtest.Option) *mpgdprtest.Server {
	t.Helper()
	s := mpgdprtest.NewServer(opts...)
	t.Cleanup(s.Close)
	return s
}

// fastRetries keeps retry tests quick: Retry-After is honoured up to 50ms.
var fastRetries = mpgdpr.RetryPolicy{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, MaxElapsed: 10 * time.Second, MaxRetryAfter: 50 * time.Millisecond}

func newClient(t *testing.T, s *mpgdprtest.Server, opts ...mpgdpr.Option) *mpgdpr.Client {
	t.Helper()
	base := []mpgdpr.Option{mpgdpr.WithBaseURL(s.URL()), mpgdpr.WithRateLimiter(nil), mpgdpr.WithRetryPolicy(fastRetries)}
	c, err := mpgdpr.New(s.OAuthToken(), s.ProjectToken(), append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func statuses(t *testing.T, n int, check func() (*mpgdpr.Task, error)) []string {
	t.Helper()
	var out []string
	for range n {
		tk, err := check()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(tk.Status))
	}
	return out
}

// TestOperations runs all five operations with the real client: every
// request and answer passes the document, and the tasks hold what was sent.
func TestOperations(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s)
	ctx := context.Background()

	rid, err := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: []string{"u1", "u2"}, ComplianceType: mpgdpr.CCPA, DisclosureType: mpgdpr.DisclosureCategories})
	if err != nil {
		t.Fatal(err)
	}
	got := statuses(t, 5, func() (*mpgdpr.Task, error) { return c.CheckRetrieval(ctx, rid) })
	if want := []string{"PENDING", "STAGING", "STARTED", "SUCCESS", "SUCCESS"}; !slices.Equal(got, want) {
		t.Errorf("retrieval statuses %v, want %v", got, want)
	}
	tk, err := c.CheckRetrieval(ctx, rid)
	if err != nil {
		t.Fatal(err)
	}
	if tk.TrackingID != rid || tk.DownloadURL == "" || !slices.Equal(tk.DistinctIDs, []string{"u1", "u2"}) ||
		tk.ComplianceType != "CCPA" || tk.DisclosureType != "CATEGORIES" || tk.ProjectID != mpgdprtest.DefaultProjectID || tk.DateRequested.IsZero() {
		t.Errorf("finished retrieval: %+v", tk)
	}

	did, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"u1"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		t.Fatal(err)
	}
	if tk, err := c.CheckDeletion(ctx, did); err != nil || tk.Status != mpgdpr.StatusPending {
		t.Fatalf("CheckDeletion = %+v, %v", tk, err)
	}
	if err := c.CancelDeletion(ctx, did); err != nil {
		t.Fatal(err)
	}
	if tk, err := c.CheckDeletion(ctx, did); err != nil || tk.Status != mpgdpr.StatusRevoked {
		t.Fatalf("after cancel: %+v, %v", tk, err)
	}
	if _, err := c.CheckDeletion(ctx, rid); !errors.Is(err, mpgdpr.ErrNotFound) {
		t.Errorf("a retrieval's id checked as a deletion: %v, want 404", err)
	}
	if _, err := c.CheckRetrieval(ctx, "no-such-task"); !errors.Is(err, mpgdpr.ErrNotFound) {
		t.Errorf("unknown id: %v, want 404", err)
	}

	s.AssertNoViolations(t)
	ops := map[string]int{}
	for _, r := range s.Requests() {
		ops[r.Op]++
		if r.Bearer != mpgdprtest.CredentialValid || r.ProjectToken != mpgdprtest.CredentialValid {
			t.Errorf("%s %s: credentials %s/%s", r.Method, r.Path, r.Bearer, r.ProjectToken)
		}
	}
	want := map[string]int{"createRetrieval": 1, "checkRetrieval": 7, "createDeletion": 1, "checkDeletion": 3, "cancelDeletion": 1}
	for op, n := range want {
		if ops[op] != n {
			t.Errorf("%s seen %d times, want %d (all: %v)", op, ops[op], n, ops)
		}
	}
	if got := s.Tasks(); len(got) != 2 || got[0].ID != rid || got[1].ID != did || got[1].Status != mpgdprtest.StatusRevoked {
		t.Errorf("Tasks() = %+v", got)
	}
}

func TestScheduleManual(t *testing.T) {
	s := newServer(t, mpgdprtest.WithSchedule(mpgdprtest.Manual()))
	c := newClient(t, s)
	ctx := context.Background()
	id, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(t, 3, func() (*mpgdpr.Task, error) { return c.CheckDeletion(ctx, id) }); !slices.Equal(got, []string{"PENDING", "PENDING", "PENDING"}) {
		t.Errorf("manual schedule moved by itself: %v", got)
	}
	if err := s.Advance(id); err != nil {
		t.Fatal(err)
	}
	s.AdvanceAll()
	if tk, _ := s.Task(id); tk.Status != mpgdprtest.StatusStarted || tk.Checks != 3 {
		t.Errorf("after two steps: %+v", tk)
	}
	s.AdvanceAll()
	if err := s.Advance(id); err == nil {
		t.Error("advancing a finished task succeeded")
	}
	if err := s.SetStatus(id, mpgdprtest.StatusFailure); err != nil {
		t.Fatal(err)
	}
	if tk, err := c.CheckDeletion(ctx, id); err != nil || tk.Status != mpgdpr.StatusFailure {
		t.Errorf("forced FAILURE: %+v, %v", tk, err)
	}
	if err := s.Advance("nope"); err == nil {
		t.Error("advancing an unknown task succeeded")
	}
	s.AssertNoViolations(t)
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestScheduleTimed(t *testing.T) {
	clock := &fakeClock{now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := newServer(t, mpgdprtest.WithSchedule(mpgdprtest.Timed(time.Minute, time.Hour, 24*time.Hour)), mpgdprtest.WithClock(clock.Now))
	c := newClient(t, s)
	ctx := context.Background()
	id, err := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		advance time.Duration
		want    mpgdpr.Status
	}{
		{0, mpgdpr.StatusPending},
		{59 * time.Second, mpgdpr.StatusPending},
		{time.Second, mpgdpr.StatusStaging},
		{time.Hour, mpgdpr.StatusStarted},
		{48 * time.Hour, mpgdpr.StatusSuccess},
	}
	for _, st := range steps {
		clock.Add(st.advance)
		tk, err := c.CheckRetrieval(ctx, id)
		if err != nil || tk.Status != st.want {
			t.Fatalf("after +%v: %+v, %v; want %s", st.advance, tk, err, st.want)
		}
	}
	tk, _ := s.Task(id)
	if want := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC); !tk.Requested.Equal(want) {
		t.Errorf("requested at %v, want the injected clock's %v", tk.Requested, want)
	}
	s.AssertNoViolations(t)
}

// TestCancelRules: PENDING and STAGING cancel (204, then REVOKED);
// STARTED and ended tasks answer 405.
func TestCancelRules(t *testing.T) {
	s := newServer(t, mpgdprtest.WithSchedule(mpgdprtest.Manual()))
	c := newClient(t, s)
	ctx := context.Background()
	create := func() string {
		id, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"x-" + time.Now().Format("150405.000000000")}, ComplianceType: mpgdpr.GDPR})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	for steps, wantOK := range []bool{true, true, false, false} { // PENDING, STAGING, STARTED, SUCCESS
		id := create()
		for range steps {
			if err := s.Advance(id); err != nil {
				t.Fatal(err)
			}
		}
		before, _ := s.Task(id)
		err := c.CancelDeletion(ctx, id)
		after, _ := s.Task(id)
		if wantOK {
			if err != nil || after.Status != mpgdprtest.StatusRevoked {
				t.Errorf("cancel from %s: %v, now %s", before.Status, err, after.Status)
			}
			// A second cancel meets 405, and the client, finding the task
			// REVOKED, reports success: the cancel is in effect.
			if err := c.CancelDeletion(ctx, id); err != nil {
				t.Errorf("second cancel of a REVOKED task: %v, want success", err)
			}
			var cancels []int
			for _, r := range s.Requests() {
				if r.Op == mpgdprtest.OpCancelDeletion && strings.HasSuffix(r.Path, "/"+id) {
					cancels = append(cancels, r.Status)
				}
			}
			if len(cancels) != 2 || cancels[1] != 405 {
				t.Errorf("cancel answers %v, want [204 405]", cancels)
			}
		} else if !errors.Is(err, mpgdpr.ErrCannotCancel) || after.Status != before.Status {
			t.Errorf("cancel from %s: %v (status now %s), want 405 and no change", before.Status, err, after.Status)
		}
	}
	if err := c.CancelDeletion(ctx, "nope"); !errors.Is(err, mpgdpr.ErrNotFound) {
		t.Errorf("cancel unknown: %v", err)
	}
	rid, _ := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: []string{"r"}, ComplianceType: mpgdpr.GDPR})
	if err := c.CancelDeletion(ctx, rid); !errors.Is(err, mpgdpr.ErrNotFound) {
		t.Errorf("cancel a retrieval: %v, want 404", err)
	}
	s.AssertNoViolations(t)
}

// TestConflict: a deletion for ids that a running deletion covers answers
// 409 naming those ids and tasks; ended deletions do not conflict.
func TestConflict(t *testing.T) {
	s := newServer(t, mpgdprtest.WithSchedule(mpgdprtest.Manual()))
	c := newClient(t, s)
	ctx := context.Background()
	first, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"a", "b"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"c"}, ComplianceType: mpgdpr.CCPA})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"z", "c", "b"}, ComplianceType: mpgdpr.GDPR})
	var e *mpgdpr.Error
	if !errors.As(err, &e) || !errors.Is(err, mpgdpr.ErrConflict) {
		t.Fatalf("overlapping deletion: %v, want 409", err)
	}
	if !slices.Equal(e.ConflictingDistinctIDs, []string{"b", "c"}) || !slices.Equal(e.ConflictingTaskIDs, []string{first, second}) {
		t.Errorf("conflict names ids %v tasks %v", e.ConflictingDistinctIDs, e.ConflictingTaskIDs)
	}
	if n := len(s.Tasks()); n != 2 {
		t.Errorf("%d tasks after a rejected create, want 2", n)
	}
	// A retrieval is not a deletion: no conflict.
	if _, err := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.GDPR}); err != nil {
		t.Errorf("retrieval for an id being deleted: %v", err)
	}
	// Once the deletions end (one succeeds, one is cancelled), the ids are free.
	for range 3 {
		_ = s.Advance(first)
	}
	if err := c.CancelDeletion(ctx, second); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"z", "c", "b"}, ComplianceType: mpgdpr.GDPR}); err != nil {
		t.Errorf("after the deletions ended: %v", err)
	}
	s.AssertNoViolations(t)
}

func TestTokens(t *testing.T) {
	s := newServer(t, mpgdprtest.WithTokens("oauth-right-1234", "project-right-5678"))
	ctx := context.Background()
	try := func(oauth, project string) error {
		c, err := mpgdpr.New(oauth, project, mpgdpr.WithBaseURL(s.URL()), mpgdpr.WithRateLimiter(nil), mpgdpr.WithRetryPolicy(mpgdpr.NoRetries()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.CheckDeletion(ctx, "any")
		return err
	}
	if err := try("oauth-wrong-0000", "project-right-5678"); !errors.Is(err, mpgdpr.ErrUnauthorized) {
		t.Errorf("wrong OAuth token: %v, want 401", err)
	}
	if err := try("oauth-right-1234", "project-wrong-0000"); !errors.Is(err, mpgdpr.ErrForbidden) {
		t.Errorf("wrong project token: %v, want 403", err)
	}
	if err := try("oauth-right-1234", "project-right-5678"); !errors.Is(err, mpgdpr.ErrNotFound) {
		t.Errorf("right tokens: %v, want 404 for the unknown task", err)
	}
	reqs := s.Requests()
	want := []struct{ bearer, project mpgdprtest.Credential }{
		{mpgdprtest.CredentialInvalid, mpgdprtest.CredentialValid},
		{mpgdprtest.CredentialValid, mpgdprtest.CredentialInvalid},
		{mpgdprtest.CredentialValid, mpgdprtest.CredentialValid},
	}
	for i, w := range want {
		if reqs[i].Bearer != w.bearer || reqs[i].ProjectToken != w.project {
			t.Errorf("request %d recorded %s/%s, want %s/%s", i, reqs[i].Bearer, reqs[i].ProjectToken, w.bearer, w.project)
		}
	}
	s.AssertNoViolations(t)
}

// TestRateLimit: over the limit the fake answers 429 with Retry-After, and
// the client's retries get every call through.
func TestRateLimit(t *testing.T) {
	s := newServer(t, mpgdprtest.WithRateLimit(20))
	c := newClient(t, s, mpgdpr.WithRetryPolicy(mpgdpr.RetryPolicy{MaxAttempts: 10, BaseDelay: time.Millisecond, MaxElapsed: 10 * time.Second, MaxRetryAfter: 60 * time.Millisecond}))
	ctx := context.Background()
	id, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, err := c.CheckDeletion(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	n429 := 0
	for _, r := range s.Requests() {
		if r.Status == http.StatusTooManyRequests {
			n429++
		}
	}
	if n429 == 0 {
		t.Error("no 429 answered for back-to-back calls over a 20/s limit")
	}
	if tk, _ := s.Task(id); tk.Checks != 4 {
		t.Errorf("%d checks got through, want 4", tk.Checks)
	}

	// The answer itself, as a client without retries sees it: the bucket
	// was just emptied by the last call.
	noRetry := newClient(t, s, mpgdpr.WithRetryPolicy(mpgdpr.NoRetries()))
	_, err = noRetry.CheckDeletion(ctx, id)
	var e *mpgdpr.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusTooManyRequests || e.RetryAfter < time.Second {
		t.Errorf("over the limit: %v, want 429 with Retry-After of at least 1s", err)
	}
	s.AssertNoViolations(t)
}

// TestFaults injects each kind of fault and checks what the client sees.
func TestFaults(t *testing.T) {
	ctx := context.Background()
	deletion := mpgdpr.DeletionRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.GDPR}

	t.Run("status retried", func(t *testing.T) {
		s := newServer(t)
		c := newClient(t, s)
		id, _ := c.CreateDeletion(ctx, deletion)
		s.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCheckDeletion, Status: 503, RetryAfter: "0", Times: 2})
		if _, err := c.CheckDeletion(ctx, id); err != nil {
			t.Fatalf("after two 503s: %v", err)
		}
		var faults []int
		for _, r := range s.Requests() {
			if r.Fault == "status" {
				faults = append(faults, r.Status)
			}
		}
		if !slices.Equal(faults, []int{503, 503}) || s.FaultsLeft() != 0 {
			t.Errorf("fault answers %v, %d left", faults, s.FaultsLeft())
		}
		s.AssertNoViolations(t)
	})
	t.Run("status on create is not retried", func(t *testing.T) {
		s := newServer(t)
		c := newClient(t, s)
		s.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateDeletion, Status: 500})
		if _, err := c.CreateDeletion(ctx, deletion); !errors.Is(err, mpgdpr.ErrServer) {
			t.Errorf("create answered 500: %v", err)
		}
		if len(s.Tasks()) != 0 || len(s.Requests()) != 1 {
			t.Errorf("tasks %d, requests %d", len(s.Tasks()), len(s.Requests()))
		}
	})
	t.Run("latency", func(t *testing.T) {
		s := newServer(t)
		s.InjectFault(mpgdprtest.Fault{Latency: 300 * time.Millisecond})
		c := newClient(t, s, mpgdpr.WithHTTPClient(&http.Client{Timeout: 50 * time.Millisecond}), mpgdpr.WithRetryPolicy(mpgdpr.NoRetries()))
		if _, err := c.CheckRetrieval(ctx, "x"); err == nil || errors.Is(err, mpgdpr.ErrNotFound) {
			t.Errorf("a 300ms answer with a 50ms timeout: %v", err)
		}
		s.InjectFault(mpgdprtest.Fault{Latency: 100 * time.Millisecond})
		start := time.Now()
		if _, err := newClient(t, s).CheckRetrieval(ctx, "x"); !errors.Is(err, mpgdpr.ErrNotFound) {
			t.Errorf("after latency: %v, want the normal 404", err)
		}
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Errorf("answered in %v, before the 100ms latency", d)
		}
	})
	t.Run("reset before body", func(t *testing.T) {
		s := newServer(t)
		c := newClient(t, s)
		s.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateDeletion, Reset: mpgdprtest.ResetBeforeBody})
		if _, err := c.CreateDeletion(ctx, deletion); !errors.Is(err, mpgdpr.ErrOutcomeUnknown) {
			t.Errorf("reset create: %v, want outcome unknown", err)
		}
		if len(s.Tasks()) != 0 {
			t.Error("a task was created by a request dropped before its body was read")
		}
		if r := s.Requests(); len(r) != 1 || r[0].Status != 0 || r[0].Fault != "reset-before-body" {
			t.Errorf("recorded %+v", r)
		}
	})
	t.Run("reset after handling", func(t *testing.T) {
		s := newServer(t)
		c := newClient(t, s)
		s.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateDeletion, Reset: mpgdprtest.ResetAfterHandling})
		if _, err := c.CreateDeletion(ctx, deletion); !errors.Is(err, mpgdpr.ErrOutcomeUnknown) {
			t.Errorf("reset create: %v, want outcome unknown", err)
		}
		tasks := s.Tasks()
		if len(tasks) != 1 {
			t.Fatalf("%d tasks: the create should have been processed", len(tasks))
		}
		// Resubmitting is answered 409 naming the task that was created.
		var e *mpgdpr.Error
		if _, err := c.CreateDeletion(ctx, deletion); !errors.As(err, &e) || !slices.Equal(e.ConflictingTaskIDs, []string{tasks[0].ID}) {
			t.Errorf("resubmission: %v", err)
		}
		s.AssertNoViolations(t)
	})
	t.Run("reset after body on a check is retried", func(t *testing.T) {
		s := newServer(t)
		c := newClient(t, s)
		id, _ := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.GDPR})
		s.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCheckRetrieval, Reset: mpgdprtest.ResetAfterBody})
		if _, err := c.CheckRetrieval(ctx, id); err != nil {
			t.Errorf("check after one reset: %v", err)
		}
		if s.FaultsLeft() != 0 {
			t.Error("fault not used")
		}
	})
	t.Run("malformed body", func(t *testing.T) {
		s := newServer(t)
		c := newClient(t, s)
		s.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateRetrieval, Body: `{"status":"ok","results":`})
		_, err := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.GDPR})
		if !errors.Is(err, mpgdpr.ErrOutcomeUnknown) || !errors.Is(err, mpgdpr.ErrMalformedResponse) {
			t.Errorf("truncated create answer: %v", err)
		}
		// Faults stand for infrastructure: not contract violations.
		s.AssertNoViolations(t)
	})
	t.Run("truncate", func(t *testing.T) {
		s := newServer(t)
		c := newClient(t, s)
		id, _ := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.GDPR})
		for range 4 {
			_, _ = c.CheckRetrieval(ctx, id)
		}
		tk, _ := s.Task(id)
		s.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpDownload, Truncate: 100})
		resp, err := http.Get(tk.DownloadURL)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(b) != 100 || !errors.Is(err, io.ErrUnexpectedEOF) || resp.ContentLength <= 100 {
			t.Errorf("cut download: %d of %d bytes, %v", len(b), resp.ContentLength, err)
		}
		// The rest, with a Range request.
		req, _ := http.NewRequest(http.MethodGet, tk.DownloadURL, nil)
		req.Header.Set("Range", "bytes=100-")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		rest, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent || int64(100+len(rest)) != resp.ContentLength+100 {
			t.Errorf("resume: %s, %d bytes", resp.Status, len(rest))
		}
	})
	t.Run("match", func(t *testing.T) {
		s := newServer(t)
		c := newClient(t, s)
		s.InjectFault(mpgdprtest.Fault{Status: 502, Match: func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/target") }})
		if _, err := c.CheckDeletion(ctx, "other"); !errors.Is(err, mpgdpr.ErrNotFound) {
			t.Errorf("unmatched request: %v", err)
		}
		if _, err := newClient(t, s, mpgdpr.WithRetryPolicy(mpgdpr.NoRetries())).CheckDeletion(ctx, "target"); !errors.Is(err, mpgdpr.ErrServer) {
			t.Errorf("matched request: %v, want 502", err)
		}
	})
}

// TestDownload: the link points at another host, needs no credentials,
// and serves a zip that export.Open decrypts with the API secret.
func TestDownload(t *testing.T) {
	const secret = "api-secret-for-test"
	s := newServer(t, mpgdprtest.WithAPISecret(secret))
	c := newClient(t, s)
	ctx := context.Background()
	ids := []string{"alice", "bob/2", "名前"}
	id, err := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: ids, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		t.Fatal(err)
	}
	var tk *mpgdpr.Task
	for range 4 {
		if tk, err = c.CheckRetrieval(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	link, err := url.Parse(tk.DownloadURL)
	if err != nil || tk.Status != mpgdpr.StatusSuccess {
		t.Fatalf("finished task %+v: %v", tk, err)
	}
	api, _ := url.Parse(s.URL())
	if link.Host == api.Host {
		t.Fatalf("link %s is on the API's host", link)
	}
	if link.Host != s.DownloadHost() {
		t.Errorf("link host %s, DownloadHost %s", link.Host, s.DownloadHost())
	}
	t.Logf("API on %s, exports on %s", api.Host, link.Host)

	resp, err := http.Get(tk.DownloadURL)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/zip" {
		t.Fatalf("download: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	a, err := export.Open(bytes.NewReader(data), int64(len(data)), secret)
	if err != nil {
		t.Fatal(err)
	}
	want := mpgdprtest.ExportFiles(ids...)
	files := a.Files()
	if len(files) != len(want) {
		t.Errorf("%d entries, want %d", len(files), len(want))
	}
	for _, fi := range files {
		if !fi.Encrypted {
			t.Errorf("%s is not encrypted", fi.Name)
		}
		rc, err := a.Open(fi.Name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want[fi.Name]) {
			t.Errorf("%s: %v, contents differ from ExportFiles", fi.Name, err)
		}
	}
	wrong, err := export.Open(bytes.NewReader(data), int64(len(data)), "wrong secret")
	if err == nil {
		var rc io.ReadCloser
		if rc, err = wrong.Open(files[0].Name); err == nil {
			_, err = io.ReadAll(rc)
			rc.Close()
		}
	}
	if !errors.Is(err, export.ErrWrongSecret) {
		t.Errorf("wrong secret: %v", err)
	}

	// A tampered signature is refused, as a storage host would.
	bad := *link
	bad.RawQuery = "sig=0000"
	if resp, err := http.Get(bad.String()); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("bad signature: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// What reached the download host: no credential at all.
	var downloads []mpgdprtest.Request
	for _, r := range s.Requests() {
		if r.Op == mpgdprtest.OpDownload {
			downloads = append(downloads, r)
			if r.Host != link.Host || r.Bearer != mpgdprtest.CredentialAbsent || r.ProjectToken != mpgdprtest.CredentialAbsent {
				t.Errorf("download request %+v", r)
			}
		}
	}
	if len(downloads) != 2 {
		t.Errorf("%d download requests recorded, want 2", len(downloads))
	}
	if tk, _ := s.Task(id); tk.Downloads != 1 {
		t.Errorf("Downloads = %d", tk.Downloads)
	}

	// And the recording does notice a credential sent where it does not belong.
	req, _ := http.NewRequest(http.MethodGet, tk.DownloadURL, nil)
	req.Header.Set("Authorization", "Bearer "+s.OAuthToken())
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	rs := s.Requests()
	if last := rs[len(rs)-1]; last.Bearer != mpgdprtest.CredentialValid {
		t.Errorf("a download carrying the OAuth token was recorded as %s", last.Bearer)
	}
	s.AssertNoViolations(t)
}

func TestDownloadBeforeSuccess(t *testing.T) {
	s := newServer(t)
	resp, err := http.Get("http://" + s.DownloadHost() + "/exports/nope.zip")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown export: %s", resp.Status)
	}
}

// TestCreateShapes: the array-shaped 201 create answer and the link under
// `result` are both documented; the client copes and the fake's answers
// still pass the document.
func TestCreateShapes(t *testing.T) {
	s := newServer(t, mpgdprtest.WithCreateResponse(http.StatusCreated, mpgdprtest.CreateArray), mpgdprtest.WithLinkField(mpgdprtest.LinkResult))
	c := newClient(t, s)
	ctx := context.Background()
	id, err := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.CCPA})
	if err != nil {
		t.Fatal(err)
	}
	var tk *mpgdpr.Task
	for range 4 {
		if tk, err = c.CheckRetrieval(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := rawClient(t, s, nil).CheckRetrievalWithResponse(ctx, id, &gen.CheckRetrievalParams{Token: s.ProjectToken()})
	if err != nil || raw.JSON200 == nil || raw.JSON200.Results == nil {
		t.Fatalf("raw check: %v", err)
	}
	res := raw.JSON200.Results
	if res.Result == nil || *res.Result != tk.DownloadURL || tk.DownloadURL == "" || res.DownloadUrl != nil {
		t.Errorf("link under result: wrapper saw %q, wire %s", tk.DownloadURL, raw.Body)
	}
	if r := s.Requests(); r[0].Status != http.StatusCreated {
		t.Errorf("create answered %d", r[0].Status)
	}
	s.AssertNoViolations(t)
}

func TestMaxIDs(t *testing.T) {
	s := newServer(t, mpgdprtest.WithMaxIDs(0, 2))
	c := newClient(t, s)
	_, err := c.CreateDeletion(context.Background(), mpgdpr.DeletionRequest{DistinctIDs: []string{"a", "b", "c"}, ComplianceType: mpgdpr.GDPR})
	if !errors.Is(err, mpgdpr.ErrBadRequest) {
		t.Errorf("3 ids over a limit of 2: %v", err)
	}
	// The service's own limit, not the document's: no violation.
	s.AssertNoViolations(t)
}

// rawClient is the generated client, with the bearer token set and the
// request editable, for requests the wrapper would refuse to send.
func rawClient(t *testing.T, s *mpgdprtest.Server, edit func(*http.Request)) *gen.ClientWithResponses {
	t.Helper()
	c, err := gen.NewClientWithResponses(s.URL(), gen.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+s.OAuthToken())
		if edit != nil {
			edit(r)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWrongRequestsCaught sends requests the document forbids with the
// generated client directly: each is answered 400 and recorded with the
// reason, and no credential appears in the reason.
func TestWrongRequestsCaught(t *testing.T) {
	const oauth, project = "oauth-SENTINEL-9c1e", "project-SENTINEL-4b7d"
	s := newServer(t, mpgdprtest.WithTokens(oauth, project))
	ctx := context.Background()
	ok := rawClient(t, s, nil)
	ids2001 := make([]string, 2001)
	for i := range ids2001 {
		ids2001[i] = "id-" + string(rune('a'+i%26)) + strings.Repeat("x", i%7)
	}
	cases := []struct {
		name   string
		send   func() (int, error)
		op     string
		reason string
	}{
		{"missing token", func() (int, error) {
			r, err := rawClient(t, s, func(r *http.Request) { r.URL.RawQuery = "" }).CheckDeletionWithResponse(ctx, "t1", &gen.CheckDeletionParams{})
			return code(r, err)
		}, "checkDeletion", `parameter "token" in query has an error: value is required but missing`},
		{"empty token", func() (int, error) {
			r, err := ok.CheckRetrievalWithResponse(ctx, "t1", &gen.CheckRetrievalParams{Token: ""})
			return code(r, err)
		}, "checkRetrieval", `parameter "token" in query has an error`},
		{"bad compliance type", func() (int, error) {
			r, err := ok.CreateDeletionWithResponse(ctx, &gen.CreateDeletionParams{Token: project}, gen.CreateDeletionRequest{DistinctIds: []string{"a"}, ComplianceType: "HIPAA"})
			return code(r, err)
		}, "createDeletion", `Error at "/compliance_type": value is not one of the allowed values ["GDPR","CCPA"]`},
		{"2001 ids", func() (int, error) {
			r, err := ok.CreateRetrievalWithResponse(ctx, &gen.CreateRetrievalParams{Token: project}, gen.CreateRetrievalRequest{DistinctIds: ids2001, ComplianceType: "GDPR"})
			return code(r, err)
		}, "createRetrieval", `Error at "/distinct_ids": maximum number of items is 2000`},
		{"no ids", func() (int, error) {
			r, err := ok.CreateDeletionWithResponse(ctx, &gen.CreateDeletionParams{Token: project}, gen.CreateDeletionRequest{DistinctIds: []string{}, ComplianceType: "GDPR"})
			return code(r, err)
		}, "createDeletion", `minimum number of items is 1`},
		{"bad disclosure type", func() (int, error) {
			dt := gen.DisclosureType("Everything")
			r, err := ok.CreateRetrievalWithResponse(ctx, &gen.CreateRetrievalParams{Token: project}, gen.CreateRetrievalRequest{DistinctIds: []string{"a"}, ComplianceType: "CCPA", DisclosureType: &dt})
			return code(r, err)
		}, "createRetrieval", `Error at "/disclosure_type": value is not one of the allowed values`},
		{"no bearer token", func() (int, error) {
			r, err := rawClient(t, s, func(r *http.Request) { r.Header.Del("Authorization") }).CheckDeletionWithResponse(ctx, "t1", &gen.CheckDeletionParams{Token: project})
			return code(r, err)
		}, "checkDeletion", `security requirements failed: the Authorization header is missing`},
		{"unknown path", func() (int, error) {
			r, err := http.Post(s.URL()+"/data-exports/v3.0?token="+project, "application/json", strings.NewReader("{}"))
			if err != nil {
				return 0, err
			}
			r.Body.Close()
			return r.StatusCode, nil
		}, "", "no matching operation was found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.Violations())
			status, err := tc.send()
			if err != nil {
				t.Fatal(err)
			}
			if status != http.StatusBadRequest {
				t.Errorf("answered %d, want 400", status)
			}
			vs := s.Violations()[before:]
			if len(vs) == 0 {
				t.Fatal("no violation recorded")
			}
			found := false
			for _, v := range vs {
				if v.Kind != mpgdprtest.ViolationRequest || v.Op != tc.op {
					t.Errorf("violation %+v, want a request violation of %q", v, tc.op)
				}
				found = found || strings.Contains(v.Reason, tc.reason)
				for _, secret := range []string{oauth, project} {
					if strings.Contains(v.String(), secret) {
						t.Errorf("violation shows a credential: %s", v)
					}
				}
			}
			if !found {
				t.Errorf("no violation says %q: %v", tc.reason, vs)
			}
		})
	}
	if len(s.Tasks()) != 0 {
		t.Error("a rejected request created a task")
	}
}

func code[R interface{ StatusCode() int }](r R, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	return r.StatusCode(), nil
}

// TestOwnAnswerValidated: an answer of the fake's that breaks the document
// (here a status outside the enum) is caught, recorded and not sent.
func TestOwnAnswerValidated(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s)
	ctx := context.Background()
	id, _ := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.GDPR})
	if err := s.SetStatus(id, "DONE"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CheckDeletion(ctx, id); !errors.Is(err, mpgdpr.ErrBadRequest) {
		t.Errorf("check of a task in an undocumented status: %v, want 400", err)
	}
	vs := s.Violations()
	if len(vs) != 1 || vs[0].Kind != mpgdprtest.ViolationResponse || vs[0].Op != mpgdprtest.OpCheckDeletion || !strings.Contains(vs[0].Reason, `Error at "/results/status"`) {
		t.Errorf("violations %v", vs)
	}
}
