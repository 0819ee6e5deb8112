package worker

import (
	"context"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/worker/workerdb"
	"github.com/riverqueue/river"
)

func TestRetentionSettings(t *testing.T) {
	cfg, err := ParseConfig(minimalProject)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.IDRetention != Duration(720*time.Hour) || cfg.ExportRetention != Duration(720*time.Hour) ||
		cfg.RiverCompletedRetention != Duration(time.Hour) || cfg.RiverCancelledRetention != Duration(24*time.Hour) ||
		cfg.RiverDiscardedRetention != Duration(168*time.Hour) {
		t.Errorf("defaults: %+v", cfg)
	}
	cfg, err = ParseConfig("id_retention = \"48h\"\nexport_retention = \"1h\"\nriver_completed_retention = \"5m\"\n" + minimalProject)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.IDRetention != Duration(48*time.Hour) || cfg.ExportRetention != Duration(time.Hour) || cfg.RiverCompletedRetention != Duration(5*time.Minute) {
		t.Errorf("settings: %+v", cfg)
	}
	if _, err := ParseConfig("id_retention = \"-1h\"\n" + minimalProject); err == nil {
		t.Error("a negative id_retention was accepted")
	}

	// River is told how long to keep finished jobs.
	e := newTestEnv(t, twoFakes(t))
	e.cfg.RiverCompletedRetention, e.cfg.RiverCancelledRetention = Duration(2*time.Minute), Duration(3*time.Minute)
	var rc river.Config
	e.newWorker(WithRiverConfig(func(c *river.Config) { rc = *c }))
	if rc.CompletedJobRetentionPeriod != 2*time.Minute || rc.CancelledJobRetentionPeriod != 3*time.Minute || rc.DiscardedJobRetentionPeriod != 168*time.Hour {
		t.Errorf("River keeps finished jobs %s, %s, %s", rc.CompletedJobRetentionPeriod, rc.CancelledJobRetentionPeriod, rc.DiscardedJobRetentionPeriod)
	}
}

// The worker purges by itself: at each start (and hourly), requests that
// ended longer than id_retention ago; not those still within it.
func TestPeriodicPurge(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t, twoFakes(t))
		ctx := context.Background()
		for _, ref := range []string{"PP-1", "PP-2"} {
			if _, err := e.svc.Enqueue(ctx, Request{Reference: ref, Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"periodic-" + ref}, Projects: []string{"us"}}); err != nil {
				t.Fatal(err)
			}
		}
		e.start()
		waitFor(t, "both done", func() bool { total, ok := e.itemsIn(StateDone); return total == 2 && ok })
		if err := e.svc.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if n := e.count(`SELECT COUNT(*) FROM mpgdpr_event WHERE event = ?`, workerdb.EventIDsPurged); n != 0 {
			t.Fatalf("purged within id_retention: %d", n)
		}
		e.cfg.IDRetention = Duration(time.Millisecond)
		e.newWorker()
		e.start()
		waitFor(t, "the purge at start", func() bool {
			return e.count(`SELECT COUNT(*) FROM mpgdpr_request WHERE ids_purged_at IS NOT NULL AND distinct_ids NOT LIKE '%periodic-%'`) == 2
		})
	})
}
