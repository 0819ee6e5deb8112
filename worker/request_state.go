package worker

import (
	"context"
	"time"

	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// A request's own state, in mpgdpr_request.state, derived from its items'
// (the item states StateDone, StateFailed, StateUnknown and StateCancelled
// are also a request's final states). It is kept in the row so that
// requests can be listed by state with keyset paging; settleRequest
// recomputes it in the transaction of every item change.
const (
	// RequestReceived: stored; its per-project items are not made yet.
	RequestReceived = "received"
	// RequestActive: some item has not ended.
	RequestActive = "active"
)

// RequestStates lists every request state, in the order of a request's life.
var RequestStates = []string{RequestReceived, RequestActive, StateDone, StateFailed, StateUnknown, StateCancelled}

// requestState is the state of a request whose items count so by state.
// Among ended items, what needs a person's attention wins: unknown, then
// failed, then cancelled, then done.
func requestState(counts map[string]int) string {
	total := 0
	for s, n := range counts {
		total += n
		if n > 0 && !isFinal(s) {
			return RequestActive
		}
	}
	switch {
	case total == 0:
		return RequestReceived
	case counts[StateUnknown] > 0:
		return StateUnknown
	case counts[StateFailed] > 0:
		return StateFailed
	case counts[StateCancelled] > 0:
		return StateCancelled
	}
	return StateDone
}

// requestChange is one item's change and what it made of its request's
// state, for callbacks (callback.go).
type requestChange struct {
	Reference string
	Project   string // the item that changed; empty for a request-wide change
	ItemState string
	Old, New  string // the request's state before and after
	At        time.Time
}

// settleRequest recomputes ref's state after a change to one of its items
// (project, or "" when the items were just made), stores it (and, when it
// becomes final, its completion time), and hands the change to
// requestChanged, all in tx.
func (w *Worker[TTx]) settleRequest(ctx context.Context, tx dbTx, ref, project string, now time.Time) error {
	var old string
	if err := tx.queryRow(ctx, `SELECT state FROM mpgdpr_request WHERE reference = ?`, ref).Scan(&old); err != nil {
		if isNoRows(err) {
			return nil
		}
		return err
	}
	counts := map[string]int{}
	itemState := ""
	if err := collect(ctx, tx, `SELECT state, project FROM mpgdpr_item WHERE reference = ?`, []any{ref}, func(r rowScanner) error {
		var s, p string
		if err := r.Scan(&s, &p); err != nil {
			return err
		}
		counts[s]++
		if p == project {
			itemState = s
		}
		return nil
	}); err != nil {
		return err
	}
	state := requestState(counts)
	if state != old {
		completed := ""
		if isFinal(state) {
			completed = workerdb.FormatTime(now)
		}
		if _, err := tx.exec(ctx, `UPDATE mpgdpr_request SET state = ?, completed_at = ? WHERE reference = ?`, state, completed, ref); err != nil {
			return err
		}
	}
	return w.requestChanged(ctx, tx, requestChange{Reference: ref, Project: project, ItemState: itemState, Old: old, New: state, At: now})
}
