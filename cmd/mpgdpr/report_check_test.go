package main

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

// An auditor pointed at the wrong database is told so: report and verify
// fail on a missing database (and create none), an empty one, another
// application's and the worker's with nothing in it, unless --allow-empty
// accepts an empty record; both say on stderr which database they read
// (a Postgres password hidden), and stdout stays the report's.
func TestReportWrongOrEmptyDatabase(t *testing.T) {
	workertest.ForEachDriver(t, func(t *testing.T, d workertest.Driver) {
		srv := newFake(t)
		// A database URL of d, with a password on Postgres (the test
		// cluster trusts loopback, so any password is accepted).
		newDB := func() (dbURL, shown string) {
			dir := t.TempDir()
			dbURL = workertest.DatabaseURL(t, d, dir)
			if d == workertest.SQLite {
				return dbURL, dbURL
			}
			u, err := url.Parse(dbURL)
			if err != nil {
				t.Fatal(err)
			}
			u.User = url.UserPassword(u.User.Username(), "pw-must-not-show")
			return u.String(), strings.Replace(u.String(), "pw-must-not-show", "REDACTED", 1)
		}
		// workerDB opens dbURL as the worker does (its schema made) and
		// stores the requests refs.
		// workerDB enqueues refs into dbURL through a worker configured in
		// a new directory, and returns that directory (where the worker
		// keeps its ID key, mpgdpr-worker.idkey).
		workerDB := func(dbURL string, refs ...string) string {
			dir := t.TempDir()
			enqueueIn(t, workertest.Config(t, dir, map[string]*mpgdprtest.Server{"web": srv}), dbURL, refs...)
			return dir
		}
		// refused runs report and verify on dbURL and wants both to fail
		// with a message holding want, naming the database.
		refused := func(what, dbURL, shown, want string, extra ...string) {
			t.Helper()
			for _, args := range [][]string{{"report", "--format", "csv"}, {"report", "verify"}, {"report", "--format", "html"}} {
				r := runCmd(t, nil, "", append(append(args, "--database", dbURL), extra...)...)
				if r.code != exitLocal || r.stdout != "" || !strings.Contains(r.stderr, want) ||
					!strings.Contains(r.stderr, "reading the worker's database "+shown+"\n") {
					t.Errorf("%s, %v: want exit 1, no output, %q and the database named on stderr; got %v", what, args, want, r)
				}
				if strings.Contains(r.stderr, "pw-must-not-show") {
					t.Errorf("%s, %v: the password shows: %s", what, args, r.stderr)
				}
			}
		}

		// Missing: for SQLite, a file that is not there, and is still not
		// there afterwards; for Postgres, a database that does not exist.
		missing, shown := newDB()
		if d == workertest.SQLite {
			refused("missing file", missing, shown, "does not exist")
			if _, err := os.Stat(strings.TrimPrefix(missing, "sqlite:")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("report created the missing database: %v", err)
			}
		} else {
			u, _ := url.Parse(missing)
			u.Path = "/mpgdpr_no_such_database"
			refused("missing database", u.String(), strings.Replace(u.String(), "pw-must-not-show", "REDACTED", 1), "cannot reach the database")
		}

		// An empty file (a new, empty Postgres database).
		empty, shown := newDB()
		if d == workertest.SQLite {
			if err := os.WriteFile(strings.TrimPrefix(empty, "sqlite:"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		refused("empty database", empty, shown, "is not a worker's database", "--allow-empty")

		// A file that is not a database at all.
		if d == workertest.SQLite {
			notDB, shown := newDB()
			if err := os.WriteFile(strings.TrimPrefix(notDB, "sqlite:"), []byte("reference,project\nR-1,web\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			refused("a CSV file", notDB, shown, "not a database", "--allow-empty")
		}

		// Another application's database.
		other, shown := newDB()
		workertest.Exec(t, other, `CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)`, `INSERT INTO users VALUES (1, 'a@example.com')`)
		refused("another application's database", other, shown, "is not a worker's database: no table mpgdpr_request")

		// The worker's schema, empty: refused, unless --allow-empty.
		fresh, shown := newDB()
		workerDB(fresh)
		refused("empty worker database", fresh, shown, "holds no request and no event")
		r := runCmd(t, nil, "", "report", "--database", fresh, "--format", "csv", "--allow-empty")
		if r.code != exitOK || strings.Count(r.stdout, "\n") != 1 || !strings.HasPrefix(r.stdout, "reference,") || !strings.Contains(r.stderr, shown) {
			t.Errorf("report --allow-empty of an empty record: %v", r)
		}
		if r := runCmd(t, nil, "", "report", "verify", "--database", fresh, "--allow-empty"); r.code != exitOK {
			t.Errorf("verify --allow-empty of an empty record: %v", r)
		}

		// With a request: the report has it, and says where it read it.
		keyDir := workerDB(fresh, "R-1")
		r = runCmd(t, nil, "", "report", "--database", fresh, "--format", "csv")
		if r.code != exitOK || strings.Count(r.stdout, "\n") != 2 || strings.Contains(r.stdout, "reading") || !strings.Contains(r.stderr, shown) {
			t.Errorf("report of one request: %v", r)
		}
		// Verify proves the request's row with the worker's ID key.
		if r := runCmd(t, nil, "", "report", "verify", "--database", fresh, "--hash-ids", filepath.Join(keyDir, "mpgdpr-worker.idkey")); r.code != exitOK || !strings.Contains(r.stderr, shown) {
			t.Errorf("verify of one request: %v", r)
		}
	})
}

// The database a relative path names is shown resolved, from --config's
// directory as the worker resolves it.
func TestReportNamesTheDatabaseRead(t *testing.T) {
	dir := t.TempDir()
	cfgPath := workertest.Config(t, dir, map[string]*mpgdprtest.Server{"web": newFake(t)}, workertest.WithDatabase("sqlite:worker.db"))
	t.Chdir(t.TempDir())
	r := runCmd(t, nil, "", "report", "verify", "--config", cfgPath)
	want := "reading the worker's database sqlite:" + filepath.Join(dir, "worker.db") + "\n"
	if r.code != exitLocal || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("want %q and exit 1: %v", want, r)
	}
}

// enqueueIn opens the worker's database as the worker does (its schema
// made): url, or the one cfgPath's configuration names when url is empty;
// and stores a GDPR deletion in project "web" per reference.
func enqueueIn(t *testing.T, cfgPath, url string, refs ...string) {
	t.Helper()
	ctx := context.Background()
	cfg, err := worker.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	svc, closeDB, err := worker.Open(ctx, cfg, url)
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB()
	for _, ref := range refs {
		if _, err := svc.Enqueue(ctx, worker.Request{Reference: ref, Kind: worker.Deletion, ComplianceType: mpgdpr.GDPR,
			DistinctIDs: []string{"id-" + ref}, Projects: []string{"web"}}); err != nil {
			t.Fatal(err)
		}
	}
}
