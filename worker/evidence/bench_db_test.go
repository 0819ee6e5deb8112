package evidence_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/evidence"
)

// BenchmarkDBSource reads the worker's SQLite database of 100,000 completed
// single-person requests (rows written directly, as the worker would: a
// request, an item, its task link and task, and received/filed/status/done
// events) into a CSV report, sampling the live heap after a GC every
// 10,000 records.
func BenchmarkDBSource(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "worker.db")
	db, err := worker.OpenSQLiteFile(path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := worker.MigrateSQLite(ctx, db); err != nil {
		b.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }
	for i := range n {
		ref := fmt.Sprintf("DSR-%07d", i)
		at := base.Add(time.Duration(i) * time.Second)
		task := fmt.Sprintf("task-%05d", i/2000)
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO mpgdpr_request (reference, kind, compliance_type, distinct_ids, projects, digest, received_at, enqueued_at) VALUES (?, 'deletion', 'GDPR', ?, '["web"]', 'd', ?, ?)`,
				[]any{ref, fmt.Sprintf(`["user-%07d"]`, i), ts(at), ts(at)}},
			{`INSERT INTO mpgdpr_item (id, reference, project, kind, compliance_type, n_ids, state, queued_at, updated_at) VALUES (?, ?, 'web', 'deletion', 'GDPR', 1, 'done', ?, ?)`,
				[]any{i + 1, ref, ts(at), ts(at)}},
			{`INSERT INTO mpgdpr_item_task (item_id, round, project, task_id, origin, linked_at) VALUES (?, 0, 'web', ?, 'filed', ?)`, []any{i + 1, task, ts(at.Add(time.Minute))}},
			{`INSERT INTO mpgdpr_event (at, reference, project, item_id, event, task_id) VALUES (?, ?, 'web', ?, 'received', '')`, []any{ts(at), ref, i + 1}},
			{`INSERT INTO mpgdpr_event (at, reference, project, item_id, event, task_id) VALUES (?, ?, 'web', ?, 'filed', ?)`, []any{ts(at.Add(time.Minute)), ref, i + 1, task}},
			{`INSERT INTO mpgdpr_event (at, reference, project, item_id, event, task_id) VALUES (?, ?, 'web', ?, 'done', '')`, []any{ts(at.Add(time.Hour)), ref, i + 1}},
		} {
			if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
				b.Fatal(err)
			}
		}
		if i%2000 == 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO mpgdpr_task (project, task_id, kind, origin, status, created_at, done_at) VALUES ('web', ?, 'deletion', 'filed', 'SUCCESS', ?, ?)`, task, ts(at), ts(at.Add(time.Hour))); err != nil {
				b.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO mpgdpr_event (at, project, event, task_id, detail) VALUES (?, 'web', 'status', ?, 'SUCCESS')`, ts(at.Add(time.Hour)), task); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	src := evidence.NewDB(db, false)
	for b.Loop() {
		runtime.GC()
		var m0 runtime.MemStats
		runtime.ReadMemStats(&m0)
		w := &sampler{Writer: evidence.NewCSVWriter(io.Discard, nil)}
		got, err := evidence.Generate(ctx, src, nil, evidence.Filter{}, base.AddDate(0, 6, 0), w)
		if err != nil || got != n {
			b.Fatal(got, err)
		}
		if w.tasks != n {
			b.Fatalf("%d records with their task, want %d", w.tasks, n)
		}
		b.ReportMetric(float64(w.peak)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(m0.HeapAlloc)/(1<<20), "start-heap-MiB")
	}
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
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		s.peak = max(s.peak, m.HeapAlloc)
	}
	return s.Writer.Write(r)
}
