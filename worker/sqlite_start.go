package worker

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/privacykit/mpgdpr/internal/safefile"
)

// claimSQLite makes this process the only worker on a SQLite database (a
// lock file beside it) and hands back to the queue every job a dead worker
// left running: with the lock held, no other process can be working them.
// Postgres has no such shortcut: there River rescues jobs left running
// after job_timeout plus a minute.
func claimSQLite(ctx context.Context, db database) (*os.File, int64, error) {
	var path string
	if err := db.queryRow(ctx, `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&path); err != nil {
		return nil, 0, fmt.Errorf("worker: sqlite database file: %w", err)
	}
	if path == "" {
		return nil, 0, nil // in memory: this process is the only one
	}
	lockPath := path + ".worker-lock"
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("worker: %w", err)
	}
	if err := safefile.TryLock(lock); err != nil {
		_ = lock.Close()
		switch {
		case errors.Is(err, safefile.ErrUnsupported):
			// No file locks on this system: run one worker per SQLite
			// database. Jobs a dead worker left running are then rescued
			// by River after job_timeout plus a minute, not requeued here.
			return nil, 0, nil
		case errors.Is(err, safefile.ErrLocked):
			return nil, 0, fmt.Errorf("worker: another worker is running on this SQLite database (%s is locked); use Postgres for several workers", lockPath)
		}
		return nil, 0, fmt.Errorf("worker: lock %s: %w", lockPath, err)
	}
	n, err := db.exec(ctx, `UPDATE river_job SET state = 'available', scheduled_at = datetime('now', 'subsec') WHERE state = 'running'`)
	if err != nil {
		_ = lock.Close()
		return nil, 0, fmt.Errorf("worker: requeue jobs of a stopped worker: %w", err)
	}
	return lock, n, nil
}
