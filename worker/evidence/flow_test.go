package evidence_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/internal/pgtest"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// flow is a worker run against two fakes: its database for evidence, and
// what each fake was sent.
type flow struct {
	fakes   map[string]*mpgdprtest.Server
	db      *evidence.DB
	raw     *sql.DB // for tampering
	secrets []string
	url     string             // the database: sqlite:PATH or postgres://
	ids     *evidence.IDHasher // the worker's ID key
}

// requests of the flow: deletions in both projects, a retrieval in eu.
var flowRequests = []worker.Request{
	{Reference: "DSR-1", Kind: worker.Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"alice@example.com"}, AllProjects: true},
	{Reference: "DSR-2", Kind: worker.Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"bob", "bob-2"}, AllProjects: true},
	{Reference: "DSR-3", Kind: worker.Deletion, ComplianceType: mpgdpr.CCPA, DistinctIDs: []string{"carol"}, Projects: []string{"us"}},
	{Reference: "DSR-4", Kind: worker.Retrieval, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"dave"}, Projects: []string{"eu"}},
}

// runFlow files flowRequests with a worker on SQLite or Postgres and waits
// until every item is done.
func runFlow(t *testing.T, postgres bool) *flow {
	t.Helper()
	ctx := context.Background()
	fakes := map[string]*mpgdprtest.Server{
		"us": mpgdprtest.NewServer(mpgdprtest.WithAPISecret("evidence-secret-us")),
		"eu": mpgdprtest.NewServer(mpgdprtest.WithAPISecret("evidence-secret-eu")),
	}
	for _, f := range fakes {
		t.Cleanup(f.Close)
	}
	dir := t.TempDir()
	fl := &flow{fakes: fakes}
	for _, f := range fakes {
		fl.secrets = append(fl.secrets, f.OAuthToken(), f.ProjectToken(), f.APISecret())
	}
	var enqueue func(worker.Request) error
	var status func() (*worker.Status, error)
	var stop func()
	if postgres {
		url := pgtest.URL(t)
		cfg, err := worker.LoadConfig(workertest.Config(t, dir, fakes, workertest.WithDatabase(url)))
		if err != nil {
			t.Fatal(err)
		}
		fl.url = url
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		w, err := worker.NewPostgres(ctx, pool, cfg, worker.WithRiverConfig(workertest.RiverConfig))
		if err != nil {
			t.Fatal(err)
		}
		if fl.ids, err = cfg.IDHasher(false); err != nil {
			t.Fatal(err)
		}
		enqueue = func(r worker.Request) error { _, err := w.Enqueue(ctx, r); return err }
		status = func() (*worker.Status, error) { return w.Status(ctx) }
		if err := w.Start(ctx); err != nil {
			t.Fatal(err)
		}
		stop = func() { _ = w.Stop(ctx) }
		fl.raw = stdlib.OpenDBFromPool(pool)
		fl.db = evidence.NewDB(fl.raw, true)
	} else {
		path := filepath.Join(dir, "worker.db")
		fl.url = "sqlite:" + path
		cfg, err := worker.LoadConfig(workertest.Config(t, dir, fakes, workertest.WithDatabase("sqlite:"+path)))
		if err != nil {
			t.Fatal(err)
		}
		db, err := worker.OpenSQLiteFile(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		w, err := worker.NewSQLite(ctx, db, cfg, worker.WithRiverConfig(workertest.RiverConfig))
		if err != nil {
			t.Fatal(err)
		}
		if fl.ids, err = cfg.IDHasher(false); err != nil {
			t.Fatal(err)
		}
		enqueue = func(r worker.Request) error { _, err := w.Enqueue(ctx, r); return err }
		status = func() (*worker.Status, error) { return w.Status(ctx) }
		if err := w.Start(ctx); err != nil {
			t.Fatal(err)
		}
		stop = func() { _ = w.Stop(ctx) }
		fl.raw = db
		if fl.db, err = evidence.OpenDB(ctx, "sqlite:"+path); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = fl.db.Close() })
	}
	for _, r := range flowRequests {
		r.ReceivedAt = time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC)
		if err := enqueue(r); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(90 * time.Second) // only stops a hung test
	for {
		st, err := status()
		if err != nil {
			t.Fatal(err)
		}
		done, total := 0, 0
		for _, p := range st.Projects {
			for s, n := range p.Items {
				total += n
				if s == worker.StateDone {
					done += n
				}
			}
		}
		if total == 6 && done == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %+v", st.Projects)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	return fl
}

func collect(t *testing.T, src evidence.Source, f evidence.Filter) []*evidence.Record {
	t.Helper()
	var recs []*evidence.Record
	pol := evidence.NewPolicy()
	if err := src.Records(context.Background(), f, func(r *evidence.Record) error {
		pol.Evaluate(r, time.Now())
		recs = append(recs, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return recs
}

// checkAgainstFakes: every record's tasks are tasks the fake of its project
// was sent, covering the record's IDs, and every ID sent is in a record.
func checkAgainstFakes(t *testing.T, fl *flow, recs []*evidence.Record) {
	t.Helper()
	if len(recs) != 6 {
		t.Fatalf("%d records, want 6 (DSR-1 and DSR-2 in two projects, DSR-3, DSR-4)", len(recs))
	}
	for _, r := range recs {
		f := fl.fakes[r.Project]
		if r.ReceivedAt != time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC) {
			t.Errorf("%s/%s received %v", r.Reference, r.Project, r.ReceivedAt)
		}
		if !r.Completed() || r.SourceState != worker.StateDone || len(r.Tasks) == 0 {
			t.Errorf("%s/%s: %+v", r.Reference, r.Project, r)
			continue
		}
		covered := map[string]bool{}
		for _, task := range r.Tasks {
			ft, ok := f.Task(task.TaskID)
			if !ok {
				t.Errorf("%s/%s: task %s was not filed with the %s fake", r.Reference, r.Project, task.TaskID, r.Project)
				continue
			}
			if ft.Status != "SUCCESS" || string(ft.Kind) != r.Kind || ft.ComplianceType != r.ComplianceType {
				t.Errorf("%s/%s: fake task %+v for record kind %s %s", r.Reference, r.Project, ft, r.Kind, r.ComplianceType)
			}
			for _, id := range ft.DistinctIDs {
				covered[id] = true
			}
			if task.FiledAt.IsZero() || task.FiledAt.Before(r.ReceivedAt) {
				t.Errorf("%s: filed at %v", task.TaskID, task.FiledAt)
			}
			if len(task.Statuses) == 0 || task.Statuses[len(task.Statuses)-1].Status != "SUCCESS" {
				t.Errorf("%s: statuses %+v", task.TaskID, task.Statuses)
			}
			if r.Kind == "retrieval" && (task.ExportBytes == 0 || len(task.ExportSHA256) != 64) {
				t.Errorf("%s: export %d bytes sha %q", task.TaskID, task.ExportBytes, task.ExportSHA256)
			}
		}
		for _, id := range r.DistinctIDs {
			if !covered[id] {
				t.Errorf("%s/%s: %s not in any of its tasks", r.Reference, r.Project, id)
			}
		}
		if r.Deadline.State != evidence.MetLate && r.Deadline.State != evidence.Met {
			t.Errorf("%s: state %s", r.Reference, r.Deadline.State)
		}
		if r.ChainHash == "" {
			t.Errorf("%s: no chain hash", r.Reference)
		}
	}
	// Everything the fakes were sent is in some record.
	for name, f := range fl.fakes {
		for _, ft := range f.Tasks() {
			for _, id := range ft.DistinctIDs {
				found := false
				for _, r := range recs {
					found = found || (r.Project == name && slices.Contains(r.DistinctIDs, id))
				}
				if !found {
					t.Errorf("%s: %s was sent but is in no record", name, id)
				}
			}
		}
	}
}

func testFlow(t *testing.T, postgres bool) {
	fl := runFlow(t, postgres)
	recs := collect(t, fl.db, evidence.Filter{})
	checkAgainstFakes(t, fl, recs)
	if got := collect(t, fl.db, evidence.Filter{Project: "us"}); len(got) != 3 {
		t.Errorf("project us: %d records", len(got))
	}
	if got := collect(t, fl.db, evidence.Filter{Since: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)}); len(got) != 0 {
		t.Errorf("since February: %d records", len(got))
	}

	// Reports hold no secret, and name the people only by hash when asked.
	h, _ := evidence.NewIDHasher([]byte("a key of at least sixteen bytes"))
	for _, format := range []string{"csv", "json", "html"} {
		for _, hasher := range []*evidence.IDHasher{nil, h} {
			var buf bytes.Buffer
			var w evidence.Writer
			switch format {
			case "csv":
				w = evidence.NewCSVWriter(&buf, hasher)
			case "json":
				w = evidence.NewJSONLWriter(&buf, hasher)
			default:
				w = evidence.NewHTMLWriter(&buf, evidence.HTMLOptions{Hasher: hasher, Now: time.Now()})
			}
			n, err := evidence.Generate(context.Background(), fl.db, nil, evidence.Filter{}, time.Now(), w)
			if err != nil || n != 6 {
				t.Fatalf("%s: %d records, %v", format, n, err)
			}
			out := buf.String()
			workertest.NoSecrets(t, format+" report", out, fl.secrets...)
			for _, id := range []string{"alice@example.com", "bob-2", "carol", "dave"} {
				if strings.Contains(out, id) != (hasher == nil) {
					t.Errorf("%s report, hashed %v: ID %s present %v", format, hasher != nil, id, !(hasher == nil))
				}
				if hasher != nil && !strings.Contains(out, h.Hash(id)) {
					t.Errorf("%s report: no hash of %s", format, id)
				}
			}
			if format == "csv" {
				rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
				if err != nil || len(rows) != 7 || !slices.Equal(rows[0], evidence.CSVColumns) {
					t.Errorf("csv: %d rows, %v", len(rows), err)
				}
			}
			if format == "json" {
				for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
					var j evidence.JSONRecord
					if err := json.Unmarshal([]byte(line), &j); err != nil || j.V != 1 || j.CompletedAt == nil {
						t.Errorf("json line %s: %v", line, err)
					}
				}
			}
		}
	}

	// The untouched log verifies.
	v, err := fl.db.Verify(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK() || v.Unverifiable() || len(v.Chains) != 3 {
		t.Fatalf("clean log: %s", v)
	}
	heads := v.Heads()
	tamperAndVerify(t, fl, postgres, heads)
}

// tamperAndVerify edits the log as someone with the database's admin rights
// could (dropping the append-only trigger) and checks Verify names it.
func tamperAndVerify(t *testing.T, fl *flow, postgres bool, heads []evidence.Head) {
	ctx := context.Background()
	exec := func(q string) {
		t.Helper()
		if _, err := fl.raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if postgres {
		exec(`DROP TRIGGER mpgdpr_event_no_change ON mpgdpr_event`)
	} else {
		exec(`DROP TRIGGER mpgdpr_event_no_update`)
		exec(`DROP TRIGGER mpgdpr_event_no_delete`)
	}
	var doneID, statusID int64
	if err := fl.raw.QueryRowContext(ctx, `SELECT MIN(id) FROM mpgdpr_event WHERE event = 'done' AND project = 'eu'`).Scan(&doneID); err != nil {
		t.Fatal(err)
	}
	// 1. A completion time moved earlier.
	exec(fmt.Sprintf(`UPDATE mpgdpr_event SET at = '2026-02-01T00:00:00.000000Z' WHERE id = %d`, doneID))
	v, err := fl.db.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := problemOf(v, "eu")
	if p == nil || p.Kind != evidence.Altered || p.Entry != doneID {
		t.Fatalf("edited event %d: %s", doneID, v)
	}
	if problemOf(v, "us") != nil {
		t.Errorf("the us chain reported too: %s", v)
	}
	// 2. An entry removed from the middle of the us chain.
	if err := fl.raw.QueryRowContext(ctx, `SELECT MIN(id) FROM mpgdpr_event WHERE event = 'status' AND project = 'us'`).Scan(&statusID); err != nil {
		t.Fatal(err)
	}
	var seq int64
	if err := fl.raw.QueryRowContext(ctx, fmt.Sprintf(`SELECT chain_seq FROM mpgdpr_event WHERE id = %d`, statusID)).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	exec(fmt.Sprintf(`DELETE FROM mpgdpr_event WHERE id = %d`, statusID))
	v, _ = fl.db.Verify(ctx, nil)
	if p := problemOf(v, "us"); p == nil || p.Kind != evidence.Removed || p.Seq != seq {
		t.Fatalf("removed event %d (seq %d): %s", statusID, seq, v)
	}
	// 3. The tail of the request chain cut, head row moved back with it:
	// only the trusted heads reveal it.
	var last int64
	if err := fl.raw.QueryRowContext(ctx, `SELECT MAX(chain_seq) FROM mpgdpr_event WHERE project = ''`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	exec(fmt.Sprintf(`DELETE FROM mpgdpr_event WHERE project = '' AND chain_seq = %d`, last))
	v, _ = fl.db.Verify(ctx, nil)
	if p := problemOf(v, ""); p == nil || p.Kind != evidence.Removed {
		t.Fatalf("cut tail against the recorded head: %s", v)
	}
	exec(fmt.Sprintf(`UPDATE mpgdpr_chain SET seq = %d, head = (SELECT hash FROM mpgdpr_event WHERE project = '' AND chain_seq = %d) WHERE chain = ''`, last-1, last-1))
	v, _ = fl.db.Verify(ctx, nil)
	if p := problemOf(v, ""); p != nil {
		t.Fatalf("a consistent rewrite is not detectable without a trusted head, yet: %s", v)
	}
	v, _ = fl.db.Verify(ctx, heads)
	if p := problemOf(v, ""); p == nil || p.Kind != evidence.Removed {
		t.Fatalf("cut tail against the trusted head: %s", v)
	}
}

func problemOf(v *evidence.Verification, chain string) *evidence.Problem {
	for _, c := range v.Chains {
		if c.Chain == chain {
			return c.Problem
		}
	}
	return nil
}

func TestWorkerFlow(t *testing.T) {
	workertest.ForEachDriver(t, func(t *testing.T, d workertest.Driver) { testFlow(t, d == workertest.Postgres) })
}
