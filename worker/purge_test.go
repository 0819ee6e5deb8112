package worker

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/internal/pgtest"
	"github.com/privacykit/mpgdpr/worker/workerdb"
)

func TestPurge(t *testing.T) { forEachDriver(t, testPurge) }

// purgeRun is a finished run with one request still open: ended maps each
// ended request to its IDs; OPEN-1 (project "held", whose tasks never
// finish) keeps "purge-open" plain.
type purgeRun struct {
	e     *testEnv
	ended map[string][]string
	held  *mpgdprtest.Server
}

func newPurgeRun(t *testing.T, newEnv envMaker) *purgeRun {
	t.Helper()
	fakes := twoFakes(t)
	held := mpgdprtest.NewServer(mpgdprtest.WithAPISecret("secret-held"), mpgdprtest.WithSchedule(mpgdprtest.Manual()))
	t.Cleanup(held.Close)
	fakes["held"] = held
	e := newEnv(t, fakes)
	ctx := context.Background()
	r := &purgeRun{e: e, held: held, ended: map[string][]string{
		"DEL-1": {"purge-alice", "purge-bob"},
		"DEL-2": {"purge-carol"},
		"RET-1": {"purge-dave"},
		"EXT-1": {"purge-erin"},
	}}
	for _, req := range []Request{
		{Reference: "DEL-1", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: r.ended["DEL-1"], Projects: []string{"us", "eu"}},
		{Reference: "DEL-2", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: r.ended["DEL-2"], Projects: []string{"us"}},
		{Reference: "RET-1", Kind: Retrieval, ComplianceType: mpgdpr.GDPR, DistinctIDs: r.ended["RET-1"], Projects: []string{"us"}},
		{Reference: "OPEN-1", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"purge-open"}, Projects: []string{"held"}},
	} {
		if _, err := e.svc.Enqueue(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	insert := foreignInsertSQLite
	if e.pool != nil {
		insert = foreignInsertPG
	}
	if _, err := e.q.exec(ctx, insert, `{"reference":"EXT-1","kind":"deletion","compliance_type":"GDPR","distinct_ids":["purge-erin"],"projects":["eu"]}`); err != nil {
		t.Fatal(err)
	}
	e.start()
	waitFor(t, "the run to finish", func() bool {
		for ref := range r.ended {
			if !r.itemsIn(ref, StateDone) {
				return false
			}
		}
		return r.itemsIn("OPEN-1", StateFiled, StateOpen)
	})
	if err := e.svc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *purgeRun) itemsIn(ref string, states ...string) bool {
	rs, err := r.e.svc.RequestStatus(context.Background(), ref)
	if err != nil || len(rs.Items) == 0 {
		return false
	}
	for _, it := range rs.Items {
		if !slices.Contains(states, it.State) {
			return false
		}
	}
	return true
}

// rows is every row that may hold a distinct ID, as text.
func (r *purgeRun) rows(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT reference || ' ' || distinct_ids || ' ' || digest || ' ' || COALESCE(ids_purged_at, '-') FROM mpgdpr_request ORDER BY reference`,
		`SELECT distinct_ids || ' ' || conflict_ids || ' ' || COALESCE(ids_purged_at, '-') FROM mpgdpr_create ORDER BY id`,
		`SELECT ` + argsText(r.e) + ` FROM river_job ORDER BY id`,
	} {
		if err := collect(context.Background(), r.e.q, q, nil, func(s rowScanner) error {
			var v string
			err := s.Scan(&v)
			b.WriteString(v + "\n")
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// raw is the database as stored: the SQLite file and its WAL, or a
// pg_dump of the Postgres database.
func (r *purgeRun) raw(t *testing.T) []byte {
	t.Helper()
	if r.e.pool != nil {
		return pgtest.Dump(t, r.e.url)
	}
	path := strings.TrimPrefix(r.e.url, "sqlite:")
	var all []byte
	for _, p := range []string{path, path + "-wal", path + "-journal"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func testPurge(t *testing.T, newEnv envMaker) {
	r := newPurgeRun(t, newEnv)
	e, ctx := r.e, context.Background()
	h, err := e.cfg.IDHasher(false)
	if err != nil {
		t.Fatal(err)
	}
	raw := r.raw(t)
	if !bytes.Contains(raw, []byte("purge-alice")) || !bytes.Contains(raw, []byte("purge-open")) {
		t.Fatal("the raw database does not show the IDs before the purge: the scan below would prove nothing")
	}

	// The default retention (720h) keeps everything that just ended.
	res, err := e.svc.Purge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || res.Exports != 0 {
		t.Errorf("purge at the default retention changed %+v", res)
	}

	before := r.rows(t)
	dry, err := e.svc.Purge(ctx, PurgeOlderThan(0), PurgeExportsOlderThan(0), PurgeDryRun())
	if err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || dry.Requests != 4 || dry.IDs != 5 || dry.CreateRows == 0 || dry.Exports != 1 {
		t.Errorf("dry run: %+v", dry)
	}
	if after := r.rows(t); after != before {
		t.Errorf("a dry run changed the database:\nbefore %s\nafter  %s", before, after)
	}
	var export string
	if err := e.q.queryRow(ctx, `SELECT export_path FROM mpgdpr_task WHERE export_path <> ''`).Scan(&export); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(export); err != nil {
		t.Fatalf("a dry run touched the export: %v", err)
	}

	res, err = e.svc.Purge(ctx, PurgeOlderThan(0))
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 4 || res.IDs != 5 || res.CreateRows != dry.CreateRows || res.Exports != 0 {
		t.Errorf("purge: %+v (dry run said %+v)", res, dry)
	}
	again, err := e.svc.Purge(ctx, PurgeOlderThan(0))
	if err != nil {
		t.Fatal(err)
	}
	if again.Requests != 0 || again.CreateRows != 0 || again.RiverJobs != 0 {
		t.Errorf("a second purge changed %+v", again)
	}

	raw = r.raw(t)
	for ref, ids := range r.ended {
		for _, id := range ids {
			if bytes.Contains(raw, []byte(id)) {
				t.Errorf("%s's ID %s is still in the database after the purge", ref, id)
			}
			if !bytes.Contains(raw, []byte(h.Hash(id))) {
				t.Errorf("%s's ID %s: its keyed hash is not in the database", ref, id)
			}
		}
	}
	if !bytes.Contains(raw, []byte("purge-open")) {
		t.Error("the open request's ID was purged")
	}
	if n := e.count(`SELECT COUNT(*) FROM mpgdpr_request WHERE reference = 'OPEN-1' AND ids_purged_at IS NULL AND distinct_ids LIKE '%purge-open%'`); n != 1 {
		t.Error("OPEN-1 lost its plain IDs")
	}
	if n := e.count(`SELECT COUNT(*) FROM river_job WHERE ` + argsText(e) + ` LIKE '%purge-%'`); n != 0 {
		t.Errorf("River's jobs hold IDs: %d", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM mpgdpr_event WHERE event = ?`, workerdb.EventIDsPurged); n != 4 {
		t.Errorf("%d ids_purged events, want 4", n)
	}

	// The same request enqueued again after its purge is a duplicate.
	dup, err := e.svc.Enqueue(ctx, Request{Reference: "DEL-2", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"purge-carol"}, Projects: []string{"us"}})
	if err != nil || !dup.Duplicate {
		t.Errorf("DEL-2 again after its purge: %+v, %v", dup, err)
	}

	// Exports: deleted after their retention, with an event naming the
	// digest; a deletion killed after the rename is finished by the next.
	res, err = e.svc.Purge(ctx, PurgeExportsOlderThan(0))
	if err != nil {
		t.Fatal(err)
	}
	if res.Exports != 1 {
		t.Errorf("exports deleted: %d, want 1", res.Exports)
	}
	if _, err := os.Stat(export); !os.IsNotExist(err) {
		t.Errorf("the export is still there: %v", err)
	}
	var sha, detail string
	if err := e.q.queryRow(ctx, `SELECT export_sha256 FROM mpgdpr_task WHERE export_path = ?`, export).Scan(&sha); err != nil {
		t.Fatal(err)
	}
	if err := e.q.queryRow(ctx, `SELECT detail FROM mpgdpr_event WHERE event = ?`, workerdb.EventExportDeleted).Scan(&detail); err != nil {
		t.Fatal(err)
	}
	if len(sha) != 64 || !strings.Contains(detail, sha) {
		t.Errorf("export_deleted %q does not name the export's digest %s", detail, sha)
	}

	d := verified(t, e, h)
	seen := 0
	if err := d.Records(ctx, evidence.Filter{}, func(rec *evidence.Record) error {
		ids, ok := r.ended[rec.Reference]
		if !ok {
			return nil
		}
		seen++
		var want []string
		for _, id := range ids {
			want = append(want, h.Hash(id))
		}
		if got := slices.Sorted(slices.Values(rec.DistinctIDs)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			t.Errorf("report of %s shows %v, want the keyed hashes %v", rec.Reference, got, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if seen == 0 {
		t.Error("the report shows no purged request")
	}
}

func TestPurgeFinishesAnExportDeletion(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		r := newPurgeRun(t, newEnv)
		e, ctx := r.e, context.Background()
		var export string
		if err := e.q.queryRow(ctx, `SELECT export_path FROM mpgdpr_task WHERE export_path <> ''`).Scan(&export); err != nil {
			t.Fatal(err)
		}
		// A purge killed right after renaming the file.
		if err := os.Rename(export, export+deletingSuffix); err != nil {
			t.Fatal(err)
		}
		res, err := e.svc.Purge(ctx, PurgeExportsOlderThan(0))
		if err != nil {
			t.Fatal(err)
		}
		if res.Exports != 1 {
			t.Errorf("exports: %d, want 1", res.Exports)
		}
		for _, p := range []string{export, export + deletingSuffix} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("%s: %v", p, err)
			}
		}
		if n := e.count(`SELECT COUNT(*) FROM mpgdpr_event WHERE event = ?`, workerdb.EventExportDeleted); n != 1 {
			t.Errorf("%d export_deleted events", n)
		}
	})
}

// An ID that an ended request shares with a request still open in the same
// batch stays plain in the batch's create rows until that one ends too.
func TestPurgeKeepsAnIDAnOpenRequestShares(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t, twoFakes(t))
		ctx := context.Background()
		// A window long enough for both intakes to land in one batch, even
		// on a loaded machine.
		for i := range e.cfg.Projects {
			e.cfg.Projects[i].BatchWindow = Duration(3 * time.Second)
		}
		for ref, ids := range map[string][]string{"SH-A": {"shared-person", "a-only"}, "SH-B": {"shared-person"}} {
			if _, err := e.svc.Enqueue(ctx, Request{Reference: ref, Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: ids, Projects: []string{"us"}}); err != nil {
				t.Fatal(err)
			}
		}
		e.start()
		waitFor(t, "both done", func() bool { total, ok := e.itemsIn(StateDone); return total == 2 && ok })
		if err := e.svc.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if n := e.count(`SELECT COUNT(DISTINCT batch_id) FROM mpgdpr_item`); n != 1 {
			t.Fatalf("the two requests are in %d batches, want one", n)
		}
		h, err := e.cfg.IDHasher(false)
		if err != nil {
			t.Fatal(err)
		}
		creates := func() string {
			var all strings.Builder
			if err := collect(ctx, e.q, `SELECT distinct_ids || COALESCE(ids_purged_at, ' plain') FROM mpgdpr_create ORDER BY id`, nil, func(s rowScanner) error {
				var v string
				err := s.Scan(&v)
				all.WriteString(v)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return all.String()
		}
		// SH-B as if still open (set by hand: its task is done in fact).
		if _, err := e.q.exec(ctx, `UPDATE mpgdpr_item SET state = ? WHERE reference = 'SH-B'`, StateOpen); err != nil {
			t.Fatal(err)
		}
		res, err := e.svc.Purge(ctx, PurgeOlderThan(0))
		if err != nil {
			t.Fatal(err)
		}
		c := creates()
		if res.Requests != 1 || !strings.Contains(c, `"shared-person"`) || strings.Contains(c, "a-only") || !strings.Contains(c, h.Hash("a-only")) || !strings.HasSuffix(c, " plain") {
			t.Errorf("with SH-B open: %+v, creates %s", res, c)
		}
		if _, err := e.q.exec(ctx, `UPDATE mpgdpr_item SET state = ? WHERE reference = 'SH-B'`, StateDone); err != nil {
			t.Fatal(err)
		}
		if res, err = e.svc.Purge(ctx, PurgeOlderThan(0)); err != nil {
			t.Fatal(err)
		}
		c = creates()
		if res.Requests != 1 || strings.Contains(c, "shared-person") || !strings.Contains(c, h.Hash("shared-person")) || strings.Contains(c, " plain") {
			t.Errorf("with SH-B ended: %+v, creates %s", res, c)
		}
	})
}
