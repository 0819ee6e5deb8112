package evidence_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// benchBase is when the first request of benchDB was received.
var benchBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// benchDB writes n completed single-person requests into a new SQLite
// database of the worker, rows written directly as the worker would: a
// request, an item, its task link and task (one per 2,000 requests), and
// received/filed/done events per item and a status event per task, every
// event chained (project "web") as the worker chains it.
func benchDB(b *testing.B, n int) *sql.DB {
	b.Helper()
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "worker.db")
	db, err := worker.OpenSQLiteFile(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	if _, err := worker.MigrateSQLite(ctx, db); err != nil {
		b.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	var seq int64
	var head string
	event := func(e evidence.ChainEntry) {
		seq++
		e.Chain, e.Seq = "web", seq
		head = evidence.EventHash(head, e)
		var item any
		if e.ItemID != 0 {
			item = e.ItemID
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO mpgdpr_event (at, reference, project, item_id, event, task_id, detail, chain_seq, hash) VALUES (?, ?, 'web', ?, ?, ?, ?, ?, ?)`,
			e.At, e.Reference, item, e.Event, e.TaskID, e.Detail, seq, head); err != nil {
			b.Fatal(err)
		}
	}
	ts := workerdb.FormatTime
	for i := range n {
		ref := fmt.Sprintf("DSR-%07d", i)
		at := benchBase.Add(time.Duration(i) * time.Second)
		task := fmt.Sprintf("task-%05d", i/2000)
		item := int64(i + 1)
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO mpgdpr_request (reference, kind, compliance_type, distinct_ids, projects, digest, received_at, enqueued_at) VALUES (?, 'deletion', 'GDPR', ?, '["web"]', 'd', ?, ?)`,
				[]any{ref, fmt.Sprintf(`["user-%07d"]`, i), ts(at), ts(at)}},
			{`INSERT INTO mpgdpr_item (id, reference, project, kind, compliance_type, n_ids, state, queued_at, updated_at) VALUES (?, ?, 'web', 'deletion', 'GDPR', 1, 'done', ?, ?)`,
				[]any{item, ref, ts(at), ts(at)}},
			{`INSERT INTO mpgdpr_item_task (item_id, round, project, task_id, origin, linked_at) VALUES (?, 0, 'web', ?, 'filed', ?)`, []any{item, task, ts(at.Add(time.Minute))}},
		} {
			if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
				b.Fatal(err)
			}
		}
		event(evidence.ChainEntry{At: ts(at), Reference: ref, ItemID: item, Event: workerdb.EventReceived})
		event(evidence.ChainEntry{At: ts(at.Add(time.Minute)), Reference: ref, ItemID: item, Event: workerdb.EventFiled, TaskID: task})
		event(evidence.ChainEntry{At: ts(at.Add(time.Hour)), Reference: ref, ItemID: item, Event: workerdb.EventDone})
		if i%2000 == 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO mpgdpr_task (project, task_id, kind, origin, status, created_at, done_at) VALUES ('web', ?, 'deletion', 'filed', 'SUCCESS', ?, ?)`, task, ts(at), ts(at.Add(time.Hour))); err != nil {
				b.Fatal(err)
			}
			event(evidence.ChainEntry{At: ts(at.Add(time.Hour)), Event: workerdb.EventStatus, TaskID: task, Detail: "SUCCESS"})
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO mpgdpr_chain (chain, seq, head) VALUES ('web', ?, ?)`, seq, head); err != nil {
		b.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return db
}

// benchSizes are the numbers of requests the database benchmarks run on:
// the live heap should not grow from one to the next.
var benchSizes = []int{10_000, 100_000}

// checker is evidence.DB's Check (the test every report and verification
// of the CLI makes first), asserted so that this file also builds where
// Check does not exist (to measure a "before").
type checker interface {
	Check(ctx context.Context, allowEmpty bool) error
}

func benchCheck(b *testing.B, src any) {
	if c, ok := src.(checker); ok {
		if err := c.Check(context.Background(), false); err != nil {
			b.Fatal(err)
		}
	}
}

// heapNow is the live heap after a GC.
func heapNow() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// forEachSize runs f on a database of each of benchSizes.
func forEachSize(b *testing.B, f func(b *testing.B, n int, src *evidence.DB)) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("requests=%d", n), func(b *testing.B) { f(b, n, evidence.NewDB(benchDB(b, n), false)) })
	}
}

// reportHeap reports the peak live heap sampled and the one before.
func reportHeap(b *testing.B, peak, start uint64) {
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(start)/(1<<20), "start-heap-MiB")
}

// BenchmarkDBSource reads the worker's SQLite database of completed
// single-person requests (benchDB) into a CSV report, as 'mpgdpr report'
// does (Check first), sampling the live heap after a GC every 10,000
// records.
func BenchmarkDBSource(b *testing.B) {
	forEachSize(b, func(b *testing.B, n int, src *evidence.DB) {
		ctx := context.Background()
		for b.Loop() {
			start := heapNow()
			benchCheck(b, src)
			w := &sampler{Writer: evidence.NewCSVWriter(io.Discard, nil)}
			got, err := evidence.Generate(ctx, src, nil, evidence.Filter{}, benchBase.AddDate(0, 6, 0), w)
			if err != nil || got != n {
				b.Fatal(got, err)
			}
			if w.tasks != n {
				b.Fatalf("%d records with their task, want %d", w.tasks, n)
			}
			reportHeap(b, w.peak, start)
		}
	})
}

// BenchmarkVerify verifies the same database (three chained events per
// request, and one per task), as 'mpgdpr report verify' does (Check
// first), sampling the live heap after a GC every 20 ms while it runs.
func BenchmarkVerify(b *testing.B) {
	forEachSize(b, func(b *testing.B, _ int, src *evidence.DB) {
		ctx := context.Background()
		for b.Loop() {
			start := heapNow()
			stop := make(chan struct{})
			peak := make(chan uint64)
			go func() {
				var p uint64
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						peak <- p
						return
					case <-tick.C:
						p = max(p, heapNow())
					}
				}
			}()
			benchCheck(b, src)
			v, err := src.Verify(ctx, nil)
			close(stop)
			p := <-peak
			if err != nil || !v.OK() || len(v.Heads()) == 0 {
				b.Fatalf("%v %v", v, err)
			}
			reportHeap(b, p, start)
		}
	})
}

type sampler struct {
	evidence.Writer
	n, tasks int
	peak     uint64
}

func (s *sampler) Write(r *evidence.Record) error {
	s.n++
	if len(r.Tasks) == 1 && len(r.Tasks[0].Statuses) == 1 && r.Completed() {
		s.tasks++
	}
	if s.n%10000 == 0 {
		s.peak = max(s.peak, heapNow())
	}
	return s.Writer.Write(r)
}
