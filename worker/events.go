package worker

import (
	"context"
	"database/sql"
	"time"

	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// Item states (mpgdpr_item.state). An item is one request in one project.
const (
	StateQueued  = "queued"  // stored, waiting to be batched
	StateBatched = "batched" // in a batch, not yet filed
	StateFiled   = "filed"   // every ID is covered by a task filed or named by a 409
	StateOpen    = "open"    // a covering task was seen in progress
	StateDone    = "done"    // every covering task succeeded (exports checked)
	StateFailed  = "failed"  // a covering task failed and the policy gave up, or Mixpanel refused it
	StateUnknown = "unknown" // a retrieval whose create's outcome is unknown: check, never re-filed silently
	// StateCancelled: a deletion cancelled (before filing, or by Mixpanel's
	// cancel while its task had not started).
	StateCancelled = "cancelled"
)

type event struct {
	At        time.Time
	Reference string
	Project   string
	ItemID    int64
	BatchID   int64
	TaskID    string
	Event     string
	Detail    string
}

// addEvent appends to the event log (which the database keeps append-only).
func addEvent(ctx context.Context, q querier, e event) error { return appendEvent(ctx, q, e, nil) }

// appendEvent is addEvent; fill, if given, completes e once the chain's
// head is locked (a seal reads its row then: see seal.go).
func appendEvent(ctx context.Context, q querier, e event, fill func(*event) error) error {
	if db, ok := q.(database); ok { // the hash chain needs a transaction (chain.go)
		return inTx(ctx, db, func(tx dbTx) error { return appendEvent(ctx, tx, e, fill) })
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	seq, hash, err := chainLink(ctx, q, &e, fill)
	if err != nil {
		return err
	}
	_, err = q.exec(ctx, `INSERT INTO mpgdpr_event (at, reference, project, item_id, batch_id, task_id, event, detail, chain_seq, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		workerdb.FormatTime(e.At), e.Reference, e.Project, nullID(e.ItemID), nullID(e.BatchID), e.TaskID, e.Event, e.Detail, seq, hash)
	return err
}

func nullID(id int64) any {
	if id == 0 {
		return sql.NullInt64{}
	}
	return id
}

// setItemState moves an item and logs the change, then settles its
// request's state (request_state.go) in the same transaction.
func (w *Worker[TTx]) setItemState(ctx context.Context, tx dbTx, it itemRef, state, ev, taskID, detail string) error {
	q := tx
	now := time.Now()
	if _, err := q.exec(ctx, `UPDATE mpgdpr_item SET state = ?, updated_at = ?, detail = ? WHERE id = ?`, state, workerdb.FormatTime(now), detail, it.ID); err != nil {
		return err
	}
	if err := sealItem(ctx, q, it.Project, it.ID); err != nil {
		return err
	}
	if err := addEvent(ctx, q, event{At: now, Reference: it.Reference, Project: it.Project, ItemID: it.ID, TaskID: taskID, Event: ev, Detail: detail}); err != nil {
		return err
	}
	return w.settleRequest(ctx, tx, it.Reference, it.Project, now)
}

type itemRef struct {
	ID        int64
	Reference string
	Project   string
}
