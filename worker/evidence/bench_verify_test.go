package evidence_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/evidence"
)

// BenchmarkVerifyDB verifies the worker's SQLite database of 100,000
// completed single-person requests written as a sealing worker writes them
// (rows, chained events, a seal after each row write), sampling the live
// heap (after a GC) every 250 ms while the chains and every row are
// checked. MPGDPR_VERIFY_BENCH_DB names a file to build once and reuse
// (for comparing versions on the same database).
func BenchmarkVerifyDB(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("MPGDPR_VERIFY_BENCH_N")); err == nil {
		n = v
	}
	ctx := context.Background()
	path := os.Getenv("MPGDPR_VERIFY_BENCH_DB")
	if path == "" {
		path = filepath.Join(b.TempDir(), "worker.db")
	}
	ids, err := evidence.NewIDHasher([]byte("a benchmark's ID key, 32 bytes.."))
	if err != nil {
		b.Fatal(err)
	}
	_, statErr := os.Stat(path)
	db, err := worker.OpenSQLiteFile(path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if os.IsNotExist(statErr) {
		writeSealedRun(b, db, ids, n)
	}
	src := evidence.NewDB(db, false)
	for b.Loop() {
		runtime.GC()
		var peak uint64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(250 * time.Millisecond):
				}
				runtime.GC()
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapAlloc)
			}
		}()
		v, err := src.Verify(ctx, nil, evidence.WithIDKey(ids))
		close(stop)
		wg.Wait()
		if err != nil || !v.OK() || !v.Complete() {
			b.Fatalf("%v\n%s", err, v)
		}
		b.ReportMetric(float64(peak)/(1<<20), "peak-live-heap-MiB")
	}
}

// writeSealedRun writes n requests, one item, link and done deletion task
// each (2,000 items a task), with their events chained and their rows
// sealed, in the order the worker writes them.
func writeSealedRun(b *testing.B, db *sql.DB, ids *evidence.IDHasher, n int) {
	ctx := context.Background()
	if _, err := worker.MigrateSQLite(ctx, db); err != nil {
		b.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }
	type chain struct {
		seq  int64
		head string
	}
	chains := map[string]*chain{"": {}, "web": {}}
	exec := func(q string, args ...any) {
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			b.Fatal(err)
		}
	}
	event := func(e evidence.ChainEntry) {
		c := chains[e.Chain]
		c.seq++
		e.Seq = c.seq
		c.head = evidence.EventHash(c.head, e)
		var item, batch any
		if e.ItemID != 0 {
			item = e.ItemID
		}
		if e.BatchID != 0 {
			batch = e.BatchID
		}
		exec(`INSERT INTO mpgdpr_event (at, reference, project, item_id, batch_id, task_id, event, detail, chain_seq, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.At, e.Reference, e.Chain, item, batch, e.TaskID, e.Event, e.Detail, e.Seq, c.head)
	}
	for i := range n {
		ref := fmt.Sprintf("DSR-%07d", i)
		at := base.Add(time.Duration(i) * time.Second)
		task := fmt.Sprintf("task-%05d", i/2000)
		req := evidence.RequestRow{Reference: ref, Kind: "deletion", ComplianceType: "GDPR", DistinctIDs: fmt.Sprintf(`["user-%07d"]`, i), Projects: `["web"]`, ReceivedAt: ts(at)}
		exec(`INSERT INTO mpgdpr_request (reference, kind, compliance_type, distinct_ids, projects, digest, received_at, enqueued_at) VALUES (?, ?, ?, ?, ?, 'd', ?, ?)`,
			req.Reference, req.Kind, req.ComplianceType, req.DistinctIDs, req.Projects, req.ReceivedAt, ts(at))
		dg, err := req.Digest(ids)
		if err != nil {
			b.Fatal(err)
		}
		event(evidence.ChainEntry{Chain: "", At: ts(at), Reference: ref, Event: "enqueued"})
		event(evidence.ChainEntry{Chain: "", At: ts(at), Reference: ref, Event: "sealed", Detail: evidence.SealDetail(evidence.TableRequest, dg)})
		if i%2000 == 0 {
			t := evidence.TaskRow{Project: "web", TaskID: task, Kind: "deletion", Origin: "filed", CreatedAt: ts(at)}
			exec(`INSERT INTO mpgdpr_task (project, task_id, kind, origin, status, created_at) VALUES ('web', ?, 'deletion', 'filed', '', ?)`, task, t.CreatedAt)
			event(evidence.ChainEntry{Chain: "web", At: ts(at), TaskID: task, Event: "sealed", Detail: evidence.SealDetail(evidence.TableTask, t.Digest())})
		}
		it := evidence.ItemRow{ID: int64(i + 1), Reference: ref, Project: "web", Kind: "deletion", ComplianceType: "GDPR", NIDs: 1, State: "queued"}
		seal := func() {
			event(evidence.ChainEntry{Chain: "web", At: ts(at), Reference: ref, ItemID: it.ID, Event: "sealed", Detail: evidence.SealDetail(evidence.TableItem, it.Digest())})
		}
		exec(`INSERT INTO mpgdpr_item (id, reference, project, kind, compliance_type, n_ids, state, queued_at, updated_at) VALUES (?, ?, 'web', 'deletion', 'GDPR', 1, 'queued', ?, ?)`, it.ID, ref, ts(at), ts(at))
		seal()
		event(evidence.ChainEntry{Chain: "web", At: ts(at), Reference: ref, ItemID: it.ID, Event: "received"})
		event(evidence.ChainEntry{Chain: "web", At: ts(at), Reference: ref, ItemID: it.ID, Event: "queued"})
		it.State = "batched"
		exec(`UPDATE mpgdpr_item SET state = ? WHERE id = ?`, it.State, it.ID)
		seal()
		event(evidence.ChainEntry{Chain: "web", At: ts(at), Reference: ref, ItemID: it.ID, Event: "batched"})
		linked := ts(at.Add(time.Minute))
		exec(`INSERT INTO mpgdpr_item_task (item_id, round, project, task_id, origin, linked_at) VALUES (?, 0, 'web', ?, 'filed', ?)`, it.ID, task, linked)
		it.Links = []evidence.LinkRow{{ItemID: it.ID, Project: "web", TaskID: task, Origin: "filed", Linked: linked}}
		seal()
		event(evidence.ChainEntry{Chain: "web", At: linked, Reference: ref, ItemID: it.ID, TaskID: task, Event: "filed"})
		it.State = "done"
		exec(`UPDATE mpgdpr_item SET state = ? WHERE id = ?`, it.State, it.ID)
		seal()
		event(evidence.ChainEntry{Chain: "web", At: ts(at.Add(time.Hour)), Reference: ref, ItemID: it.ID, Event: "done"})
		if i%2000 == 1999 || i == n-1 {
			done := ts(at.Add(time.Hour))
			t := evidence.TaskRow{Project: "web", TaskID: task, Kind: "deletion", Origin: "filed", CreatedAt: ts(base.Add(time.Duration(i/2000*2000) * time.Second)), DoneAt: done}
			exec(`UPDATE mpgdpr_task SET done_at = ?, status = 'SUCCESS' WHERE task_id = ?`, done, task)
			event(evidence.ChainEntry{Chain: "web", At: done, TaskID: task, Event: "status", Detail: "SUCCESS"})
			event(evidence.ChainEntry{Chain: "web", At: done, TaskID: task, Event: "sealed", Detail: evidence.SealDetail(evidence.TableTask, t.Digest())})
		}
	}
	for name, c := range chains {
		exec(`INSERT INTO mpgdpr_chain (chain, seq, head) VALUES (?, ?, ?)`, name, c.seq, c.head)
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}
