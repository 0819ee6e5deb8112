package worker

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/workerdb"
	"github.com/riverqueue/river/rivertype"
)

func itemEvents(t *testing.T, e *testEnv, ref, project string) (*ItemStatus, []string) {
	t.Helper()
	rs, err := e.svc.RequestStatus(context.Background(), ref, WithEvents())
	if err != nil {
		t.Fatal(err)
	}
	for i := range rs.Items {
		if rs.Items[i].Project == project {
			var evs []string
			for _, ev := range rs.Items[i].Events {
				evs = append(evs, ev.Event)
			}
			return &rs.Items[i], evs
		}
	}
	t.Fatalf("no item for %s in %s", project, ref)
	return nil, nil
}

// A deletion whose answer is lost is filed again; the 409 names the task
// that the first create made, and the item follows that task to its end.
func TestUnknownDeletionResubmittedAndLinkedByConflict(t *testing.T) {
	forEachDriver(t, testUnknownDeletion)
}

func testUnknownDeletion(t *testing.T, newEnv envMaker) {
	fakes := twoFakes(t)
	fakes["us"].InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateDeletion, Reset: mpgdprtest.ResetAfterHandling})
	e := newEnv(t, fakes)
	ctx := context.Background()
	if _, err := e.svc.Enqueue(ctx, Request{Reference: "U-1", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"bob"}, Projects: []string{"us"}}); err != nil {
		t.Fatal(err)
	}
	e.start()
	waitFor(t, "item done", func() bool { total, ok := e.itemsIn(StateDone); return total == 1 && ok })
	if fakes["us"].FaultsLeft() != 0 {
		t.Fatal("the fault was not exercised")
	}
	tasks := fakes["us"].Tasks()
	if len(tasks) != 1 || filedTimes(fakes["us"], mpgdprtest.Deletion)["bob"] != 1 {
		t.Fatalf("tasks %+v", tasks)
	}
	if c := creates(fakes["us"], mpgdprtest.OpCreateDeletion); c != 2 {
		t.Errorf("%d creates, want 2 (lost answer, then 409)", c)
	}
	it, evs := itemEvents(t, e, "U-1", "us")
	if len(it.Tasks) != 1 || it.Tasks[0].TaskID != tasks[0].ID || it.Tasks[0].Origin != "conflict" {
		t.Errorf("item tasks %+v, want the fake's %s from a 409", it.Tasks, tasks[0].ID)
	}
	for _, want := range []string{workerdb.EventUnknown, workerdb.EventConflict, workerdb.EventDone} {
		if !slices.Contains(evs, want) {
			t.Errorf("no %q in %v", want, evs)
		}
	}
}

// A retrieval whose answer is lost is reported unknown and never filed again.
func TestUnknownRetrievalReportedNotRefiled(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		fakes := twoFakes(t)
		// Two lost answers: on a loaded machine the two requests may land in
		// one batch or in two, and either way each create's answer is lost.
		fakes["eu"].InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateRetrieval, Reset: mpgdprtest.ResetAfterHandling, Times: 2})
		e := newEnv(t, fakes)
		ctx := context.Background()
		for _, ref := range []string{"R-a", "R-b"} {
			if _, err := e.svc.Enqueue(ctx, Request{Reference: ref, Kind: Retrieval, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"p-" + ref}, Projects: []string{"eu"}}); err != nil {
				t.Fatal(err)
			}
		}
		e.start()
		waitFor(t, "items unknown", func() bool { total, ok := e.itemsIn(StateUnknown); return total == 2 && ok })
		// Run the sweeper to its end: it must not file the batch again.
		res, err := e.insertJob(ctx, sweepArgs{})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the sweep", func() bool {
			j, err := e.jobGet(ctx, res.Job.ID)
			return err != nil || j.State == rivertype.JobStateCompleted
		})
		waitFor(t, "file jobs ended", func() bool {
			return e.count(`SELECT COUNT(*) FROM river_job WHERE kind = 'mpgdpr_file' AND state NOT IN ('completed', 'cancelled', 'discarded')`) == 0
		})
		// Every create the worker sent made a task (the fake acted, then hung
		// up), and no person was filed twice: nothing was sent again.
		filed := filedTimes(fakes["eu"], mpgdprtest.Retrieval)
		if filed["p-R-a"] != 1 || filed["p-R-b"] != 1 {
			t.Errorf("filed %v, want each person once", filed)
		}
		if c, n := creates(fakes["eu"], mpgdprtest.OpCreateRetrieval), len(fakes["eu"].Tasks()); c != n || c > 2 {
			t.Errorf("%d retrieval creates for %d tasks, want one create per task and at most 2", c, n)
		}
		it, evs := itemEvents(t, e, "R-a", "eu")
		if it.State != StateUnknown || !slices.Contains(evs, workerdb.EventUnknown) || it.Detail == "" {
			t.Errorf("item %+v events %v", it, evs)
		}
		// The detail says when the create was sent: what Mixpanel support
		// needs to find the task (the API cannot list tasks).
		sent, ok := workerdb.CreateSentAt(it.Detail)
		if !ok || e.count(`SELECT COUNT(*) FROM mpgdpr_create WHERE sent_at = ?`, workerdb.FormatTime(sent)) != 1 {
			t.Errorf("the unknown item's detail %q does not give its create's time", it.Detail)
		}
		// The evidence report counts it unknown, never on time, and says
		// what to ask Mixpanel support, with that time.
		src, err := evidence.OpenDB(ctx, e.url)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		var page bytes.Buffer
		if _, err := evidence.Generate(ctx, src, nil, evidence.Filter{}, time.Now(), evidence.NewHTMLWriter(&page, evidence.HTMLOptions{})); err != nil {
			t.Fatal(err)
		}
		ask := "In project eu, is there a GDPR retrieval task created at about " + sent.UTC().Format("2006-01-02 15:04:05 UTC") + "?"
		if !strings.Contains(page.String(), `data-ref="R-a" data-outcome="unknown"`) || !strings.Contains(page.String(), ask) ||
			!strings.Contains(page.String(), `<td class="n unknown needs" data-k="unknown">2</td>`) {
			t.Errorf("the HTML report does not show R-a as unknown with the question %q", ask)
		}
	})
}

func TestFailurePolicyResubmitsOnceThenReports(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		fakes := twoFakes(t, mpgdprtest.WithSchedule(mpgdprtest.Manual()))
		e := newEnv(t, fakes)
		ctx := context.Background()
		if _, err := e.svc.Enqueue(ctx, Request{Reference: "F-1", Kind: Deletion, ComplianceType: mpgdpr.CCPA, DistinctIDs: []string{"carol"}, Projects: []string{"us"}}); err != nil {
			t.Fatal(err)
		}
		e.start()
		us := fakes["us"]
		fail := func(n int) {
			waitFor(t, "a task", func() bool { return len(us.Tasks()) == n })
			if err := us.SetStatus(us.Tasks()[n-1].ID, mpgdprtest.StatusFailure); err != nil {
				t.Fatal(err)
			}
		}
		fail(1) // resubmitted (resubmits = 1)
		fail(2) // reported
		waitFor(t, "item failed", func() bool { total, ok := e.itemsIn(StateFailed); return total == 1 && ok })
		it, evs := itemEvents(t, e, "F-1", "us")
		if !slices.Contains(evs, workerdb.EventResubmitted) || len(it.Tasks) != 2 {
			t.Errorf("item %+v events %v", it, evs)
		}
		if n := len(us.Tasks()); n != 2 {
			t.Errorf("%d tasks, want 2", n)
		}
	})
}

func TestNotFoundPolicyReport(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		fakes := twoFakes(t, mpgdprtest.WithSchedule(mpgdprtest.Manual()))
		e := newEnv(t, fakes)
		// Per-project policy: appended to the last project's table (us).
		e.cfg.Projects[1].OnNotFound = PolicyReport
		if e.cfg.Projects[1].Name != "us" {
			t.Fatal("project order changed")
		}
		ctx := context.Background()
		if _, err := e.svc.Enqueue(ctx, Request{Reference: "N-1", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"dan"}, Projects: []string{"us"}}); err != nil {
			t.Fatal(err)
		}
		e.start()
		us := fakes["us"]
		waitFor(t, "a task", func() bool { return len(us.Tasks()) == 1 })
		if err := us.SetStatus(us.Tasks()[0].ID, mpgdprtest.StatusNotFound); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "item failed", func() bool { total, ok := e.itemsIn(StateFailed); return total == 1 && ok })
		if n := len(us.Tasks()); n != 1 {
			t.Errorf("%d tasks, want 1 (report, no resubmission)", n)
		}
	})
}

func TestMigrationsIdempotentAndEventsAppendOnly(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t, twoFakes(t))
		ctx := context.Background()
		applied, err := e.migrate(ctx)
		if err != nil || len(applied) != 0 {
			t.Fatalf("second migration applied %v, %v", applied, err)
		}
		if _, err := e.svc.Enqueue(ctx, Request{Reference: "M-1", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"x"}, AllProjects: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.q.exec(ctx, `UPDATE mpgdpr_event SET detail = 'changed'`); err == nil {
			t.Error("an event was updated")
		}
		if _, err := e.q.exec(ctx, `DELETE FROM mpgdpr_event`); err == nil {
			t.Error("an event was deleted")
		}
	})
}

// An export that never arrives whole is fetched again a few times, then
// its item is reported failed instead of polled for ever.
func TestExportThatNeverDownloadsIsReported(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		fakes := twoFakes(t)
		fakes["eu"].InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpDownload, Status: 404, Times: 1000})
		e := newEnv(t, fakes)
		ctx := context.Background()
		if _, err := e.svc.Enqueue(ctx, Request{Reference: "X-1", Kind: Retrieval, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"frank"}, Projects: []string{"eu"}}); err != nil {
			t.Fatal(err)
		}
		e.start()
		waitFor(t, "item failed", func() bool { total, ok := e.itemsIn(StateFailed); return total == 1 && ok })
		it, evs := itemEvents(t, e, "X-1", "eu")
		n := 0
		for _, ev := range evs {
			if ev == workerdb.EventExportError {
				n++
			}
		}
		if n != maxExportTries || !strings.Contains(it.Detail, "export could not be downloaded") {
			t.Errorf("%d export errors, detail %q", n, it.Detail)
		}
	})
}

// A batch of which one person already has a deletion running (filed by
// someone else): the 409 links that person's item to the running task, and
// the rest of the batch is filed again without them.
func TestPartialConflictSplitsTheBatch(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		fakes := twoFakes(t)
		us := fakes["us"]
		c, err := mpgdpr.New(us.OAuthToken(), us.ProjectToken(), mpgdpr.WithBaseURL(us.URL()), mpgdpr.WithRateLimiter(nil))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		theirs, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"gina"}, ComplianceType: mpgdpr.GDPR})
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, fakes)
		for _, who := range []string{"gina", "hank"} {
			if _, err := e.svc.Enqueue(ctx, Request{Reference: "C-" + who, Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{who}, Projects: []string{"us"}}); err != nil {
				t.Fatal(err)
			}
		}
		e.start()
		waitFor(t, "both done", func() bool { total, ok := e.itemsIn(StateDone); return total == 2 && ok })
		gina, _ := itemEvents(t, e, "C-gina", "us")
		hank, _ := itemEvents(t, e, "C-hank", "us")
		if len(gina.Tasks) != 1 || gina.Tasks[0].TaskID != theirs || gina.Tasks[0].Origin != "conflict" {
			t.Errorf("gina's tasks %+v, want the running %s", gina.Tasks, theirs)
		}
		if len(hank.Tasks) != 1 || hank.Tasks[0].TaskID == theirs || hank.Tasks[0].Origin != "filed" {
			t.Errorf("hank's tasks %+v", hank.Tasks)
		}
		times := filedTimes(us, mpgdprtest.Deletion)
		if times["gina"] != 1 || times["hank"] != 1 {
			t.Errorf("filed %v", times)
		}
		if n := creates(us, mpgdprtest.OpCreateDeletion); n != 3 {
			t.Errorf("%d creates, want 3 (theirs, the batch drawing a 409, the rest)", n)
		}
	})
}
