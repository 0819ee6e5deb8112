package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker/workerdb"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

// intakeWorker makes an intake-only worker on e's database from a copy of
// e's configuration whose every secret file is missing: it must read none.
func (e *testEnv) intakeOnly() Service {
	e.t.Helper()
	cfg := *e.cfg
	cfg.Projects = slices.Clone(cfg.Projects)
	for i := range cfg.Projects {
		p := &cfg.Projects[i]
		missing := filepath.Join(e.dir, "no-such-secret")
		p.OAuthTokenFile, p.ProjectTokenFile, p.APISecretFile = missing, missing, missing
		if _, err := cfg.Secrets(p); err == nil {
			e.t.Fatal("the secrets are still readable")
		}
	}
	ctx := context.Background()
	opts := testOptions(WithIntakeOnly())
	if e.driver == workertest.SQLite {
		w, err := NewSQLite(ctx, e.db, &cfg, opts...)
		if err != nil {
			e.t.Fatal(err)
		}
		return w
	}
	w, err := NewPostgres(ctx, e.pool, &cfg, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

func deletion(ref string, projects ...string) Request {
	return Request{Reference: ref, Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"id-" + ref}, Projects: projects}
}

// An intake-only worker, without any Mixpanel secret, stores a request and
// answers about it but files nothing; a full worker on the same database
// then files it.
func TestIntakeOnlyThenFullWorker(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		fakes := twoFakes(t)
		e := newEnv(t, fakes)
		ctx := context.Background()
		in := e.intakeOnly()
		if err := in.Start(ctx); !errors.Is(err, ErrIntakeOnly) {
			t.Fatalf("Start: %v", err)
		}
		if err := in.Run(ctx, time.Second); !errors.Is(err, ErrIntakeOnly) {
			t.Fatalf("Run: %v", err)
		}
		if err := in.Ready(ctx); err != nil {
			t.Fatalf("Ready: %v", err)
		}
		if _, err := in.Status(ctx); err != nil {
			t.Errorf("Status: %v", err)
		}
		if _, err := in.Purge(ctx, PurgeDryRun()); err != nil {
			t.Errorf("Purge: %v", err)
		}
		received := time.Date(2024, 3, 31, 10, 0, 0, 0, time.UTC)
		r := deletion("IO-1", "us")
		r.ReceivedAt = received
		res, err := in.Enqueue(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		// GDPR: one month, clipped to April's last day.
		if res.Duplicate || res.State != RequestReceived || !res.ReceivedAt.Equal(received) || res.Due != "2024-04-30" ||
			!res.DeadlineBy.Equal(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)) || res.Extended {
			t.Errorf("enqueue result %+v", res)
		}
		again, err := in.Enqueue(ctx, r)
		if err != nil || !again.Duplicate || again.Due != res.Due || again.State != res.State {
			t.Errorf("duplicate %+v %v", again, err)
		}
		if e.count(`SELECT COUNT(*) FROM mpgdpr_item`) != 0 || len(fakes["us"].Requests()) != 0 {
			t.Fatal("the intake-only worker worked the request")
		}
		rs, err := in.RequestStatus(ctx, "IO-1")
		if err != nil || rs.State != RequestReceived || rs.DeadlineState != "overdue" || rs.Due != "2024-04-30" || rs.CompletedAt != nil {
			t.Fatalf("status %+v %v", rs, err)
		}
		e.start() // the full worker
		waitFor(t, "request done", func() bool {
			rs, err := in.RequestStatus(ctx, "IO-1")
			return err == nil && rs.State == StateDone
		})
		rs, _ = in.RequestStatus(ctx, "IO-1")
		if rs.CompletedAt == nil || rs.DeadlineState != "met_late" || len(rs.Items) != 1 || rs.Items[0].Events != nil {
			t.Errorf("status %+v", rs)
		}
		rs, _ = in.RequestStatus(ctx, "IO-1", WithEvents())
		if len(rs.Items[0].Events) == 0 {
			t.Error("WithEvents gave no events")
		}
	})
}

// An extension is recorded in the request's deadline and in the chained
// log, where the report reads it.
func TestExtensionRecorded(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t, twoFakes(t))
		ctx := context.Background()
		received := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
		r := deletion("EX-1", "us")
		r.ReceivedAt = received
		r.Extension = &Extension{Reason: "complex request", NoticeAt: received.Add(48 * time.Hour)}
		res, err := e.svc.Enqueue(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Extended || res.Due != "2026-04-10" {
			t.Errorf("result %+v", res)
		}
		var detail string
		if err := e.q.queryRow(ctx, `SELECT detail FROM mpgdpr_event WHERE reference = ? AND event = ?`, "EX-1", workerdb.EventExtended).Scan(&detail); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(detail, "complex request") || strings.Contains(detail, "id-EX-1") {
			t.Errorf("detail %q", detail)
		}
	})
}

func TestListRequests(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t, twoFakes(t))
		ctx := context.Background()
		in := e.intakeOnly()
		var refs []string
		for i := range 7 {
			ref := "L-" + string(rune('a'+i))
			refs = append(refs, ref)
			if _, err := in.Enqueue(ctx, deletion(ref, "us", "eu")); err != nil {
				t.Fatal(err)
			}
		}
		// One made active, for the state filter.
		e.newWorker()
		e.start()
		waitFor(t, "items made", func() bool { return e.count(`SELECT COUNT(*) FROM mpgdpr_item`) == 14 })
		var got []string
		after := ""
		pages := 0
		for {
			page, err := in.ListRequests(ctx, ListOptions{Limit: 3, After: after})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, r := range page.Requests {
				got = append(got, r.Reference)
				if r.Kind != Deletion || r.ComplianceType != "GDPR" || len(r.Projects) != 2 || r.Due == "" || r.ReceivedAt.IsZero() {
					t.Errorf("summary %+v", r)
				}
			}
			if page.Next == "" {
				break
			}
			after = page.Next
		}
		if !slices.Equal(got, refs) || pages != 3 {
			t.Errorf("listed %v in %d pages, want %v in 3", got, pages, refs)
		}
		page, err := in.ListRequests(ctx, ListOptions{State: RequestReceived})
		if err != nil || len(page.Requests) != 0 || page.Next != "" {
			t.Errorf("received: %+v %v", page, err)
		}
		page, err = in.ListRequests(ctx, ListOptions{State: RequestActive, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Requests {
			if r.State != RequestActive {
				t.Errorf("state %q listed as active", r.State)
			}
		}
		first, _ := in.ListRequests(ctx, ListOptions{Limit: 1})
		for _, bad := range []struct {
			opts  ListOptions
			field string
		}{
			{ListOptions{State: "nope"}, "state"},
			{ListOptions{Limit: -1}, "limit"},
			{ListOptions{Limit: 501}, "limit"},
			{ListOptions{After: "!!"}, "after"},
			{ListOptions{After: "e30"}, "after"}, // {}
			{ListOptions{After: first.Next, State: StateDone}, "after"},
		} {
			_, err := in.ListRequests(ctx, bad.opts)
			var re *RequestError
			if !errors.As(err, &re) || re.Field != bad.field || !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("%+v: %v", bad.opts, err)
			}
		}
	})
}

// An item still queued is cancelled at once and never filed; asking again
// changes nothing; retrievals and ended requests cannot be cancelled.
func TestCancelQueued(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		fakes := twoFakes(t)
		e := newEnv(t, fakes)
		ctx := context.Background()
		if _, err := e.svc.Enqueue(ctx, deletion("C-1", "us", "eu")); err != nil {
			t.Fatal(err)
		}
		// The intake makes the items; a long window keeps them queued.
		e.cfg.Projects[0].BatchWindow = Duration(time.Hour)
		e.cfg.Projects[1].BatchWindow = Duration(time.Hour)
		e.start()
		waitFor(t, "items queued", func() bool { return e.count(`SELECT COUNT(*) FROM mpgdpr_item WHERE state = ?`, StateQueued) == 2 })
		in := e.intakeOnly()
		res, err := in.Cancel(ctx, "C-1")
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Items) != 2 {
			t.Fatalf("%+v", res)
		}
		for _, it := range res.Items {
			if it.Outcome != CancelCancelled || it.State != StateCancelled {
				t.Errorf("item %+v", it)
			}
		}
		events := e.count(`SELECT COUNT(*) FROM mpgdpr_event`)
		res2, err := in.Cancel(ctx, "C-1")
		if err != nil || len(res2.Items) != 2 || res2.Items[0] != res.Items[0] || res2.Items[1] != res.Items[1] {
			t.Errorf("again: %+v %v", res2, err)
		}
		if n := e.count(`SELECT COUNT(*) FROM mpgdpr_event`); n != events {
			t.Errorf("cancelling again added %d events", n-events)
		}
		rs, err := in.RequestStatus(ctx, "C-1")
		if err != nil || rs.State != StateCancelled || rs.CompletedAt == nil {
			t.Errorf("status %+v %v", rs, err)
		}
		if _, err := in.Cancel(ctx, "nope"); !errors.Is(err, ErrUnknownReference) {
			t.Errorf("unknown: %v", err)
		}
		if _, err := in.Enqueue(ctx, Request{Reference: "C-R", Kind: Retrieval, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"x"}, Projects: []string{"us"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := in.Cancel(ctx, "C-R"); !errors.Is(err, ErrNotCancellable) {
			t.Errorf("retrieval: %v", err)
		}
		// Nothing was filed, and the scan never batches a cancelled item.
		time.Sleep(300 * time.Millisecond)
		if n := creates(fakes["us"], mpgdprtest.OpCreateDeletion) + creates(fakes["eu"], mpgdprtest.OpCreateDeletion); n != 0 {
			t.Errorf("%d creates for a cancelled request", n)
		}
	})
}

// A filed deletion is cancelled through Mixpanel by the cancel job; one
// whose task has started is refused and goes on; a task shared with
// another request is never cancelled.
func TestCancelFiled(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		fakes := twoFakes(t, mpgdprtest.WithSchedule(mpgdprtest.Manual()))
		e := newEnv(t, fakes)
		ctx := context.Background()
		// CF-1 alone in us; CF-2 in eu; CF-3 and CF-4 batched together in us.
		for _, r := range []Request{deletion("CF-1", "us"), deletion("CF-2", "eu")} {
			if _, err := e.svc.Enqueue(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		e.start()
		waitFor(t, "open", func() bool { n, ok := e.itemsIn(StateOpen); return n == 2 && ok })
		for _, r := range []Request{deletion("CF-3", "us"), deletion("CF-4", "us")} {
			if _, err := e.svc.Enqueue(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "open", func() bool { n, ok := e.itemsIn(StateOpen); return n == 4 && ok })
		eu := fakes["eu"]
		if err := eu.SetStatus(eu.Tasks()[0].ID, mpgdprtest.StatusStarted); err != nil {
			t.Fatal(err)
		}
		in := e.intakeOnly()
		for _, ref := range []string{"CF-1", "CF-2", "CF-3"} {
			res, err := in.Cancel(ctx, ref)
			if err != nil || len(res.Items) != 1 || res.Items[0].Outcome != CancelPending {
				t.Fatalf("%s: %+v %v", ref, res, err)
			}
		}
		outcome := func(ref string) CancelItem {
			res, err := in.Cancel(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			return res.Items[0]
		}
		waitFor(t, "CF-1 cancelled", func() bool { return outcome("CF-1").Outcome == CancelCancelled })
		waitFor(t, "CF-2 refused", func() bool { return outcome("CF-2").Outcome == CancelTooLate })
		waitFor(t, "CF-3 refused", func() bool { return outcome("CF-3").Outcome == CancelTooLate })
		if d := outcome("CF-3").Detail; !strings.Contains(d, "another request") {
			t.Errorf("CF-3 detail %q", d)
		}
		if d := outcome("CF-2").Detail; !strings.Contains(d, "started") {
			t.Errorf("CF-2 detail %q", d)
		}
		us := fakes["us"]
		revoked := 0
		for _, task := range us.Tasks() {
			if task.Status == mpgdprtest.StatusRevoked {
				revoked++
				if !slices.Equal(task.DistinctIDs, []string{"id-CF-1"}) {
					t.Errorf("revoked task covers %v", task.DistinctIDs)
				}
			}
		}
		if revoked != 1 {
			t.Errorf("%d tasks revoked, want 1", revoked)
		}
		if n := creates(us, mpgdprtest.OpCancelDeletion); n != 1 {
			t.Errorf("%d cancels sent to us, want 1 (never a shared task)", n)
		}
		// The refused ones go on to the end.
		for _, f := range []*mpgdprtest.Server{us, eu} {
			for _, task := range f.Tasks() {
				if task.Status != mpgdprtest.StatusRevoked {
					if err := f.SetStatus(task.ID, mpgdprtest.StatusSuccess); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		waitFor(t, "refused items done", func() bool {
			return e.count(`SELECT COUNT(*) FROM mpgdpr_item WHERE state = ?`, StateDone) == 3
		})
		events := e.count(`SELECT COUNT(*) FROM mpgdpr_event WHERE event IN (?, ?, ?)`, workerdb.EventCancelRequested, workerdb.EventCancelled, workerdb.EventCancelRefused)
		for _, ref := range []string{"CF-1", "CF-2", "CF-3"} {
			if _, err := in.Cancel(ctx, ref); err != nil {
				t.Errorf("%s again: %v", ref, err)
			}
		}
		if _, err := in.Cancel(ctx, "CF-4"); !errors.Is(err, ErrNotCancellable) {
			t.Errorf("CF-4 (done, never cancelled): %v", err)
		}
		if n := e.count(`SELECT COUNT(*) FROM mpgdpr_event WHERE event IN (?, ?, ?)`, workerdb.EventCancelRequested, workerdb.EventCancelled, workerdb.EventCancelRefused); n != events {
			t.Errorf("asking again added %d cancel events", n-events)
		}
	})
}

// OpenExport streams a done retrieval's export and records that it was
// served; anything else has no export.
func TestOpenExport(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		fakes := twoFakes(t)
		e := newEnv(t, fakes)
		ctx := context.Background()
		if err := e.svc.Ready(ctx); !errors.Is(err, ErrNotReady) {
			t.Errorf("Ready before start: %v", err)
		}
		if _, err := e.svc.Enqueue(ctx, Request{Reference: "X-1", Kind: Retrieval, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"alice"}, Projects: []string{"eu"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Enqueue(ctx, deletion("X-D", "eu")); err != nil {
			t.Fatal(err)
		}
		e.start()
		if err := e.svc.Ready(ctx); err != nil {
			t.Errorf("Ready: %v", err)
		}
		waitFor(t, "done", func() bool { n, ok := e.itemsIn(StateDone); return n == 2 && ok })
		in := e.intakeOnly()
		rs, err := in.RequestStatus(ctx, "X-1")
		if err != nil {
			t.Fatal(err)
		}
		task := rs.Items[0].Tasks[0]
		f, err := in.OpenExport(ctx, "X-1", "eu", task.TaskID)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		_ = f.Close()
		if err != nil || n != task.ExportSize || hex.EncodeToString(h.Sum(nil)) != task.ExportSHA256 || f.SHA256 != task.ExportSHA256 ||
			f.Size != n || f.Name != task.TaskID+".zip" || f.TaskID != task.TaskID {
			t.Errorf("served %d bytes (%v), file %+v, task %+v", n, err, f, task)
		}
		var detail string
		if err := e.q.queryRow(ctx, `SELECT detail FROM mpgdpr_event WHERE event = ? AND task_id = ?`, workerdb.EventExportServed, task.TaskID).Scan(&detail); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(detail, task.ExportSHA256) || strings.Contains(detail, e.dir) || strings.Contains(detail, "/") {
			t.Errorf("served event detail %q", detail)
		}
		drs, _ := in.RequestStatus(ctx, "X-D")
		for _, c := range []struct{ ref, project, task string }{
			{"X-1", "eu", "no-such-task"},
			{"X-1", "us", task.TaskID},
			{"X-D", "eu", drs.Items[0].Tasks[0].TaskID},
		} {
			if _, err := in.OpenExport(ctx, c.ref, c.project, c.task); !errors.Is(err, ErrNoExport) {
				t.Errorf("%v: %v", c, err)
			}
		}
		if _, err := in.OpenExport(ctx, "nope", "eu", task.TaskID); !errors.Is(err, ErrUnknownReference) {
			t.Errorf("unknown: %v", err)
		}
		// A file changed since it was checked is not served as good to its end.
		b, err := os.ReadFile(task.ExportPath)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(task.ExportPath, b, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err = in.OpenExport(ctx, "X-1", "eu", task.TaskID)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, f)
		_ = f.Close()
		if !errors.Is(err, errExportChanged) {
			t.Errorf("changed file read: %v", err)
		}
		if err := os.WriteFile(task.ExportPath, b[:10], 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := in.OpenExport(ctx, "X-1", "eu", task.TaskID); err == nil || strings.Contains(err.Error(), e.dir) {
			t.Errorf("truncated file: %v", err)
		}
		if _, err := e.svc.Purge(ctx, PurgeExportsOlderThan(0)); err != nil {
			t.Fatal(err)
		}
		if _, err := in.OpenExport(ctx, "X-1", "eu", task.TaskID); !errors.Is(err, ErrNoExport) {
			t.Errorf("after retention: %v", err)
		}
	})
}

// A request cancelled before a worker took it in is cancelled as its items
// are made, and nothing is filed.
func TestCancelBeforeIntake(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		fakes := twoFakes(t)
		e := newEnv(t, fakes)
		ctx := context.Background()
		in := e.intakeOnly()
		if _, err := in.Enqueue(ctx, deletion("CB-1", "us", "eu")); err != nil {
			t.Fatal(err)
		}
		res, err := in.Cancel(ctx, "CB-1")
		if err != nil || len(res.Items) != 2 || res.Items[0].Outcome != CancelPending || res.Items[1].Outcome != CancelPending {
			t.Fatalf("%+v %v", res, err)
		}
		e.start()
		waitFor(t, "cancelled", func() bool {
			rs, err := in.RequestStatus(ctx, "CB-1")
			return err == nil && rs.State == StateCancelled
		})
		res, err = in.Cancel(ctx, "CB-1")
		if err != nil || res.Items[0].Outcome != CancelCancelled || res.Items[1].Outcome != CancelCancelled {
			t.Errorf("again: %+v %v", res, err)
		}
		// Cancelled by the intake as it made the items, never queued for a scan.
		for _, it := range res.Items {
			if it.Detail != "cancelled before it was taken in" {
				t.Errorf("item %+v", it)
			}
		}
		time.Sleep(400 * time.Millisecond) // past the batch window
		if n := creates(fakes["us"], mpgdprtest.OpCreateDeletion) + creates(fakes["eu"], mpgdprtest.OpCreateDeletion); n != 0 {
			t.Errorf("%d creates for a request cancelled before intake", n)
		}
	})
}

// Cancels of one request at once record its cancellation once.
func TestCancelConcurrent(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t, twoFakes(t))
		ctx := context.Background()
		in := e.intakeOnly()
		if _, err := in.Enqueue(ctx, deletion("CC-1", "us", "eu")); err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 4)
		for range 4 {
			go func() { _, err := in.Cancel(ctx, "CC-1"); errs <- err }()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if n := e.count(`SELECT COUNT(*) FROM mpgdpr_event WHERE reference = ? AND event = ?`, "CC-1", workerdb.EventCancelRequested); n != 2 {
			t.Errorf("%d cancel_requested events, want 2 (one per project)", n)
		}
	})
}
