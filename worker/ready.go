package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/riverqueue/river/rivermigrate"
)

// ErrNotReady is what Ready's errors match: the database does not answer,
// a migration is missing, or (on a full worker) River is not running.
var ErrNotReady = errors.New("worker: not ready")

// Ready reports whether the worker can do its work now: the database
// answers, the worker's migrations and River's are all applied, and, on a
// full worker, River is started (an intake-only worker needs no River
// running: a full worker elsewhere works the jobs it enqueues). It is what
// a readiness probe asks; its error matches ErrNotReady and names no
// secret.
func (w *Worker[TTx]) Ready(ctx context.Context) error {
	var one int
	if err := w.db.queryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("%w: the database does not answer: %v", ErrNotReady, err)
	}
	var have int
	if err := w.db.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM mpgdpr_schema`).Scan(&have); err != nil {
		return fmt.Errorf("%w: the worker's schema cannot be read: %v", ErrNotReady, err)
	}
	if have != len(migrations) {
		return fmt.Errorf("%w: the database's schema is at version %d, this worker's at %d: run mpgdpr worker migrate", ErrNotReady, have, len(migrations))
	}
	m, err := rivermigrate.New(w.driver, nil)
	if err != nil {
		return fmt.Errorf("%w: river migrator: %v", ErrNotReady, err)
	}
	res, err := m.Validate(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: River's migrations cannot be read: %v", ErrNotReady, err)
	}
	if !res.OK {
		return fmt.Errorf("%w: River's migrations: %s", ErrNotReady, strings.Join(res.Messages, "; "))
	}
	if w.intakeOnly {
		return nil
	}
	w.mu.Lock()
	started := w.started
	w.mu.Unlock()
	if !started {
		return fmt.Errorf("%w: the worker is not started", ErrNotReady)
	}
	return nil
}
