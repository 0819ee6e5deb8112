package bulk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/exitcode"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/journal"
	"github.com/privacykit/mpgdpr/internal/exportfile"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// fake starts the fake Mixpanel; the test fails if anything sent broke
// its contract.
func fake(t *testing.T, opts ...mpgdprtest.Option) *mpgdprtest.Server {
	t.Helper()
	srv := mpgdprtest.NewServer(opts...)
	t.Cleanup(func() {
		srv.AssertNoViolations(t)
		srv.Close()
	})
	return srv
}

// newJob is a job of n IDs (u-001, …) against srv, in chunks of chunk,
// journaled in a fresh directory.
func newJob(t *testing.T, srv *mpgdprtest.Server, cmd string, n, chunk int) *Job {
	t.Helper()
	c, err := mpgdpr.New(srv.OAuthToken(), srv.ProjectToken(), mpgdpr.WithBaseURL(srv.URL()),
		mpgdpr.WithRateLimit(rate.Inf, 1),
		mpgdpr.WithRetryPolicy(mpgdpr.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("u-%03d", i+1)
	}
	kind := mpgdpr.Retrieval
	if cmd == "delete" {
		kind = mpgdpr.Deletion
	}
	return &Job{Command: cmd, Kind: kind, Compliance: mpgdpr.GDPR, IDs: ids, Client: c, ChunkSize: chunk,
		Journal: filepath.Join(t.TempDir(), "j.jsonl"), PollStart: time.Millisecond, PollMax: 2 * time.Millisecond, Rate: 1000}
}

// notes collects what the engine says.
type notes struct {
	mu sync.Mutex
	s  []string
}

func (n *notes) env() Env {
	return Env{Note: func(format string, a ...any) {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.s = append(n.s, fmt.Sprintf(format, a...))
	}}
}

func (n *notes) has(sub string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.ContainsFunc(n.s, func(s string) bool { return strings.Contains(s, sub) })
}

func run(t *testing.T, j *Job, env Env) *Result {
	t.Helper()
	res, err := Run(context.Background(), j, env)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

// filed counts, per ID, the tasks of kind the fake holds for it.
func filed(srv *mpgdprtest.Server, kind mpgdprtest.Kind) map[string]int {
	n := map[string]int{}
	for _, task := range srv.Tasks() {
		if task.Kind == kind {
			for _, id := range task.DistinctIDs {
				n[id]++
			}
		}
	}
	return n
}

func onceEach(t *testing.T, got map[string]int, ids []string) {
	t.Helper()
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("%s filed %d times, want once", id, got[id])
		}
	}
}

// states lists the journal's record states, in order.
func states(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	_, err := journal.ReadFile(path, func(e journal.Entry) error {
		if e.Record != nil {
			out = append(out, e.Record.State)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// crashed writes the journal a run leaves when it is killed while its
// requests (one per chunk) are on their way: "sending" and no outcome.
func crashed(t *testing.T, j *Job, chunks ...[]string) {
	t.Helper()
	jr, _, err := journal.Open(j.Journal, j.Header(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer jr.Close()
	for n, ids := range chunks {
		if err := jr.Append(journal.Record{State: journal.Sending, Chunk: n + 1, IDs: ids}); err != nil {
			t.Fatal(err)
		}
	}
}

// A new job files every ID once, in requests of the chunk size, each
// journaled before it goes out and after; a second run files nothing.
func TestRunFilesEachIDOnce(t *testing.T) {
	srv := fake(t)
	j := newJob(t, srv, "delete", 25, 10)
	res := run(t, j, Env{})
	if res.Code != exitcode.OK || res.Stop != nil || res.Counts.Filed != 25 || len(res.Tasks) != 3 {
		t.Fatalf("result: %+v", res)
	}
	onceEach(t, filed(srv, mpgdprtest.Deletion), j.IDs)
	want := []string{"sending", "accepted", "sending", "accepted", "sending", "accepted"}
	if got := states(t, j.Journal); !slices.Equal(got, want) {
		t.Errorf("journal: %v, want %v", got, want)
	}
	before := len(srv.Requests())
	res = run(t, j, Env{})
	if res.Counts.Filed != 25 || len(srv.Requests()) != before {
		t.Errorf("second run: %+v, %d requests sent", res.Counts, len(srv.Requests())-before)
	}
}

// A crash mid-chunk leaves a "sending" record without an outcome. If the
// request had reached Mixpanel, the resumed deletion's resubmission draws a
// 409 naming the task, which is followed: nobody is filed twice. A request
// that had not reached it is filed now.
func TestResumeAfterCrashMidChunk(t *testing.T) {
	srv := fake(t)
	j := newJob(t, srv, "delete", 20, 10)
	// The previous run: request 1 was filed by Mixpanel, its answer lost
	// in the crash; request 2 was on its way and never arrived.
	crashed(t, j, j.IDs[:10], j.IDs[10:])
	hidden, err := j.Client.CreateDeletion(context.Background(), mpgdpr.DeletionRequest{DistinctIDs: j.IDs[:10], ComplianceType: mpgdpr.GDPR})
	if err != nil {
		t.Fatal(err)
	}
	var n notes
	res := run(t, j, n.env())
	if res.Code != exitcode.OK || res.Counts.Filed != 10 || res.Counts.Covered != 10 || res.Counts.Unknown != 0 {
		t.Fatalf("result: %+v", res)
	}
	onceEach(t, filed(srv, mpgdprtest.Deletion), j.IDs)
	var ids []string
	for _, task := range res.Tasks {
		ids = append(ids, task.ID)
	}
	if !slices.Contains(ids, hidden) {
		t.Errorf("the task the crash hid (%s) is not followed: %v", hidden, ids)
	}
	if !n.has("resuming: 0 of 20 IDs filed") || !n.has("20 IDs of requests 1, 2: unknown outcome: filing them again") {
		t.Errorf("notes: %q", n.s)
	}
	got := states(t, j.Journal)
	if !slices.Equal(got[:5], []string{"sending", "sending", "resumed", "unknown", "unknown"}) || !slices.Contains(got, "conflict") {
		t.Errorf("journal: %v", got)
	}
}

// A retrieval cannot be checked: an in-flight request's IDs stay unknown
// and unfiled, unless Resubmit accepts a second export.
func TestResumedRetrievalUnknownUnlessResubmit(t *testing.T) {
	srv := fake(t)
	j := newJob(t, srv, "retrieve", 5, 10)
	crashed(t, j, j.IDs)
	var n notes
	res := run(t, j, n.env())
	if res.Counts.Unknown != 5 || !slices.Equal(res.Counts.UnknownChunks, []int{1}) || len(srv.Tasks()) != 0 {
		t.Fatalf("without Resubmit: %+v, %d tasks", res.Counts, len(srv.Tasks()))
	}
	if !n.has("5 IDs of request 1: unknown outcome: not filed again without --resubmit-unknown") {
		t.Errorf("notes: %q", n.s)
	}
	j.Resubmit = true
	res = run(t, j, Env{})
	if res.Counts.Filed != 5 || res.Counts.Unknown != 0 {
		t.Fatalf("with Resubmit: %+v", res.Counts)
	}
	onceEach(t, filed(srv, mpgdprtest.Retrieval), j.IDs)
}

// A retrieval whose create answers 5xx has an unknown outcome: its IDs are
// reported, the other requests go on; three in a row stop the job.
func TestRetrievalUnknownOutcomes(t *testing.T) {
	srv := fake(t)
	srv.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateRetrieval, Status: 520})
	j := newJob(t, srv, "retrieve", 30, 10)
	var n notes
	res := run(t, j, n.env())
	if res.Stop != nil || res.Counts.Unknown != 10 || res.Counts.Filed != 20 || !n.has("request 1's outcome is unknown") {
		t.Fatalf("one unknown: %+v, notes %q", res, n.s)
	}
	srv2 := fake(t)
	srv2.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateRetrieval, Status: 520, Times: 10})
	j = newJob(t, srv2, "retrieve", 50, 10)
	res = run(t, j, Env{})
	if res.Stop == nil || !strings.Contains(res.Stop.Error(), "3 requests in a row") || res.Code != exitcode.API || !errors.Is(res.Stop, mpgdpr.ErrOutcomeUnknown) {
		t.Fatalf("unknowns in a row: %+v", res)
	}
	// The command says "mpgdpr retrieve: " in front: the library's own
	// "mpgdpr: " is left out of the stop's text, at every level.
	if strings.Contains(res.Stop.Error(), "mpgdpr: ") {
		t.Errorf("the stop's text repeats the library's prefix: %q", res.Stop)
	}
	if res.Counts.Unknown != 30 || res.Counts.Unsent != 20 {
		t.Errorf("counts: %+v", res.Counts)
	}
}

// A deletion's unknown outcome is settled by resubmitting: where Mixpanel
// had filed it, its 409 names the task.
func TestDeletionUnknownSettledBy409(t *testing.T) {
	srv := fake(t)
	srv.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateDeletion, Reset: mpgdprtest.ResetAfterHandling})
	j := newJob(t, srv, "delete", 10, 10)
	res := run(t, j, Env{})
	if res.Code != exitcode.OK || res.Counts.Covered != 10 || res.Counts.Unknown != 0 || len(res.Tasks) != 1 {
		t.Fatalf("result: %+v", res)
	}
	onceEach(t, filed(srv, mpgdprtest.Deletion), j.IDs)
}

// 409 on a retrieval: IDs with a deletion running are refused, not
// retrieved, and the deletion is not followed; the others are filed.
func TestRetrievalConflictRefused(t *testing.T) {
	srv := fake(t)
	j := newJob(t, srv, "retrieve", 10, 10)
	srv.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateRetrieval, Status: 409,
		Body: `{"status":"error","error":{"conflicting_distinct_ids":["u-001","u-002","u-003"],"conflicting_task_ids":["del-1"]}}`})
	var n notes
	res := run(t, j, n.env())
	if res.Counts.Refused != 3 || res.Counts.Filed != 7 || len(res.Tasks) != 1 {
		t.Fatalf("result: %+v", res)
	}
	if !n.has("409: a deletion is already running for 3 IDs (task del-1)") || !n.has("those IDs are not retrieved") {
		t.Errorf("notes: %q", n.s)
	}
}

// With Wait, every task is followed to its end and recorded; with
// Download, each finished retrieval's export is saved through Env.Save and
// recorded, and a later run saves nothing again.
func TestWaitAndDownload(t *testing.T) {
	srv := fake(t)
	j := newJob(t, srv, "retrieve", 4, 2)
	j.Wait, j.Download = true, true
	var mu sync.Mutex
	saved := map[string]bool{}
	env := Env{Save: func(_ context.Context, task *mpgdpr.Task) (Saved, error) {
		mu.Lock()
		defer mu.Unlock()
		if saved[task.TrackingID] {
			t.Errorf("%s saved twice", task.TrackingID)
		}
		saved[task.TrackingID] = true
		p := filepath.Join(t.TempDir(), "x.zip")
		return Saved{Saved: exportfile.Saved{Path: p, Entries: 1, Verified: true}}, os.WriteFile(p, nil, 0o600)
	}}
	res := run(t, j, env)
	if res.Code != exitcode.OK || len(res.Tasks) != 2 || len(saved) != 2 {
		t.Fatalf("result: %+v, saved %v", res, saved)
	}
	for _, task := range res.Tasks {
		if task.Status != "SUCCESS" || task.Download == nil {
			t.Errorf("task: %+v", task)
		}
	}
	run(t, j, env) // Save fails the test if called again
}

// Plan is what a dry run shows: the requests a job would send, with the
// length of each JSON body as the library sends it; nothing is sent.
func TestPlan(t *testing.T) {
	srv := fake(t)
	j := newJob(t, srv, "retrieve", 5, 2)
	j.Compliance, j.Disclosure = mpgdpr.CCPA, mpgdpr.DisclosureType("Categories")
	plan, err := j.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 3 || len(plan[0].IDs) != 2 || len(plan[2].IDs) != 1 || plan[2].N != 3 {
		t.Fatalf("plan: %+v", plan)
	}
	body, _ := json.Marshal(map[string]any{"compliance_type": "CCPA", "disclosure_type": "Categories", "distinct_ids": j.IDs[:2]})
	if plan[0].Bytes != len(body) {
		t.Errorf("request 1: %d bytes, want %d (%s)", plan[0].Bytes, len(body), body)
	}
	if j.LeastTime(3) != 2*time.Millisecond || j.LeastTime(1) != 0 {
		t.Errorf("LeastTime: %v, %v", j.LeastTime(3), j.LeastTime(1))
	}
	if len(srv.Requests()) != 0 {
		t.Errorf("Plan sent %d requests", len(srv.Requests()))
	}
}

// A journal of another job is refused before anything is sent: exit 2.
func TestJournalOfAnotherJob(t *testing.T) {
	srv := fake(t)
	j := newJob(t, srv, "delete", 3, 10)
	run(t, j, Env{})
	j2 := newJob(t, srv, "delete", 4, 10)
	j2.Journal = j.Journal
	res, err := Run(context.Background(), j2, Env{})
	if !errors.Is(err, journal.ErrMismatch) || res.Code != exitcode.Usage {
		t.Fatalf("Run: %v, %+v", err, res)
	}
}
