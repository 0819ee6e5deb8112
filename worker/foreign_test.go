package worker

import (
	"context"
	"database/sql"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
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

func TestRequestInsertedByAnotherSystemSQLite(t *testing.T) {
	t.Parallel()
	testForeignInsert(t, newTestEnv, func(e *testEnv, args string) error {
		_, err := e.db.Exec(foreignInsertSQLite, args)
		return err
	})
}

func TestRequestInsertedByAnotherSystemPostgres(t *testing.T) {
	t.Parallel()
	testForeignInsert(t, newPGEnv, func(e *testEnv, args string) error {
		pool, err := pgxpool.New(context.Background(), e.url)
		if err != nil {
			return err
		}
		defer pool.Close()
		_, err = pool.Exec(context.Background(), foreignInsertPG, args)
		return err
	})
}

func testForeignInsert(t *testing.T, newEnv envMaker, insert func(*testEnv, string) error) {
	fakes := twoFakes(t)
	e := newEnv(t, fakes, "")
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
}

func rejections(t *testing.T, e *testEnv) []string {
	t.Helper()
	var out []string
	var err error
	scan := func(rows interface {
		Next() bool
		Scan(...any) error
	}) {
		for rows.Next() {
			var ref string
			if err = rows.Scan(&ref); err != nil {
				return
			}
			out = append(out, ref)
		}
	}
	const q = `SELECT reference FROM mpgdpr_event WHERE event = 'rejected' ORDER BY reference`
	if e.db != nil {
		var rows *sql.Rows
		if rows, err = e.db.Query(q); err == nil {
			scan(rows)
			rows.Close()
		}
	} else {
		pool, perr := pgxpool.New(context.Background(), e.url)
		if perr != nil {
			t.Fatal(perr)
		}
		defer pool.Close()
		rows, qerr := pool.Query(context.Background(), q)
		if qerr == nil {
			scan(rows)
			rows.Close()
		}
		err = qerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}
