package worker

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/privacykit/mpgdpr/internal/safefile"
	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// Files beside a SQLite database (path + suffix), each created 0600:
// setupLockSuffix is held by every process while it opens the database
// and while it migrates it, so that any number of processes (a worker, an
// intake command, a status command) may start together on a new database;
// workerLockSuffix is held by the one running worker.
const (
	setupLockSuffix  = ".setup-lock"
	workerLockSuffix = ".worker-lock"
)

// sqliteBusyTimeout is how long a statement waits for another process's
// lock (busy_timeout), and how long OpenSQLiteFile retries an open that
// SQLite refused with SQLITE_BUSY without waiting.
const sqliteBusyTimeout = 10 * time.Second

// OpenSQLiteFile opens a SQLite database file as the worker wants it:
// WAL journal, a busy timeout, deleted content zeroed (secure_delete),
// transactions that take the write lock when they begin, and one
// connection (River's advice for SQLite). A missing
// file is created 0600, and a missing directory 0700, whatever the umask
// (SQLite gives the -wal and -shm files the database's mode); an existing
// file keeps its mode. Any number of processes may open and migrate one
// new database at once: each holds a lock file beside it (path +
// ".setup-lock") while it creates it, turns on WAL and migrates.
func OpenSQLiteFile(path string) (*sql.DB, error) {
	// secure_delete: deleted and overwritten content is zeroed, so that a
	// purged distinct ID leaves no trace in the file (purge.go).
	dsn := workerdb.SQLiteDSN(path, "_pragma=busy_timeout(10000)", "_pragma=journal_mode(WAL)", "_pragma=synchronous(FULL)", "_pragma=secure_delete(ON)", "_txlock=immediate")
	if path == ":memory:" {
		return openSQLite(path, dsn) // no file, one process
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("worker: open %s: %w", path, err)
	}
	unlock, err := lockSQLiteSetup(path)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Created here, not by SQLite, for its mode. O_EXCL: a file that
	// exists is never opened and closed here, for closing any descriptor
	// of a database drops the POSIX locks SQLite holds on it in this
	// process (and a connection of this process may hold them).
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		_ = f.Close()
		// A -wal, -shm or -journal beside a database that did not exist
		// belongs to one removed (and may still be in use by a process
		// working on that removed file): SQLite would take it for this
		// one's (an intake command then failed with a disk I/O error).
		// This database starts with its own.
		for _, suffix := range []string{"-wal", "-shm", "-journal"} {
			if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("worker: open %s: %w", path, err)
			}
		}
	case !errors.Is(err, os.ErrExist):
		return nil, fmt.Errorf("worker: open %s: %w", path, err)
	}
	return openSQLite(path, dsn)
}

// openSQLite opens dsn, trying again while SQLite refuses it with
// SQLITE_BUSY without waiting.
func openSQLite(path, dsn string) (*sql.DB, error) {
	// Turning WAL on (once, on a new database) upgrades a read lock to a
	// write lock, which SQLite refuses at once with SQLITE_BUSY, without
	// the busy timeout, while another connection holds one: every process
	// of ours does it under the setup lock, and an open refused so by
	// someone else's connection is tried again.
	deadline := time.Now().Add(sqliteBusyTimeout)
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("worker: open %s: %w", path, err)
		}
		db.SetMaxOpenConns(1)
		err = db.Ping()
		if err == nil {
			return db, nil
		}
		_ = db.Close()
		if !isSQLiteBusy(err) || time.Now().After(deadline) {
			return nil, fmt.Errorf("worker: open %s: %w", path, err)
		}
		time.Sleep(pause)
	}
}

func isSQLiteBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}

// sqliteLockPath names the lock file suffix beside the database at path,
// the same for every process whatever path it was given (relative, through
// a symbolic link, or as SQLite reports it once open).
func sqliteLockPath(path, suffix string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real + suffix, nil
	}
	// Not there yet: its directory's real path.
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(abs)) + suffix, nil
}

// lockSQLiteSetup waits for the setup lock of the database at path; the
// returned func releases it.
func lockSQLiteSetup(path string) (unlock func(), err error) {
	lockPath, err := sqliteLockPath(path, setupLockSuffix)
	if err != nil {
		return nil, fmt.Errorf("worker: open %s: %w", path, err)
	}
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	if err := safefile.Lock(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("worker: lock %s: %w", lockPath, err)
	}
	return func() { _ = f.Close() }, nil
}

// sqliteFile is the file of db's main database, "" in memory.
func sqliteFile(ctx context.Context, db database) (string, error) {
	var path string
	if err := db.queryRow(ctx, `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&path); err != nil {
		return "", fmt.Errorf("worker: sqlite database file: %w", err)
	}
	return path, nil
}

// withSessionLock is, on SQLite, the setup lock (the key is Postgres's):
// River's migrator runs a transaction per migration, so only a lock held
// across all of them keeps two processes from applying the same one.
func (s sqlDatabase) withSessionLock(ctx context.Context, _ int64, f func() error) error {
	path, err := sqliteFile(ctx, s)
	if err != nil {
		return err
	}
	if path == "" {
		return f() // in memory: this process is the only one
	}
	unlock, err := lockSQLiteSetup(path)
	if err != nil {
		return err
	}
	defer unlock()
	return f()
}

// startSQLite claims the database for this worker (claimSQLite) and
// starts watching its file; w.mu is held.
func (w *Worker[TTx]) startSQLite(ctx context.Context) error {
	lock, path, requeued, err := claimSQLite(ctx, w.db)
	if err != nil {
		return err
	}
	if requeued > 0 {
		w.log.Info("mpgdpr worker: jobs left running by a stopped worker requeued", "jobs", requeued)
	}
	w.lock = lock
	if path == "" {
		return nil
	}
	stop := make(chan struct{})
	replaced, err := w.watchSQLiteFile(path, stop)
	if err != nil {
		w.unlock()
		return err
	}
	w.stopWatch, w.replaced = stop, replaced
	return nil
}

// claimSQLite makes this process the only worker on a SQLite database (a
// lock file beside it) and hands back to the queue every job a dead worker
// left running: with the lock held, no other process can be working them.
// Postgres has no such shortcut: there River rescues jobs left running
// after job_timeout plus a minute.
// It returns the lock (nil where the system has none), the database's
// file ("" in memory) and how many jobs it requeued.
func claimSQLite(ctx context.Context, db database) (lock *os.File, path string, requeued int64, err error) {
	path, err = sqliteFile(ctx, db)
	if err != nil || path == "" {
		return nil, "", 0, err // in memory: this process is the only one
	}
	lockPath, err := sqliteLockPath(path, workerLockSuffix)
	if err != nil {
		return nil, "", 0, fmt.Errorf("worker: %w", err)
	}
	lock, err = os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, "", 0, fmt.Errorf("worker: %w", err)
	}
	if err := safefile.TryLock(lock); err != nil {
		_ = lock.Close()
		switch {
		case errors.Is(err, safefile.ErrUnsupported):
			// No file locks on this system: run one worker per SQLite
			// database. Jobs a dead worker left running are then rescued
			// by River after job_timeout plus a minute, not requeued here.
			return nil, path, 0, nil
		case errors.Is(err, safefile.ErrLocked):
			return nil, "", 0, fmt.Errorf("worker: another worker is running on this SQLite database (%s is locked); use Postgres for several workers", lockPath)
		}
		return nil, "", 0, fmt.Errorf("worker: lock %s: %w", lockPath, err)
	}
	n, err := db.exec(ctx, `UPDATE river_job SET state = 'available', scheduled_at = datetime('now', 'subsec') WHERE state = 'running'`)
	if err != nil {
		_ = lock.Close()
		return nil, "", 0, fmt.Errorf("worker: requeue jobs of a stopped worker: %w", err)
	}
	return lock, path, n, nil
}

// ErrDatabaseReplaced is what Run returns when the SQLite database file
// the worker works on was removed or replaced while it ran: the worker
// would go on with the old file, which nothing else reads or writes any
// more, while requests are stored in the new one. Start it again.
var ErrDatabaseReplaced = errors.New("worker: the SQLite database file was removed or replaced while the worker ran; start the worker again")

// watchSQLiteFileEvery is how often a SQLite worker checks that its
// database's path still names the file it works on.
var watchSQLiteFileEvery = 2 * time.Second

// watchSQLiteFile checks, until stop is closed, that path still names the
// file it named at the start; if not, it logs it and reports
// ErrDatabaseReplaced on the returned channel (once).
func (w *Worker[TTx]) watchSQLiteFile(path string, stop <-chan struct{}) (<-chan error, error) {
	was, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	replaced := make(chan error, 1)
	go func() {
		t := time.NewTicker(watchSQLiteFileEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if now, err := os.Stat(path); err == nil && os.SameFile(was, now) {
				continue
			}
			w.log.Error("mpgdpr worker: the SQLite database file was removed or replaced; stopping", "path", path)
			replaced <- ErrDatabaseReplaced
			return
		}
	}()
	return replaced, nil
}
