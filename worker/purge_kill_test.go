package worker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// purgeRequests enqueues n ended-to-be deletions of two IDs each, in both
// projects, runs the worker until they are done and stops it.
func purgeRequests(t *testing.T, e *testEnv, n int) map[string][]string {
	t.Helper()
	ctx := context.Background()
	reqs := map[string][]string{}
	for i := range n {
		ref := fmt.Sprintf("K-%03d", i)
		ids := []string{fmt.Sprintf("kill-%03d-a", i), fmt.Sprintf("kill-%03d-b", i)}
		reqs[ref] = ids
		if _, err := e.svc.Enqueue(ctx, Request{Reference: ref, Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: ids, Projects: []string{"us", "eu"}}); err != nil {
			t.Fatal(err)
		}
	}
	e.start()
	waitFor(t, "every request done", func() bool { total, ok := e.itemsIn(StateDone); return total == 2*n && ok })
	if err := e.svc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	return reqs
}

// checkPurgedWhole checks that every request was purged exactly once and
// whole: its row holds the keyed hashes in order, one ids_purged event, no
// create row holds a plain ID, and the record verifies.
func checkPurgedWhole(t *testing.T, e *testEnv, reqs map[string][]string) {
	t.Helper()
	ctx := context.Background()
	h, err := e.cfg.IDHasher(false)
	if err != nil {
		t.Fatal(err)
	}
	for ref, ids := range reqs {
		var enc string
		var purged *string
		if err := e.q.queryRow(ctx, `SELECT distinct_ids, ids_purged_at FROM mpgdpr_request WHERE reference = ?`, ref).Scan(&enc, &purged); err != nil {
			t.Fatal(err)
		}
		var got []string
		_ = json.Unmarshal([]byte(enc), &got)
		want := []string{h.Hash(ids[0]), h.Hash(ids[1])}
		if purged == nil || !slices.Equal(got, want) {
			t.Errorf("%s: purged at %v, IDs %d, not the keyed hashes", ref, purged, len(got))
		}
		if n := e.count(`SELECT COUNT(*) FROM mpgdpr_event WHERE reference = ? AND event = ?`, ref, workerdb.EventIDsPurged); n != 1 {
			t.Errorf("%s: %d ids_purged events", ref, n)
		}
	}
	if n := e.count(`SELECT COUNT(*) FROM mpgdpr_create WHERE distinct_ids LIKE '%kill-%' OR ids_purged_at IS NULL`); n != 0 {
		t.Errorf("%d create rows still plain", n)
	}
	verified(t, e, h)
}

// verified opens the env's database as a report does and checks that the
// record verifies, every row proven; the caller may read it further.
func verified(t *testing.T, e *testEnv, h *evidence.IDHasher) *evidence.DB {
	t.Helper()
	ctx := context.Background()
	d, err := evidence.OpenDB(ctx, e.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	v, err := d.Verify(ctx, nil, evidence.WithIDKey(h))
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK() || !v.Complete() {
		t.Errorf("verify:\n%s", v)
	}
	return d
}

// TestPurgeKilledResumes kills a purging process (testworker -purge) with
// SIGKILL at random moments, then lets the purge finish: every request is
// purged whole, once.
func TestPurgeKilledResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a purging process")
	}
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t, twoFakes(t))
		reqs := purgeRequests(t, e, 120)
		bin, err := buildOnce()
		if err != nil {
			t.Fatal(err)
		}
		config := filepath.Join(e.dir, "worker.toml")
		ctx := context.Background()
		kills, midway := 0, 0
		for kills < 40 {
			cmd := exec.Command(bin, "-config", config, "-db", e.url, "-purge")
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(out)
			finished := false
			for sc.Scan() {
				if sc.Text() == "ready" {
					break
				}
			}
			time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
			_ = cmd.Process.Kill()
			for sc.Scan() {
				finished = finished || strings.HasPrefix(sc.Text(), "purged ")
			}
			_ = cmd.Wait()
			if finished {
				break
			}
			kills++
			purged := e.count(`SELECT COUNT(*) FROM mpgdpr_request WHERE ids_purged_at IS NOT NULL`)
			if purged > 0 && purged < len(reqs) {
				midway++
			}
		}
		t.Logf("%d kills, %d of them mid-purge", kills, midway)
		res, err := e.svc.Purge(ctx, PurgeOlderThan(0))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("the last purge took %d requests", res.Requests)
		checkPurgedWhole(t, e, reqs)
	})
}

// TestPurgeConcurrent runs purges side by side (on Postgres, on connections
// of their own): together they purge every request once, and none fails.
func TestPurgeConcurrent(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t, twoFakes(t))
		reqs := purgeRequests(t, e, 60)
		var wg sync.WaitGroup
		results := make([]*PurgeResult, 3)
		errs := make([]error, 3)
		for i := range results {
			wg.Go(func() { results[i], errs[i] = e.svc.Purge(context.Background(), PurgeOlderThan(0)) })
		}
		wg.Wait()
		total := 0
		for i, r := range results {
			if errs[i] != nil {
				t.Fatalf("purge %d: %v", i, errs[i])
			}
			total += r.Requests
		}
		if total != len(reqs) {
			t.Errorf("the purges took %d requests together, want %d", total, len(reqs))
		}
		checkPurgedWhole(t, e, reqs)
	})
}
