package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker/workerdb"
)

func twoFakes(t testing.TB, opts ...mpgdprtest.Option) map[string]*mpgdprtest.Server {
	us := mpgdprtest.NewServer(append([]mpgdprtest.Option{mpgdprtest.WithAPISecret("secret-us")}, opts...)...)
	eu := mpgdprtest.NewServer(append([]mpgdprtest.Option{mpgdprtest.WithAPISecret("secret-eu")}, opts...)...)
	t.Cleanup(us.Close)
	t.Cleanup(eu.Close)
	t.Cleanup(func() { us.AssertNoViolations(t); eu.AssertNoViolations(t) })
	return map[string]*mpgdprtest.Server{"us": us, "eu": eu}
}

func TestDeletionsBatchedAcrossTwoProjects(t *testing.T) { forEachDriver(t, testDeletionsBatched) }

func testDeletionsBatched(t *testing.T, newEnv envMaker) {
	fakes := twoFakes(t)
	e := newEnv(t, fakes)
	ctx := context.Background()
	const n = 30
	// Enqueued before the worker starts: they all wait for the same window.
	for i := range n {
		res, err := e.svc.Enqueue(ctx, Request{Reference: fmt.Sprintf("DSR-%d", i), Kind: Deletion, ComplianceType: mpgdpr.GDPR,
			DistinctIDs: []string{fmt.Sprintf("user-%d", i)}, AllProjects: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Duplicate || !slices.Equal(res.Projects, []string{"eu", "us"}) {
			t.Fatalf("result %+v", res)
		}
	}
	e.start()
	waitFor(t, "every item done", func() bool { total, ok := e.itemsIn(StateDone); return total == 2*n && ok })
	for name, f := range fakes {
		times := filedTimes(f, mpgdprtest.Deletion)
		for i := range n {
			if got := times[fmt.Sprintf("user-%d", i)]; got != 1 {
				t.Errorf("%s: user-%d filed %d times", name, i, got)
			}
		}
		if c := creates(f, mpgdprtest.OpCreateDeletion); c >= n {
			t.Errorf("%s: %d creates for %d requests: not coalesced", name, c, n)
		}
	}
	rs, err := e.svc.RequestStatus(ctx, "DSR-7", WithEvents())
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Items) != 2 {
		t.Fatalf("items %+v", rs.Items)
	}
	for _, it := range rs.Items {
		if it.State != StateDone || len(it.Tasks) != 1 || !it.Tasks[0].Done || it.Tasks[0].Status != "SUCCESS" {
			t.Errorf("item %+v", it)
		}
		var evs []string
		for _, ev := range it.Events {
			evs = append(evs, ev.Event)
		}
		for _, want := range []string{workerdb.EventReceived, workerdb.EventQueued, workerdb.EventBatched, workerdb.EventSending, workerdb.EventFiled, workerdb.EventStatus, workerdb.EventDone} {
			if !slices.Contains(evs, want) {
				t.Errorf("%s: no %q event in %v", it.Project, want, evs)
			}
		}
	}
}

func TestRetrievalExportDownloadedAndChecked(t *testing.T) { forEachDriver(t, testRetrievalExport) }

func testRetrievalExport(t *testing.T, newEnv envMaker) {
	fakes := twoFakes(t)
	e := newEnv(t, fakes)
	ctx := context.Background()
	if _, err := e.svc.Enqueue(ctx, Request{Reference: "R-1", Kind: Retrieval, ComplianceType: mpgdpr.CCPA, DisclosureType: mpgdpr.DisclosureData,
		DistinctIDs: []string{"alice", "alice-2"}, Projects: []string{"eu"}}); err != nil {
		t.Fatal(err)
	}
	e.start()
	waitFor(t, "retrieval done", func() bool { total, ok := e.itemsIn(StateDone); return total == 1 && ok })
	rs, err := e.svc.RequestStatus(ctx, "R-1")
	if err != nil {
		t.Fatal(err)
	}
	task := rs.Items[0].Tasks[0]
	b, err := os.ReadFile(task.ExportPath)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if int64(len(b)) != task.ExportSize || hex.EncodeToString(sum[:]) != task.ExportSHA256 {
		t.Errorf("recorded size %d sha %s; file has %d bytes, sha %x", task.ExportSize, task.ExportSHA256, len(b), sum)
	}
	if st, _ := os.Stat(task.ExportPath); st.Mode().Perm() != 0o600 {
		t.Errorf("export mode %v", st.Mode())
	}
	if len(fakes["us"].Tasks()) != 0 {
		t.Error("the us project got a task for an eu-only request")
	}
}

func TestEnqueueIdempotentByReference(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t, twoFakes(t))
		ctx := context.Background()
		r := Request{Reference: "T-1", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"a", "b", "a"}, Projects: []string{"us"}}
		if res, err := e.svc.Enqueue(ctx, r); err != nil || res.Duplicate {
			t.Fatalf("%+v %v", res, err)
		}
		r2 := r
		r2.DistinctIDs = []string{"b", "a"} // same set
		if res, err := e.svc.Enqueue(ctx, r2); err != nil || !res.Duplicate {
			t.Fatalf("same request again: %+v %v", res, err)
		}
		r3 := r
		r3.DistinctIDs = []string{"a", "c"}
		if _, err := e.svc.Enqueue(ctx, r3); !errors.Is(err, ErrConflictingRequest) {
			t.Fatalf("conflicting request: %v", err)
		}
		if jobs := e.count(`SELECT COUNT(*) FROM river_job WHERE kind = 'mpgdpr_request'`); jobs != 1 {
			t.Fatalf("%d request jobs", jobs)
		}
	})
}

func TestEnqueueRefusesBadInput(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t, twoFakes(t))
		ctx := context.Background()
		for name, r := range map[string]Request{
			"no reference":   {Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"a"}, AllProjects: true},
			"no ids":         {Reference: "x", Kind: Deletion, ComplianceType: mpgdpr.GDPR, AllProjects: true},
			"blank id":       {Reference: "x", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{" "}, AllProjects: true},
			"invisible id":   {Reference: "x", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"a\u200bb"}, AllProjects: true},
			"bad kind":       {Reference: "x", Kind: "erase", ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"a"}, AllProjects: true},
			"no compliance":  {Reference: "x", Kind: Deletion, DistinctIDs: []string{"a"}, AllProjects: true},
			"gdpr disclose":  {Reference: "x", Kind: Retrieval, ComplianceType: mpgdpr.GDPR, DisclosureType: mpgdpr.DisclosureData, DistinctIDs: []string{"a"}, AllProjects: true},
			"no projects":    {Reference: "x", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"a"}},
			"unknown projct": {Reference: "x", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"a"}, Projects: []string{"asia"}},
		} {
			_, err := e.svc.Enqueue(ctx, r)
			if !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("%s: %v", name, err)
			}
			if err != nil && slices.ContainsFunc(r.DistinctIDs, func(id string) bool {
				return id != "a" && strings.TrimSpace(id) != "" && strings.Contains(err.Error(), id)
			}) {
				t.Errorf("%s: the error quotes the ID: %v", name, err)
			}
		}
		if n := e.count(`SELECT COUNT(*) FROM mpgdpr_request`); n != 0 {
			t.Fatalf("%d requests stored", n)
		}
	})
}

func TestEnqueueTxRollsBackWithTheCaller(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t, twoFakes(t))
		ctx := context.Background()
		req := Request{Reference: "TX-1", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"a"}, AllProjects: true}
		// enqueueTx enqueues req on a transaction of the caller's own,
		// then commits or rolls it back.
		enqueueTx := func(commit bool) error {
			if e.w != nil {
				tx, err := e.db.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				if _, err := e.w.EnqueueTx(ctx, tx, req); err != nil {
					return err
				}
				if commit {
					return tx.Commit()
				}
				return tx.Rollback()
			}
			tx, err := e.pool.Begin(ctx)
			if err != nil {
				return err
			}
			if _, err := e.pw.EnqueueTx(ctx, tx, req); err != nil {
				return err
			}
			if commit {
				return tx.Commit(ctx)
			}
			return tx.Rollback(ctx)
		}
		if err := enqueueTx(false); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.RequestStatus(ctx, "TX-1"); !errors.Is(err, ErrUnknownReference) {
			t.Fatalf("after rollback: %v", err)
		}
		if jobs := e.count(`SELECT COUNT(*) FROM river_job`); jobs != 0 {
			t.Fatalf("%d jobs after rollback", jobs)
		}
		if err := enqueueTx(true); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.RequestStatus(ctx, "TX-1"); err != nil {
			t.Fatalf("after commit: %v", err)
		}
	})
}
