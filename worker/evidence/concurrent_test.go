package evidence_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/internal/pgtest"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

// Three workers share one Postgres database while eight goroutines enqueue
// at once: every chain stays one unbroken sequence (the head row is locked
// per chain, in the insert's transaction) and verifies.
func TestChainConcurrentWorkersPostgres(t *testing.T) {
	ctx := context.Background()
	fakes := map[string]*mpgdprtest.Server{
		"us": mpgdprtest.NewServer(mpgdprtest.WithAPISecret("evidence-secret-us")),
		"eu": mpgdprtest.NewServer(mpgdprtest.WithAPISecret("evidence-secret-eu")),
	}
	for _, f := range fakes {
		t.Cleanup(f.Close)
	}
	url := pgtest.URL(t)
	cfg, err := worker.LoadConfig(workertest.Config(t, t.TempDir(), fakes, workertest.WithDatabase(url)))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var workers []*worker.Worker[pgx.Tx]
	for range 3 {
		w, err := worker.NewPostgres(ctx, pool, cfg, worker.WithRiverConfig(workertest.RiverConfig))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(ctx); err != nil {
			t.Fatal(err)
		}
		workers = append(workers, w)
	}
	defer func() {
		for _, w := range workers {
			_ = w.Stop(ctx)
		}
	}()
	const goroutines, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r := worker.Request{Reference: fmt.Sprintf("C-%d-%d", g, i), Kind: worker.Deletion, ComplianceType: mpgdpr.GDPR,
					DistinctIDs: []string{fmt.Sprintf("person-%d-%d", g, i)}, AllProjects: i%2 == 0}
				if i%2 == 1 {
					r.Projects = []string{"us"}
				}
				if _, err := workers[(g+i)%3].Enqueue(ctx, r); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := goroutines*each + goroutines*each/2   // items: half the requests in both projects
	deadline := time.Now().Add(120 * time.Second) // only stops a hung test
	for {
		st, err := workers[0].Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, p := range st.Projects {
			done += p.Items[worker.StateDone]
		}
		if done == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up: %d of %d items done: %+v", done, want, st.Projects)
		}
		time.Sleep(50 * time.Millisecond)
	}
	db := evidence.NewDB(stdlib.OpenDBFromPool(pool), true)
	v, err := db.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK() || v.Unverifiable() {
		t.Fatalf("after concurrent inserts: %s", v)
	}
	for _, c := range v.Chains {
		if c.Chain == "" && c.Entries != 2*goroutines*each {
			t.Errorf("request chain: %d entries, want %d (an enqueued and a sealed event per request)", c.Entries, 2*goroutines*each)
		}
	}
	n := 0
	if err := db.Records(ctx, evidence.Filter{}, func(*evidence.Record) error { n++; return nil }); err != nil || n != want {
		t.Errorf("%d records (%v), want %d", n, err, want)
	}
}
