package evidence_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

// A request cancelled before filing is reported ended (cancelled), not
// done and not open; an extension given at intake reaches the report
// through the chained log; and the log still verifies.
func TestCancelledAndExtendedInReport(t *testing.T) {
	workertest.ForEachDriver(t, func(t *testing.T, d workertest.Driver) {
		ctx := context.Background()
		f := mpgdprtest.NewServer(mpgdprtest.WithAPISecret("evidence-cancel-secret"))
		t.Cleanup(f.Close)
		dir := t.TempDir()
		url := workertest.DatabaseURL(t, d, dir)
		cfg, err := worker.LoadConfig(workertest.Config(t, dir, map[string]*mpgdprtest.Server{"us": f},
			workertest.WithDatabase(url), workertest.With("batch_window", `"1h"`)))
		if err != nil {
			t.Fatal(err)
		}
		svc, closeDB, err := worker.Open(ctx, cfg, "", worker.WithRiverConfig(workertest.RiverConfig))
		if err != nil {
			t.Fatal(err)
		}
		defer closeDB()
		received := time.Now().Add(-24 * time.Hour).UTC()
		cancelled := worker.Request{Reference: "CX-1", Kind: worker.Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"erin"}, Projects: []string{"us"}, ReceivedAt: received}
		extended := worker.Request{Reference: "EX-1", Kind: worker.Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"frank"}, Projects: []string{"us"}, ReceivedAt: received,
			Extension: &worker.Extension{Reason: "many systems to search", NoticeAt: received.Add(time.Hour)}}
		for _, r := range []worker.Request{cancelled, extended} {
			if _, err := svc.Enqueue(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if err := svc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			rs, err := svc.RequestStatus(ctx, "CX-1")
			if err != nil {
				t.Fatal(err)
			}
			if rs.State == worker.RequestActive {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the items were never made")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if res, err := svc.Cancel(ctx, "CX-1"); err != nil || res.Items[0].Outcome != worker.CancelCancelled {
			t.Fatalf("%+v %v", res, err)
		}
		_ = svc.Stop(ctx)

		db, err := evidence.OpenDB(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		byRef := map[string]*evidence.Record{}
		pol := evidence.NewPolicy()
		for _, r := range collect(t, db, evidence.Filter{}) {
			pol.Evaluate(r, time.Now())
			byRef[r.Reference] = r
		}
		cx, ex := byRef["CX-1"], byRef["EX-1"]
		if cx == nil || ex == nil {
			t.Fatalf("records %v", byRef)
		}
		if !cx.Cancelled() || cx.Completed() || !cx.Ended() || cx.SourceState != worker.StateCancelled || evidence.Outcome(cx) != evidence.OutcomeCancelled || cx.Deadline.State != evidence.Met {
			t.Errorf("cancelled record %+v", cx)
		}
		if ex.Extension == nil || ex.Extension.Reason != "many systems to search" || !ex.Deadline.Extended {
			t.Errorf("extended record %+v", ex)
		}
		if open := (evidence.Filter{State: "open"}); open.Match(cx) || !open.Match(ex) {
			t.Error("open filter: a cancelled request is not open; the extended one is")
		}
		var buf bytes.Buffer
		if _, err := evidence.Generate(ctx, db, nil, evidence.Filter{}, time.Now(), evidence.NewHTMLWriter(&buf, evidence.HTMLOptions{Now: time.Now()})); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), `"state":"cancelled"`) {
			t.Error("the HTML report does not show the cancelled request as cancelled")
		}
		buf.Reset()
		if _, err := evidence.Generate(ctx, db, nil, evidence.Filter{}, time.Now(), evidence.NewCSVWriter(&buf, nil)); err != nil || !strings.Contains(buf.String(), "many systems to search") {
			t.Errorf("csv: %v\n%s", err, buf.String())
		}
		v, err := db.Verify(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !v.OK() || v.Unverifiable() {
			t.Errorf("verify: %s", v)
		}
	})
}
