package worker

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker/internal/pgtest"
)

// BenchmarkWorkerFlow (issue 15): MPGDPR_BENCH_REQUESTS single-person
// deletion requests (default 100000) spread over 3 projects, filed by 3
// workers sharing one Postgres database and its budget, against fakes that
// enforce the project rate by arrival time (scaled to MPGDPR_BENCH_RATE
// per second, default 20, instead of Mixpanel's 1) and finish tasks on a
// schedule. It reports creates per project against the floor
// ⌈IDs ÷ limit⌉, polls per task, the time to file everything against the
// floor's time at the rate, 429s, IDs filed twice or lost, the peak heap
// and the database size per request. Run it once:
//
//	go test -run '^$' -bench BenchmarkWorkerFlow -benchtime 1x ./worker
func BenchmarkWorkerFlow(b *testing.B) {
	n := envInt("MPGDPR_BENCH_REQUESTS", 100000)
	rate := envInt("MPGDPR_BENCH_RATE", 20)
	const projects, workers, limit = 3, 3, 1999
	for range b.N {
		fakes := map[string]*mpgdprtest.Server{}
		for i := range projects {
			f := mpgdprtest.NewServer(mpgdprtest.WithRateLimit(float64(rate)),
				mpgdprtest.WithSchedule(mpgdprtest.Timed(2*time.Second, 2*time.Second, 2*time.Second)))
			b.Cleanup(f.Close)
			fakes[fmt.Sprintf("p%d", i)] = f
		}
		url := pgtest.URL(b)
		dir := b.TempDir()
		path := testConfig(b, dir, fakes)
		text, _ := os.ReadFile(path)
		text = []byte(strings.ReplaceAll(strings.ReplaceAll(string(text), "rate = 500", fmt.Sprintf("rate = %d", rate)),
			`poll_min = "10ms"`, `poll_min = "1s"`))
		text = []byte(strings.Replace(string(text), `batch_window = "300ms"`, `batch_window = "2s"`, 1))
		text = []byte(strings.Replace(string(text), `poll_max = "40ms"`, `poll_max = "5s"`, 1))
		if err := os.WriteFile(path, text, 0o600); err != nil {
			b.Fatal(err)
		}
		cfg, err := LoadConfig(path)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		var svcs []*Worker[pgx.Tx]
		for range workers {
			pool, err := pgxpool.New(ctx, url)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(pool.Close)
			w, err := NewPostgres(ctx, pool, cfg, WithRiverConfig(testRiverConfig))
			if err != nil {
				b.Fatal(err)
			}
			svcs = append(svcs, w)
		}
		var peak atomic.Uint64
		stopSampling := make(chan struct{})
		go func() {
			var ms runtime.MemStats
			for {
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
				select {
				case <-stopSampling:
					return
				case <-time.After(200 * time.Millisecond):
				}
			}
		}()
		b.ResetTimer()
		start := time.Now()
		for _, w := range svcs {
			if err := w.Start(ctx); err != nil {
				b.Fatal(err)
			}
		}
		// A stream of single-person requests, from 8 callers at once.
		var wg sync.WaitGroup
		next := atomic.Int64{}
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= int64(n) {
						return
					}
					if _, err := svcs[i%workers].Enqueue(ctx, Request{Reference: fmt.Sprintf("B-%d", i), Kind: Deletion, ComplianceType: mpgdpr.GDPR,
						DistinctIDs: []string{fmt.Sprintf("bench-%d", i)}, Projects: []string{fmt.Sprintf("p%d", i%projects)}}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		enqueued := time.Since(start)
		var filedAt time.Duration
		for {
			st, err := svcs[0].Status(ctx)
			if err != nil {
				b.Fatal(err)
			}
			queued, done := 0, 0
			for _, p := range st.Projects {
				queued += p.Items[StateQueued] + p.Items[StateBatched]
				done += p.Items[StateDone]
			}
			if queued == 0 && filedAt == 0 {
				filedAt = time.Since(start)
			}
			if done == n {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		total := time.Since(start)
		b.StopTimer()
		close(stopSampling)
		for _, w := range svcs {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_ = w.Stop(sctx)
			cancel()
		}
		var creates, polls, tasks, n429, twice, lost int
		for i := range projects {
			f := fakes[fmt.Sprintf("p%d", i)]
			times := filedTimes(f, mpgdprtest.Deletion)
			for j := i; j < n; j += projects {
				switch times[fmt.Sprintf("bench-%d", j)] {
				case 0:
					lost++
				case 1:
				default:
					twice++
				}
			}
			for _, r := range f.Requests() {
				switch {
				case r.Status == 429:
					n429++
				case r.Op == mpgdprtest.OpCreateDeletion:
					creates++
				case r.Op == mpgdprtest.OpCheckDeletion:
					polls++
				}
			}
			tasks += len(f.Tasks())
		}
		floor := 0
		for i := range projects {
			ids := (n - i + projects - 1) / projects
			floor += (ids + limit - 1) / limit
		}
		pool, _ := pgxpool.New(ctx, url)
		var dbSize int64
		_ = pool.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&dbSize)
		pool.Close()
		b.ReportMetric(float64(n), "requests")
		b.ReportMetric(float64(creates)/float64(projects), "creates/project")
		b.ReportMetric(float64(floor)/float64(projects), "floor-creates/project")
		b.ReportMetric(float64(polls)/float64(max(tasks, 1)), "polls/task")
		b.ReportMetric(enqueued.Seconds(), "s-enqueue")
		b.ReportMetric(filedAt.Seconds(), "s-to-file-all")
		b.ReportMetric(total.Seconds(), "s-to-done")
		b.ReportMetric(float64(n429), "429s")
		b.ReportMetric(float64(twice), "filed-twice")
		b.ReportMetric(float64(lost), "lost")
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(dbSize)/float64(n), "db-bytes/request")
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
