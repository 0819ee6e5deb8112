package evidence_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

// migrate gives a database the worker's schema and nothing else.
func migrate(t *testing.T, d workertest.Driver, dbURL string) {
	t.Helper()
	ctx := context.Background()
	if d == workertest.Postgres {
		pool, err := pgxpool.New(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		if _, err := worker.MigratePostgres(ctx, pool); err != nil {
			t.Fatal(err)
		}
		return
	}
	db, err := worker.OpenSQLiteFile(strings.TrimPrefix(dbURL, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := worker.MigrateSQLite(ctx, db); err != nil {
		t.Fatal(err)
	}
}

// check opens dbURL for evidence and runs Check.
func check(t *testing.T, dbURL string, allowEmpty bool) error {
	t.Helper()
	ctx := context.Background()
	db, err := evidence.OpenDB(ctx, dbURL)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer db.Close()
	return db.Check(ctx, allowEmpty)
}

// No report or verification passes on the wrong database: a missing one
// (never created by opening it), an empty file or database, another
// application's, the worker's schema with nothing in it (unless an empty
// record is accepted on purpose).
func TestCheckWrongOrEmptyDatabase(t *testing.T) {
	workertest.ForEachDriver(t, func(t *testing.T, d workertest.Driver) {
		ctx := context.Background()
		dir := t.TempDir()

		// Missing: an error naming it, and nothing created.
		missing := "sqlite:" + filepath.Join(dir, "missing.db")
		if d == workertest.Postgres {
			u, err := url.Parse(workertest.DatabaseURL(t, d, dir))
			if err != nil {
				t.Fatal(err)
			}
			u.User = url.UserPassword(u.User.Username(), "pw-must-not-show")
			u.Path = "/mpgdpr_no_such_database"
			missing = u.String()
		}
		db, err := evidence.OpenDB(ctx, missing)
		if err == nil {
			db.Close()
			t.Fatal("a missing database opened")
		}
		if strings.Contains(err.Error(), "pw-must-not-show") {
			t.Errorf("the error shows the password: %v", err)
		}
		if _, serr := os.Stat(filepath.Join(dir, "missing.db")); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("opening a missing SQLite database created it: %v", serr)
		}

		// Empty: a zero-byte file, or a new Postgres database.
		empty := workertest.DatabaseURL(t, d, t.TempDir())
		if d == workertest.SQLite {
			if err := os.WriteFile(strings.TrimPrefix(empty, "sqlite:"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := check(t, empty, true); !errors.Is(err, evidence.ErrNoWorkerSchema) {
			t.Errorf("empty database: %v", err)
		}

		// Another application's, even one with a table named like ours.
		other := workertest.DatabaseURL(t, d, t.TempDir())
		workertest.Exec(t, other, `CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)`, `INSERT INTO users VALUES (1, 'a@example.com')`,
			`CREATE TABLE mpgdpr_request (reference TEXT)`)
		err = check(t, other, true)
		if !errors.Is(err, evidence.ErrNoWorkerSchema) || !strings.Contains(err.Error(), "mpgdpr_event") || strings.Contains(err.Error(), "mpgdpr_request") {
			t.Errorf("another application's database: %v", err)
		}

		// The worker's schema, empty: refused unless allowed.
		fresh := workertest.DatabaseURL(t, d, t.TempDir())
		migrate(t, d, fresh)
		if err := check(t, fresh, false); !errors.Is(err, evidence.ErrEmptyRecord) {
			t.Errorf("empty worker database: %v", err)
		}
		if err := check(t, fresh, true); err != nil {
			t.Errorf("empty worker database, allowed: %v", err)
		}

		// One request stored (not yet taken in by a worker): a record.
		fake := mpgdprtest.NewServer()
		t.Cleanup(fake.Close)
		cfg, err := worker.LoadConfig(workertest.Config(t, t.TempDir(), map[string]*mpgdprtest.Server{"us": fake}))
		if err != nil {
			t.Fatal(err)
		}
		w, closeDB, err := worker.Open(ctx, cfg, fresh) // never started
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Enqueue(ctx, worker.Request{Reference: "C-1", Kind: worker.Deletion, ComplianceType: mpgdpr.GDPR,
			DistinctIDs: []string{"x"}, Projects: []string{"us"}}); err != nil {
			t.Fatal(err)
		}
		closeDB()
		if err := check(t, fresh, false); err != nil {
			t.Errorf("a database with a request: %v", err)
		}
	})
}
