package worker

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// Mixpanel's refusal quoting the create's distinct IDs (plainly, JSON- and
// Go-quoted) reaches neither the event log, nor the item's detail, nor the
// create's row in plain: each ID is replaced by the start of its keyed hash.
func TestCreateErrorQuotingIDsScrubbed(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		fakes := twoFakes(t)
		hostile := `{"error": "invalid distinct_ids: \"alice@example.com\", bob-2, bob; alice%40example.com was rejected"}`
		fakes["us"].InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateDeletion, Status: http.StatusBadRequest, Body: hostile})
		e := newEnv(t, fakes)
		ctx := context.Background()
		ids := []string{"alice@example.com", "bob-2", "bob"}
		if _, err := e.svc.Enqueue(ctx, Request{Reference: "H-1", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: ids, Projects: []string{"us"}}); err != nil {
			t.Fatal(err)
		}
		e.start()
		waitFor(t, "item failed", func() bool { n, ok := e.itemsIn(StateFailed); return n == 1 && ok })
		h, err := e.cfg.IDHasher(false)
		if err != nil {
			t.Fatal(err)
		}
		var details []string
		for _, q := range []string{`SELECT detail FROM mpgdpr_event`, `SELECT detail FROM mpgdpr_item`, `SELECT detail FROM mpgdpr_create`} {
			rows, err := e.q.query(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var d string
				if err := rows.Scan(&d); err != nil {
					t.Fatal(err)
				}
				details = append(details, q+": "+d)
			}
			rows.Close()
		}
		text := strings.Join(details, "\n")
		if !strings.Contains(text, "invalid distinct_ids") {
			t.Fatalf("Mixpanel's text was not recorded, the test proves nothing:\n%s", text)
		}
		for _, id := range ids {
			if strings.Contains(text, id) {
				t.Errorf("%q is in the log's details:\n%s", id, text)
			}
			if mark := "[ID " + h.Hash(id)[:16] + "…]"; !strings.Contains(text, mark) {
				t.Errorf("no mark for %q", id)
			}
		}
		for _, table := range []string{"mpgdpr_event", "mpgdpr_item", "mpgdpr_create"} {
			found := false
			for _, d := range details {
				found = found || strings.HasPrefix(d, "SELECT detail FROM "+table+": ") && strings.Contains(d, "invalid distinct_ids")
			}
			if !found {
				t.Errorf("%s holds no detail of the refusal", table)
			}
		}
		if strings.Contains(text, "alice%40example.com") {
			t.Errorf("an escaped ID is in the log")
		}
	})
}
