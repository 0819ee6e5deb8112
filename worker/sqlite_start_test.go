package worker

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// One worker per SQLite database: a second one (another process would do
// the same) is refused while the first runs, and may start once it stopped.
// SQLite only: Postgres takes several workers.
func TestSecondSQLiteWorkerRefused(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, twoFakes(t))
	e.start()
	db, err := OpenSQLiteFile(filepath.Join(e.dir, "worker.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	w2, err := NewSQLite(ctx, db, e.cfg, WithRiverConfig(testRiverConfig), WithClientOptions(mpgdpr.WithRetryPolicy(mpgdpr.NoRetries())))
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Start(ctx); err == nil || !strings.Contains(err.Error(), "another worker is running on this SQLite database") {
		t.Fatalf("second worker started: %v", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.svc.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	if err := w2.Start(ctx); err != nil {
		t.Fatalf("after the first stopped: %v", err)
	}
	if err := w2.Stop(sctx); err != nil {
		t.Fatal(err)
	}
}

// Every file the worker creates for a SQLite database (and the database's
// directory, when it creates it) is readable by its owner only, under the
// usual umask 022 (SQLite's own default is 0644). The CLI's concurrent
// start test checks the same under umask 000.
func TestSQLiteFileModes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg, err := LoadConfig(testConfig(t, dir, twoFakes(t)))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "state", "sub", "worker.db")
	db, err := OpenSQLiteFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	w, err := NewSQLite(ctx, db, cfg, testOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop(ctx) }()
	if _, err := w.Enqueue(ctx, Request{Reference: "M-1", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"user-1"}, AllProjects: true}); err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{
		filepath.Join(dir, "state"):        0o700,
		filepath.Join(dir, "state", "sub"): 0o700,
		path:                               0o600,
		path + "-wal":                      0o600,
		path + "-shm":                      0o600,
		path + setupLockSuffix:             0o600,
		path + workerLockSuffix:            0o600,
	}
	for p, mode := range want {
		fi, err := os.Stat(p)
		if err != nil {
			t.Error(err)
			continue
		}
		if got := fi.Mode().Perm(); got != mode {
			t.Errorf("%s: mode %#o, want %#o", filepath.Base(p), got, mode)
		}
	}
}

// A SQLite database removed or replaced under a running worker: the
// worker stops and says so (it once went on for good with the removed
// file, 0 queued, while requests went to the new one); the new database
// opens and migrates (the CLI's TestDatabaseReplaced checks, across
// processes, that it does not take the old one's -wal and -shm for its
// own).
func TestSQLiteDatabaseReplaced(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, twoFakes(t))
	path := filepath.Join(e.dir, "worker.db")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- e.svc.Run(ctx, 10*time.Second) }()
	waitFor(t, "the worker started", func() bool {
		e.w.mu.Lock()
		defer e.w.mu.Unlock()
		return e.w.started
	})

	// Replaced as a restore from a backup would: the old file moved away,
	// its -wal and -shm left under their names.
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	db2, err := OpenSQLiteFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if _, err := MigrateSQLite(ctx, db2); err != nil {
		t.Fatalf("the new database: %v", err)
	}
	select {
	case err := <-ran:
		if !errors.Is(err, ErrDatabaseReplaced) {
			t.Fatalf("Run = %v, want ErrDatabaseReplaced", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the worker went on with the replaced database")
	}
	var n int
	if err := db2.QueryRow(`SELECT COUNT(*) FROM mpgdpr_schema`).Scan(&n); err != nil || n != len(migrations) {
		t.Errorf("the new database: %d migrations, %v", n, err)
	}
}

// A database whose path holds what a file: URI reads as syntax ('#', '?',
// '%') is opened where it is, by the worker and by the evidence reader
// alike (workerdb.SQLiteDSN): unescaped, "a#b" was opened as "a".
func TestOpenSQLiteFileOddPath(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	path := filepath.Join(parent, "a#b?c%41 d", "worker.db")
	db, err := OpenSQLiteFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := MigrateSQLite(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(parent)
	if err != nil || len(entries) != 1 || entries[0].Name() != "a#b?c%41 d" {
		t.Errorf("files made beside the database's directory: %v %v", entries, err)
	}
	var got string
	if err := db.QueryRow(`SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&got); err != nil || got != path {
		t.Errorf("SQLite opened %q, want %q (%v)", got, path, err)
	}
}

// Turning WAL on upgrades a read lock to a write lock, which SQLite
// refuses at once (SQLITE_BUSY, the busy timeout not honoured) while
// another connection, one that does not take the setup lock (an older
// worker, the sqlite3 shell), is writing: OpenSQLiteFile tries again
// until that writer is done, instead of failing ("database is locked" on
// open).
func TestOpenSQLiteFileWhileAnotherWrites(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "worker.db")
	other, err := sql.Open("sqlite", workerdb.SQLiteDSN(path)) // rollback journal, no setup lock
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetMaxOpenConns(1)
	ctx := context.Background()
	if _, err := other.ExecContext(ctx, `CREATE TABLE t (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	tx, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO t VALUES (1)`); err != nil { // holds RESERVED
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = tx.Commit()
	}()
	db, err := OpenSQLiteFile(path)
	if err != nil {
		t.Fatalf("open beside a writer: %v", err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q, %v", mode, err)
	}
}

// ":memory:" is a database of this process alone: no file, no lock file.
func TestOpenSQLiteFileInMemory(t *testing.T) {
	before, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	db, err := OpenSQLiteFile(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := MigrateSQLite(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	if after, err := os.ReadDir("."); err != nil || len(after) != len(before) {
		t.Errorf("files made in the current directory: %d before, %d after (%v)", len(before), len(after), err)
	}
}
