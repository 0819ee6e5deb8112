package evidence_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/workerdb"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

// tamperDB is one connection to a finished run's database, on which each
// edit runs in a transaction that is verified, then rolled back.
type tamperDB struct {
	t        *testing.T
	conn     *sql.DB
	ev       *evidence.DB
	ids      *evidence.IDHasher
	postgres bool
}

func openTamper(t *testing.T, fl *flow, postgres bool) *tamperDB {
	t.Helper()
	loc, err := workerdb.Resolve(fl.url, "")
	if err != nil {
		t.Fatal(err)
	}
	var conn *sql.DB
	if postgres {
		cfg, err := pgx.ParseConfig(loc.URL())
		if err != nil {
			t.Fatal(err)
		}
		conn = sql.OpenDB(keepTxConnector{stdlib.GetConnector(*cfg)})
	} else {
		conn, err = sql.Open("sqlite", "file:"+loc.Path+"?_pragma=busy_timeout(10000)")
	}
	if err != nil {
		t.Fatal(err)
	}
	// One connection: the verification reads the edit's transaction.
	conn.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = conn.Close() })
	return &tamperDB{t: t, conn: conn, ev: evidence.NewDB(conn, postgres), ids: fl.ids, postgres: postgres}
}

// keepTxConnector's connections stay in their transaction between calls
// (pgx's own reset discards a connection left in one).
type keepTxConnector struct{ driver.Connector }

func (c keepTxConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return keepTx{conn.(*stdlib.Conn)}, nil
}

type keepTx struct{ *stdlib.Conn }

func (keepTx) ResetSession(context.Context) error { return nil }

func (d *tamperDB) exec(q string) {
	d.t.Helper()
	if _, err := d.conn.Exec(q); err != nil {
		d.t.Fatalf("%s: %v", q, err)
	}
}

func (d *tamperDB) one(q string) string {
	d.t.Helper()
	var s string
	if err := d.conn.QueryRow(q).Scan(&s); err != nil {
		d.t.Fatalf("%s: %v", q, err)
	}
	return s
}

func (d *tamperDB) verify(opts ...evidence.VerifyOption) *evidence.Verification {
	d.t.Helper()
	v, err := d.ev.Verify(context.Background(), nil, append([]evidence.VerifyOption{evidence.WithIDKey(d.ids)}, opts...)...)
	if err != nil {
		d.t.Fatal(err)
	}
	return v
}

// try runs stmts in a transaction (after lifting the event log's
// append-only triggers and, to write ids, Postgres' identity columns, as an administrator
// could), verifies, rolls back, and returns the verification.
func (d *tamperDB) try(stmts ...string) *evidence.Verification {
	d.t.Helper()
	return d.tryThen(nil, stmts...)
}

// tryThen is try, calling then (if given) before the rollback.
func (d *tamperDB) tryThen(then func(), stmts ...string) *evidence.Verification {
	d.t.Helper()
	d.exec("BEGIN")
	defer d.exec("ROLLBACK")
	if d.postgres {
		d.exec(`DROP TRIGGER mpgdpr_event_no_change ON mpgdpr_event`)
		if explicit := strings.Join(stmts, " "); strings.Contains(explicit, "SET id") || strings.Contains(explicit, "(id,") {
			for _, tb := range []string{"mpgdpr_event", "mpgdpr_item"} {
				d.exec(`ALTER TABLE ` + tb + ` ALTER COLUMN id DROP IDENTITY`)
			}
		}
	} else {
		d.exec(`DROP TRIGGER mpgdpr_event_no_update`)
		d.exec(`DROP TRIGGER mpgdpr_event_no_delete`)
	}
	for _, s := range stmts {
		d.exec(s)
	}
	if then != nil {
		then()
	}
	return d.verify()
}

// swap exchanges the ids of two rows through a free id (unique keys are
// checked row by row).
func swap(table string, a, b string) []string {
	return []string{
		fmt.Sprintf(`UPDATE %s SET id = -7 WHERE id = %s`, table, a),
		fmt.Sprintf(`UPDATE %s SET id = %s WHERE id = %s`, table, a, b),
		fmt.Sprintf(`UPDATE %s SET id = %s WHERE id = -7`, table, b),
	}
}

func TestTamperEveryReportedColumn(t *testing.T) {
	workertest.ForEachDriver(t, func(t *testing.T, drv workertest.Driver) {
		postgres := drv == workertest.Postgres
		fl := runFlow(t, postgres)
		d := openTamper(t, fl, postgres)

		// The untouched record verifies, every row proven.
		if v := d.verify(); !v.OK() || !v.Complete() {
			t.Fatalf("untouched record:\n%s", v)
		}
		// Without the ID key, the rows naming people are not proven.
		if v, err := d.ev.Verify(context.Background(), nil); err != nil || !v.OK() || v.Complete() || !strings.Contains(v.String(), "UNVERIFIABLE mpgdpr_request") {
			t.Fatalf("without the ID key (%v):\n%s", err, v)
		}

		item := d.one(`SELECT ` + castText(postgres, "id") + ` FROM mpgdpr_item WHERE reference = 'DSR-4'`)
		other := d.one(`SELECT ` + castText(postgres, "MIN(id)") + ` FROM mpgdpr_item WHERE reference = 'DSR-1'`)
		task := d.one(`SELECT task_id FROM mpgdpr_item_task WHERE item_id = ` + item)
		done := d.one(`SELECT ` + castText(postgres, "id") + ` FROM mpgdpr_event WHERE item_id = ` + item + ` AND event = 'done'`)
		exported := d.one(`SELECT ` + castText(postgres, "id") + ` FROM mpgdpr_event WHERE task_id = '` + task + `' AND event = 'exported'`)
		anItem := "TAMPERED mpgdpr_item id " + item + " "
		theTask := fmt.Sprintf("TAMPERED mpgdpr_task project %q, task %q", "eu", task)
		theRequest := `TAMPERED mpgdpr_request reference "DSR-4"`
		euChain := "TAMPERED eu: "

		cases := []struct {
			name  string
			stmts []string
			want  []string
		}{
			// mpgdpr_request: every column a report shows.
			{"request.received_at", []string{`UPDATE mpgdpr_request SET received_at = '2026-01-01T00:00:00.000000Z' WHERE reference = 'DSR-4'`}, []string{theRequest}},
			{"request.distinct_ids", []string{`UPDATE mpgdpr_request SET distinct_ids = '["mallory"]' WHERE reference = 'DSR-4'`}, []string{theRequest}},
			{"request.kind", []string{`UPDATE mpgdpr_request SET kind = 'deletion' WHERE reference = 'DSR-4'`}, []string{theRequest}},
			{"request.compliance_type", []string{`UPDATE mpgdpr_request SET compliance_type = 'CCPA' WHERE reference = 'DSR-4'`}, []string{theRequest}},
			{"request.disclosure_type", []string{`UPDATE mpgdpr_request SET disclosure_type = 'x' WHERE reference = 'DSR-4'`}, []string{theRequest}},
			{"request.projects", []string{`UPDATE mpgdpr_request SET projects = '["us","eu"]' WHERE reference = 'DSR-4'`}, []string{theRequest}},
			{"request.ids_purged_at forged", []string{`UPDATE mpgdpr_request SET ids_purged_at = '2026-03-01T00:00:00.000000Z' WHERE reference = 'DSR-4'`}, []string{theRequest}},
			{"request.reference", []string{`UPDATE mpgdpr_request SET reference = 'DSR-9' WHERE reference = 'DSR-4'`},
				[]string{`TAMPERED mpgdpr_request reference "DSR-9"`, theRequest + ": sealed in the chain but no longer"}},
			{"request deleted", []string{`DELETE FROM mpgdpr_request WHERE reference = 'DSR-4'`}, []string{theRequest + ": sealed in the chain but no longer"}},
			{"request inserted", []string{`INSERT INTO mpgdpr_request (reference, kind, compliance_type, disclosure_type, distinct_ids, projects, digest, received_at, enqueued_at)
				SELECT 'DSR-X', kind, compliance_type, disclosure_type, distinct_ids, projects, digest, received_at, enqueued_at FROM mpgdpr_request WHERE reference = 'DSR-4'`},
				[]string{`TAMPERED mpgdpr_request reference "DSR-X": no seal`}},

			// mpgdpr_item.
			{"item.reference", []string{`UPDATE mpgdpr_item SET reference = 'DSR-3' WHERE id = ` + item}, []string{anItem}},
			{"item.project", []string{`UPDATE mpgdpr_item SET project = 'us' WHERE id = ` + item}, []string{anItem}},
			{"item.kind", []string{`UPDATE mpgdpr_item SET kind = 'deletion' WHERE id = ` + item}, []string{anItem}},
			{"item.compliance_type", []string{`UPDATE mpgdpr_item SET compliance_type = 'CCPA' WHERE id = ` + item}, []string{anItem}},
			{"item.disclosure_type", []string{`UPDATE mpgdpr_item SET disclosure_type = 'x' WHERE id = ` + item}, []string{anItem}},
			{"item.n_ids", []string{`UPDATE mpgdpr_item SET n_ids = 9 WHERE id = ` + item}, []string{anItem}},
			{"item.state", []string{`UPDATE mpgdpr_item SET state = 'failed' WHERE id = ` + item}, []string{anItem}},
			{"item.resubmits", []string{`UPDATE mpgdpr_item SET resubmits = 1 WHERE id = ` + item}, []string{anItem}},
			{"item deleted", []string{`DELETE FROM mpgdpr_item WHERE id = ` + item}, []string{"TAMPERED mpgdpr_item id " + item + ": sealed in the chain but no longer"}},
			{"item inserted", []string{`INSERT INTO mpgdpr_item (id, reference, project, kind, compliance_type, disclosure_type, n_ids, state, queued_at, updated_at)
				SELECT 999, reference, 'us', kind, compliance_type, disclosure_type, n_ids, state, queued_at, updated_at FROM mpgdpr_item WHERE id = ` + item},
				[]string{"TAMPERED mpgdpr_item id 999 "}},
			{"items reordered", swap("mpgdpr_item", item, other), []string{anItem, "TAMPERED mpgdpr_item id " + other + " "}},

			// mpgdpr_item_task, sealed with its item.
			{"link.task_id", []string{`UPDATE mpgdpr_item_task SET task_id = 'other' WHERE item_id = ` + item}, []string{anItem}},
			{"link.origin", []string{`UPDATE mpgdpr_item_task SET origin = 'conflict' WHERE item_id = ` + item}, []string{anItem}},
			{"link.linked_at", []string{`UPDATE mpgdpr_item_task SET linked_at = '2026-01-01T00:00:00.000000Z' WHERE item_id = ` + item}, []string{anItem}},
			{"link.round", []string{`UPDATE mpgdpr_item_task SET round = 5 WHERE item_id = ` + item}, []string{anItem}},
			{"link.project", []string{`UPDATE mpgdpr_item_task SET project = 'us' WHERE item_id = ` + item}, []string{anItem}},
			{"link.item_id", []string{`UPDATE mpgdpr_item_task SET item_id = ` + other + ` WHERE item_id = ` + item}, []string{anItem, "TAMPERED mpgdpr_item id " + other + " "}},
			{"link deleted", []string{`DELETE FROM mpgdpr_item_task WHERE item_id = ` + item}, []string{anItem}},
			{"link inserted", []string{`INSERT INTO mpgdpr_item_task (item_id, round, project, task_id, origin, linked_at) VALUES (` + item + `, 0, 'eu', 'forged', 'filed', '2026-01-31T10:00:00.000000Z')`}, []string{anItem}},

			// mpgdpr_task.
			{"task.export_sha256", []string{`UPDATE mpgdpr_task SET export_sha256 = '` + strings.Repeat("0", 64) + `' WHERE task_id = '` + task + `'`}, []string{theTask}},
			{"task.export_size", []string{`UPDATE mpgdpr_task SET export_size = 1 WHERE task_id = '` + task + `'`}, []string{theTask}},
			{"task.done_at", []string{`UPDATE mpgdpr_task SET done_at = '2026-01-31T09:00:01.000000Z' WHERE task_id = '` + task + `'`}, []string{theTask}},
			{"task.kind", []string{`UPDATE mpgdpr_task SET kind = 'deletion' WHERE task_id = '` + task + `'`}, []string{theTask}},
			{"task.origin", []string{`UPDATE mpgdpr_task SET origin = 'conflict' WHERE task_id = '` + task + `'`}, []string{theTask}},
			{"task.created_at", []string{`UPDATE mpgdpr_task SET created_at = '2026-01-01T00:00:00.000000Z' WHERE task_id = '` + task + `'`}, []string{theTask}},
			{"task.task_id", []string{`UPDATE mpgdpr_task SET task_id = 'renamed' WHERE task_id = '` + task + `'`},
				[]string{`TAMPERED mpgdpr_task project "eu", task "renamed"`, theTask + ": sealed in the chain but no longer"}},
			{"task deleted", []string{`DELETE FROM mpgdpr_task WHERE task_id = '` + task + `'`}, []string{theTask + ": sealed in the chain but no longer"}},
			{"task inserted", []string{`INSERT INTO mpgdpr_task (project, task_id, kind, origin, created_at) VALUES ('eu', 'forged', 'retrieval', 'filed', '2026-01-31T10:00:00.000000Z')`},
				[]string{`TAMPERED mpgdpr_task project "eu", task "forged": no seal`}},

			// mpgdpr_event: the chains.
			{"event.at", []string{`UPDATE mpgdpr_event SET at = '2026-02-01T00:00:00.000000Z' WHERE id = ` + done}, []string{euChain, "event id " + done + " "}},
			{"event.detail", []string{`UPDATE mpgdpr_event SET detail = 'x' WHERE id = ` + exported}, []string{euChain, "event id " + exported + " "}},
			{"event.event", []string{`UPDATE mpgdpr_event SET event = 'failed' WHERE id = ` + done}, []string{euChain, "event id " + done + " "}},
			{"event.item_id", []string{`UPDATE mpgdpr_event SET item_id = ` + other + ` WHERE id = ` + done}, []string{euChain, "event id " + done + " "}},
			{"event.task_id", []string{`UPDATE mpgdpr_event SET task_id = 'x' WHERE id = ` + exported}, []string{euChain, "event id " + exported + " "}},
			{"event deleted", []string{`DELETE FROM mpgdpr_event WHERE id = ` + done}, []string{euChain, "removed"}},
			{"event inserted without a hash", []string{`INSERT INTO mpgdpr_event (at, reference, project, item_id, event, detail) VALUES ('2026-01-31T09:00:00.000000Z', 'DSR-4', 'eu', ` + item + `, 'done', '')`},
				[]string{"TAMPERED mpgdpr_event id "}},
			{"event inserted without a hash, old id", []string{`INSERT INTO mpgdpr_event (id, at, reference, project, item_id, event, detail) VALUES (-3, '2026-01-31T09:00:00.000000Z', 'DSR-4', 'eu', ` + item + `, 'done', '')`},
				[]string{"TAMPERED mpgdpr_event ids up to"}},
			{"events reordered", swap("mpgdpr_event", done, exported), []string{euChain, "reordered"}},
		}
		for _, c := range cases {
			v := d.try(c.stmts...)
			out := v.String()
			if v.OK() {
				t.Errorf("%s: verify passed:\n%s", c.name, out)
				continue
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("%s: the verification does not say %q:\n%s", c.name, w, out)
				}
			}
		}
		testPurged(t, d)
		testBeforeSealing(t, d)
		// Every edit was rolled back: the record verifies again.
		if v := d.verify(); !v.OK() || !v.Complete() {
			t.Fatalf("after the edits:\n%s", v)
		}
	})
}

func castText(postgres bool, col string) string {
	if postgres {
		return col + "::text"
	}
	return "CAST(" + col + " AS TEXT)"
}

// testPurged simulates a purge as the worker's does it: the plain IDs of an
// ended request replaced, in every table, by their keyed hashes, and
// ids_purged_at set. The record still verifies and reports show the keyed
// hashes as they are; a purged row altered afterwards does not verify.
func testPurged(t *testing.T, d *tamperDB) {
	keyed := `'["` + d.ids.Hash("dave") + `"]'`
	at := `'2026-03-01T00:00:00.000000Z'`
	purge := []string{
		`UPDATE mpgdpr_request SET distinct_ids = ` + keyed + `, ids_purged_at = ` + at + ` WHERE reference = 'DSR-4'`,
		`UPDATE mpgdpr_create SET distinct_ids = ` + keyed + `, ids_purged_at = ` + at + ` WHERE distinct_ids = '["dave"]'`,
	}
	v := d.tryThen(func() {
		if n := d.one(`SELECT ` + castText(d.postgres, "COUNT(*)") + ` FROM mpgdpr_create WHERE ids_purged_at IS NOT NULL`); n != "1" {
			t.Errorf("purge: %s creates purged, want 1", n)
		}
		recs := collect(t, d.ev, evidence.Filter{Project: "eu"})
		var buf strings.Builder
		w := evidence.NewCSVWriter(&buf, d.ids)
		for _, r := range recs {
			if r.Reference == "DSR-4" && (!r.IDsKeyed || len(r.DistinctIDs) != 1 || r.DistinctIDs[0] != d.ids.Hash("dave")) {
				t.Errorf("purged record: keyed %v, IDs %v", r.IDsKeyed, r.DistinctIDs)
			}
			if err := w.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		_ = w.Close()
		if out := buf.String(); !strings.Contains(out, d.ids.Hash("dave")) || strings.Contains(out, d.ids.Hash(d.ids.Hash("dave"))) || strings.Contains(out, "dave") {
			t.Errorf("the report of a purged request shows its ID hashed once, as the purge left it:\n%s", out)
		}
	}, purge...)
	if !v.OK() || !v.Complete() {
		t.Errorf("after a purge:\n%s", v)
	}
	for name, edit := range map[string]string{
		"purged IDs replaced": `UPDATE mpgdpr_request SET distinct_ids = '["` + d.ids.Hash("mallory") + `"]' WHERE reference = 'DSR-4'`,
		"purge mark removed":  `UPDATE mpgdpr_request SET ids_purged_at = NULL WHERE reference = 'DSR-4'`,
	} {
		v := d.try(append(purge, edit)...)
		if v.OK() || !strings.Contains(v.String(), `TAMPERED mpgdpr_request reference "DSR-4"`) {
			t.Errorf("purged, then %s:\n%s", name, v)
		}
	}
}

// testBeforeSealing: a database written before schema version 4 has rows
// no seal covers. Verify says so (UNVERIFIABLE, written before version 4)
// and does not call the record complete, rather than passing it; rows of
// an upgraded database that no seal covers are reported the same way, and
// still fail `report verify`.
func testBeforeSealing(t *testing.T, d *tamperDB) {
	for name, c := range map[string]struct {
		stmts []string
		want  string
	}{
		"schema 3": {[]string{`DELETE FROM mpgdpr_schema WHERE version >= 4`}, "UNVERIFIABLE mpgdpr_item: 6 rows: written before schema version 4"},
		"upgraded": {[]string{`UPDATE mpgdpr_seal_start SET since_event = 100000, since_item = 100000`,
			`INSERT INTO mpgdpr_item (reference, project, kind, compliance_type, disclosure_type, n_ids, state, queued_at, updated_at)
				VALUES ('DSR-4', 'us', 'retrieval', 'GDPR', '', 1, 'done', '2026-01-31T09:00:00.000000Z', '2026-01-31T09:00:00.000000Z')`},
			"UNVERIFIABLE mpgdpr_item: 1 rows: written before schema version 4"},
	} {
		d.tryThen(func() {
			v, err := evidence.NewDB(d.conn, d.postgres).Verify(context.Background(), nil, evidence.WithIDKey(d.ids))
			if err != nil {
				t.Fatal(err)
			}
			if !v.OK() || v.Complete() || !strings.Contains(v.String(), c.want) {
				t.Errorf("%s: want %q, not complete:\n%s", name, c.want, v)
			}
		}, c.stmts...)
	}
}
