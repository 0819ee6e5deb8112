package evidence_test

import (
	"context"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

// A request stored but not yet taken in by a worker is in the report, once
// per project, with its deadline running from its time of receipt.
func TestRequestNotYetTakenIn(t *testing.T) {
	workertest.ForEachDriver(t, func(t *testing.T, d workertest.Driver) {
		ctx := context.Background()
		fakes := map[string]*mpgdprtest.Server{"us": mpgdprtest.NewServer(), "eu": mpgdprtest.NewServer()}
		for _, f := range fakes {
			t.Cleanup(f.Close)
		}
		dir := t.TempDir()
		url := workertest.DatabaseURL(t, d, dir)
		cfg, err := worker.LoadConfig(workertest.Config(t, dir, fakes, workertest.WithDatabase(url)))
		if err != nil {
			t.Fatal(err)
		}
		w, closeDB, err := worker.Open(ctx, cfg, "") // never started
		if err != nil {
			t.Fatal(err)
		}
		defer closeDB()
		received := time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC)
		if _, err := w.Enqueue(ctx, worker.Request{Reference: "P-1", Kind: worker.Deletion, ComplianceType: mpgdpr.CCPA,
			DistinctIDs: []string{"x"}, AllProjects: true, ReceivedAt: received}); err != nil {
			t.Fatal(err)
		}
		src, err := evidence.OpenDB(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		var recs []*evidence.Record
		pol := evidence.NewPolicy()
		if err := src.Records(ctx, evidence.Filter{Project: "eu"}, func(r *evidence.Record) error {
			pol.Evaluate(r, time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC))
			recs = append(recs, r)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].Project != "eu" || recs[0].SourceState != "received" || recs[0].Deadline.Due.Format("2006-01-02") != "2026-03-17" ||
			recs[0].Deadline.State != evidence.Overdue {
			t.Fatalf("records %+v", recs)
		}
		v, err := src.Verify(ctx, nil)
		if err != nil || !v.OK() {
			t.Fatalf("%v %v", v, err)
		}
	})
}
