package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
)

var errNoLock = errors.New("no file locking here")

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
	lock, err := lockFile(path + ".worker-lock")
	if errors.Is(err, errNoLock) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("worker: %w", err)
	}
	n, err := db.exec(ctx, `UPDATE river_job SET state = 'available', scheduled_at = datetime('now', 'subsec') WHERE state = 'running'`)
	if err != nil {
		_ = lock.Close()
		return nil, 0, fmt.Errorf("worker: requeue jobs of a stopped worker: %w", err)
	}
	return lock, n, nil
}
