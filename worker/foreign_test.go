package worker

import (
	"context"
	"slices"
	"testing"

	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// What README.md tells another language to insert, as plain SQL.
const (
	foreignArgs         = `{"reference":"EXT-1","kind":"deletion","compliance_type":"GDPR","distinct_ids":["ext-user"],"all_projects":true,"received_at":"2026-11-30T09:15:00Z"}`
	foreignConflicting  = `{"reference":"EXT-1","kind":"deletion","compliance_type":"GDPR","distinct_ids":["someone-else"],"all_projects":true}`
	foreignInvalid      = `{"reference":"EXT-2","kind":"deletion","compliance_type":"HIPAA","distinct_ids":["x"],"all_projects":true}`
	foreignInsertSQLite = `INSERT INTO river_job (kind, queue, args, max_attempts) VALUES ('mpgdpr_request', 'mpgdpr_intake', jsonb(?), 10000)`
	foreignInsertPG     = `INSERT INTO river_job (kind, queue, args, max_attempts) VALUES ('mpgdpr_request', 'mpgdpr_intake', $1::jsonb, 10000)`
)

func TestRequestInsertedByAnotherSystem(t *testing.T) {
	forEachDriver(t, testForeignInsert)
}

func testForeignInsert(t *testing.T, newEnv envMaker) {
	fakes := twoFakes(t)
	e := newEnv(t, fakes)
	insert := func(e *testEnv, args string) error {
		q := foreignInsertSQLite
		if e.pool != nil {
			q = foreignInsertPG
		}
		_, err := e.q.exec(context.Background(), q, args)
		return err
	}
	for _, a := range []string{foreignArgs, foreignInvalid} {
		if err := insert(e, a); err != nil {
			t.Fatal(err)
		}
	}
	e.start()
	waitFor(t, "both items done", func() bool { total, ok := e.itemsIn(StateDone); return total == 2 && ok })
	// The same reference with other IDs, once the first is in: rejected.
	if err := insert(e, foreignConflicting); err != nil {
		t.Fatal(err)
	}
	for name, f := range fakes {
		if n := filedTimes(f, mpgdprtest.Deletion)["ext-user"]; n != 1 {
			t.Errorf("%s: filed %d times", name, n)
		}
		if n := filedTimes(f, mpgdprtest.Deletion)["someone-else"]; n != 0 {
			t.Errorf("%s: the conflicting request was filed", name)
		}
	}
	rs, err := e.svc.RequestStatus(context.Background(), "EXT-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := rs.ReceivedAt.Format("2006-01-02T15:04:05Z"); got != "2026-11-30T09:15:00Z" {
		t.Errorf("received at %s", got)
	}
	waitFor(t, "two rejections", func() bool { return len(rejections(t, e)) == 2 })
	if r := rejections(t, e); !slices.Contains(r, "EXT-1") || !slices.Contains(r, "EXT-2") {
		t.Errorf("rejected %v", r)
	}
	// Taken in, accepted or rejected, a job's args keep its reference only.
	for _, id := range []string{"ext-user", "someone-else", `"x"`} {
		if n := e.count(`SELECT COUNT(*) FROM river_job WHERE kind = 'mpgdpr_request' AND `+argsText(e)+` LIKE ?`, "%"+id+"%"); n != 0 {
			t.Errorf("river_job args still hold %s in %d jobs", id, n)
		}
	}
}

// argsText is river_job.args as text, whichever the driver.
func argsText(e *testEnv) string {
	if e.pool != nil {
		return "args::text"
	}
	return "json(args)"
}

func rejections(t *testing.T, e *testEnv) []string {
	t.Helper()
	rows, err := e.q.query(context.Background(), `SELECT reference FROM mpgdpr_event WHERE event = 'rejected' ORDER BY reference`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var ref string
		if err := rows.Scan(&ref); err != nil {
			t.Fatal(err)
		}
		out = append(out, ref)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
