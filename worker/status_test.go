package worker

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// Status counts polls, not tasks polled: one task polled again and again
// in a minute counts each time (it once showed 1, whatever the polls).
func TestStatusCountsPolls(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		fakes := twoFakes(t, mpgdprtest.WithSchedule(mpgdprtest.Manual()))
		e := newEnv(t, fakes)
		ctx := context.Background()
		if _, err := e.svc.Enqueue(ctx, Request{Reference: "P-1", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"ann"}, Projects: []string{"us"}}); err != nil {
			t.Fatal(err)
		}
		e.start()
		us := func() ProjectStatus {
			st, err := e.svc.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range st.Projects {
				if p.Name == "us" {
					return p
				}
			}
			t.Fatal("no project us")
			return ProjectStatus{}
		}
		waitFor(t, "five polls counted", func() bool { return us().PollsLastMinute >= 5 })
		ctxStop, cancel := context.WithCancel(ctx)
		cancel()
		_ = e.svc.Stop(ctxStop)
		p := us()
		if n := creates(fakes["us"], mpgdprtest.OpCheckDeletion); p.PollsLastMinute > n || p.OpenTasks != 1 || p.CreatesLastMinute != 1 {
			t.Errorf("status %+v; the fake saw %d polls", p, n)
		}
	})
}

// request status has one source for a task's status: an item's detail does
// not keep the status its task had when the item opened (it once said
// PENDING beside a task STAGING).
func TestRequestStatusOneTaskStatus(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		fakes := twoFakes(t, mpgdprtest.WithSchedule(mpgdprtest.Manual()))
		e := newEnv(t, fakes)
		ctx := context.Background()
		if _, err := e.svc.Enqueue(ctx, Request{Reference: "S-1", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"ann"}, Projects: []string{"us"}}); err != nil {
			t.Fatal(err)
		}
		e.start()
		item := func() ItemStatus {
			rs, err := e.svc.RequestStatus(ctx, "S-1")
			if err != nil || len(rs.Items) != 1 {
				t.Fatalf("%+v %v", rs, err)
			}
			return rs.Items[0]
		}
		waitFor(t, "item open", func() bool { return item().State == StateOpen })
		fake := fakes["us"]
		if err := fake.SetStatus(fake.Tasks()[0].ID, mpgdprtest.StatusStaging); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "task seen STAGING", func() bool { it := item(); return len(it.Tasks) == 1 && it.Tasks[0].Status == "STAGING" })
		it := item()
		if it.State != StateOpen || strings.Contains(it.Detail, "PENDING") || !strings.Contains(it.Detail, it.Tasks[0].TaskID) {
			t.Errorf("item %+v", it)
		}
	})
}

// The status types marshal with snake_case names, as every other JSON
// output of the CLI.
func TestStatusJSONNames(t *testing.T) {
	for _, v := range []any{
		Status{Projects: []ProjectStatus{{Name: "us", CreatesLastMinute: 1}}},
		RequestStatus{Items: []ItemStatus{{Tasks: []TaskStatus{{ExportSHA256: "x"}}, Events: []Event{{BatchID: 1}}}}},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var walk func(any)
		walk = func(x any) {
			switch x := x.(type) {
			case map[string]any:
				for k, v := range x {
					if k != strings.ToLower(k) {
						t.Errorf("JSON name %q is not snake_case", k)
					}
					if k != "items" || isObjectList(v) {
						walk(v)
					}
				}
			case []any:
				for _, v := range x {
					walk(v)
				}
			}
		}
		var m any
		_ = json.Unmarshal(b, &m)
		walk(m)
		if !strings.Contains(string(b), `"creates_last_minute":1`) && !strings.Contains(string(b), `"export_sha256":"x"`) {
			t.Errorf("%s", b)
		}
	}
}

// isObjectList tells RequestStatus's items (a list of objects) from
// ProjectStatus's items (counts by state, whose keys are data).
func isObjectList(v any) bool { _, ok := v.([]any); return ok }
