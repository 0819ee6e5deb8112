package worker

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// A stop that runs out of grace while a create is on the wire records the
// create as of unknown outcome (never leaves it "sending"); the next start
// files the deletion again and the item ends done, filed once.
func TestStopMidCreateRecordsUnknown(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		fakes := twoFakes(t)
		// The first create hangs, then is dropped unprocessed: had the fake
		// carried it out late, after the resubmitted deletion had already
		// succeeded, Mixpanel would rightly hold two tasks (an answer lost).
		fakes["us"].InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateDeletion, Latency: 3 * time.Second, Reset: mpgdprtest.ResetBeforeBody})
		e := newEnv(t, fakes)
		ctx := context.Background()
		if _, err := e.svc.Enqueue(ctx, Request{Reference: "S-1", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"erin"}, Projects: []string{"us"}}); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a create on the wire", func() bool {
			return e.count(`SELECT COUNT(*) FROM mpgdpr_create WHERE state = 'sending'`) == 1
		})
		sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_ = e.svc.Stop(sctx)
		sending, unknown := e.count(`SELECT COUNT(*) FROM mpgdpr_create WHERE state = 'sending'`), e.count(`SELECT COUNT(*) FROM mpgdpr_create WHERE state = 'unknown'`)
		if sending != 0 || unknown != 1 {
			t.Fatalf("after stop: %d sending, %d unknown creates", sending, unknown)
		}

		e.newWorker() // a restart
		e.start()
		waitFor(t, "item done", func() bool { total, ok := e.itemsIn(StateDone); return total == 1 && ok })
		if n := filedTimes(fakes["us"], mpgdprtest.Deletion)["erin"]; n != 1 {
			t.Errorf("filed %d times", n)
		}
		_, evs := itemEvents(t, e, "S-1", "us")
		if !slices.Contains(evs, workerdb.EventUnknown) {
			t.Errorf("no unknown event: %v", evs)
		}
	})
}
