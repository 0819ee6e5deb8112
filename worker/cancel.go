package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/worker/budget"
	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// Outcomes of a CancelItem.
const (
	CancelCancelled    = "cancelled"     // the item is cancelled
	CancelPending      = "pending"       // a worker will ask Mixpanel to cancel its task
	CancelTooLate      = "too_late"      // the cancellation was refused (Mixpanel started the task, or it is shared); the item goes on
	CancelAlreadyEnded = "already_ended" // the item had ended (done, failed or unknown)
)

// cancelLockClass is the first key of Cancel's advisory lock on Postgres
// ("mpca" in ASCII), the second being the reference's hash.
const cancelLockClass int32 = 0x6d706361

// cancelArgs carries out a request's cancellation with Mixpanel: the
// reference alone, unique while the job lives.
type cancelArgs struct {
	Reference string `json:"reference" river:"unique"`
}

func (cancelArgs) Kind() string { return "mpgdpr_cancel" }
func (cancelArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueFile, MaxAttempts: maxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: liveStates}}
}

// Cancel cancels a deletion request's items while Mixpanel still allows
// it, in one transaction: an item still queued is cancelled at once (it is
// never batched after); an item batched, filed or open gets a
// cancel_requested event and the request a River job (mpgdpr_cancel) with
// which a full worker asks Mixpanel to cancel the item's tasks (outcome
// "pending"); a task Mixpanel has started, or one that also covers another
// request's IDs (batches coalesce requests), is not cancelled ("too_late",
// and the item goes on). Calling it again adds nothing and gives the same
// answer, updated. A retrieval, or a request whose every item had ended
// before any cancellation, is ErrNotCancellable; an unknown reference
// ErrUnknownReference. An intake-only worker records it all; a full worker
// on the same database does the Mixpanel part.
func (w *Worker[TTx]) Cancel(ctx context.Context, reference string) (*CancelResult, error) {
	var res *CancelResult
	err := inTx(ctx, w.db, func(tx dbTx) error {
		var err error
		res, err = w.cancel(ctx, tx, reference)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (w *Worker[TTx]) cancel(ctx context.Context, tx dbTx, ref string) (*CancelResult, error) {
	if w.db.dialect() == dialectPostgres {
		// Two Cancels of one request at once: the second waits and sees
		// the first's events (SQLite's transactions take the write lock
		// when they begin already). An advisory lock only Cancel takes,
		// not the request's row, which the jobs lock after its items.
		if _, err := tx.exec(ctx, `SELECT pg_advisory_xact_lock(?, hashtext(?))`, cancelLockClass, ref); err != nil {
			return nil, err
		}
	}
	h, err := loadRequestHead(ctx, tx, ref)
	if err != nil {
		return nil, err
	}
	if Kind(h.Kind) != Deletion {
		return nil, fmt.Errorf("%w: a retrieval cannot be cancelled", ErrNotCancellable)
	}
	items := map[string]*cancelItemRow{}
	if err := collect(ctx, tx, `SELECT id, project, state, detail FROM mpgdpr_item WHERE reference = ?`, []any{ref}, func(r rowScanner) error {
		var it cancelItemRow
		if err := r.Scan(&it.ID, &it.Project, &it.State, &it.Detail); err != nil {
			return err
		}
		it.Reference = ref
		items[it.Project] = &it
		return nil
	}); err != nil {
		return nil, err
	}
	res := &CancelResult{Reference: ref, Items: []CancelItem{}}
	now := time.Now()
	asked, pending := false, false
	for _, project := range h.Projects {
		ci := CancelItem{Project: project}
		last, lastDetail, err := lastCancelEvent(ctx, tx, ref, project)
		if err != nil {
			return nil, err
		}
		it := items[project]
		switch {
		case it == nil:
			// Not yet taken in: the job cancels the item once made.
			ci.State, ci.Outcome, ci.Detail = StateQueued, CancelPending, "not yet taken in by a worker; a worker cancels it"
			if last == "" {
				if err := addEvent(ctx, tx, event{At: now, Reference: ref, Project: project, Event: workerdb.EventCancelRequested, Detail: "cancellation requested before the item was made"}); err != nil {
					return nil, err
				}
			}
			asked, pending = true, true
		case it.State == StateCancelled:
			ci.State, ci.Outcome, ci.Detail = it.State, CancelCancelled, it.Detail
			asked = true
		case last == workerdb.EventCancelRefused:
			// Refused, whether the item has ended since or goes on.
			ci.State, ci.Outcome, ci.Detail = it.State, CancelTooLate, lastDetail
			asked = true
		case isFinal(it.State):
			ci.State, ci.Outcome, ci.Detail = it.State, CancelAlreadyEnded, "the item had ended: "+it.State
			// Asked before it ended: the same request, answered again.
			asked = asked || last != ""
		case it.State == StateQueued:
			ok, err := w.cancelQueued(ctx, tx, it.itemRef, "cancelled before it was batched")
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, errors.New("worker: cancel: an item changed meanwhile; try again")
			}
			ci.State, ci.Outcome, ci.Detail = StateCancelled, CancelCancelled, "cancelled before it was batched"
			asked = true
		default: // batched, filed or open
			ci.State, ci.Outcome, ci.Detail = it.State, CancelPending, "a worker asks Mixpanel to cancel the item's tasks"
			if last != workerdb.EventCancelRequested {
				if err := addEvent(ctx, tx, event{At: now, Reference: ref, Project: project, ItemID: it.ID, Event: workerdb.EventCancelRequested, Detail: "cancellation requested while " + it.State}); err != nil {
					return nil, err
				}
			}
			asked, pending = true, true
		}
		res.Items = append(res.Items, ci)
	}
	if !asked {
		return nil, fmt.Errorf("%w: every item had ended", ErrNotCancellable)
	}
	if pending {
		// Unique by reference while it lives: asked again, nothing is added.
		if _, err := w.river.InsertTx(ctx, tx.raw().(TTx), cancelArgs{Reference: ref}, nil); err != nil {
			return nil, fmt.Errorf("worker: cancel: %w", err)
		}
	}
	return res, nil
}

type cancelItemRow struct {
	itemRef
	State, Detail string
	Round         int
}

// lastCancelEvent is the last cancel_requested or cancel_refused event of
// ref's item in project (or of the request for that project, before the
// item was made), with its detail; "" when there is none.
func lastCancelEvent(ctx context.Context, q querier, ref, project string) (ev, detail string, err error) {
	err = q.queryRow(ctx, `SELECT event, detail FROM mpgdpr_event WHERE reference = ? AND project = ? AND event IN (?, ?) ORDER BY id DESC LIMIT 1`,
		ref, project, workerdb.EventCancelRequested, workerdb.EventCancelRefused).Scan(&ev, &detail)
	if isNoRows(err) {
		return "", "", nil
	}
	return ev, detail, err
}

// cancelQueued cancels an item still queued; false when it is no longer
// queued (a scan batched it first). The update is conditional, as the
// scan's (formBatch) is, so that of the two racing one wins and the
// other sees it: a cancelled item is never batched.
func (w *Worker[TTx]) cancelQueued(ctx context.Context, tx dbTx, it itemRef, detail string) (bool, error) {
	n, err := tx.exec(ctx, `UPDATE mpgdpr_item SET state = ? WHERE id = ? AND state = ?`, StateCancelled, it.ID, StateQueued)
	if err != nil || n != 1 {
		return false, err
	}
	return true, w.setItemState(ctx, tx, it, StateCancelled, workerdb.EventCancelled, "", detail)
}

// cancelWorker carries out a request's cancellation with Mixpanel (see
// Cancel). It waits while an item is not taken in or still batched (no
// task yet), and asks Mixpanel to cancel each task of a filed or open item,
// one budget turn each, as any call.
type cancelWorker[TTx any] struct {
	river.WorkerDefaults[cancelArgs]
	w *Worker[TTx]
}

func (cw *cancelWorker[TTx]) Work(ctx context.Context, job *river.Job[cancelArgs]) error {
	w, ref := cw.w, job.Args.Reference
	h, err := loadRequestHead(ctx, w.db, ref)
	if errors.Is(err, ErrUnknownReference) {
		return river.JobCancel(err) // purged meanwhile: nothing left to cancel
	}
	if err != nil {
		return err
	}
	var items []cancelItemRow
	if err := collect(ctx, w.db, `SELECT id, project, state, detail, resubmits FROM mpgdpr_item WHERE reference = ? ORDER BY id`, []any{ref}, func(r rowScanner) error {
		var it cancelItemRow
		if err := r.Scan(&it.ID, &it.Project, &it.State, &it.Detail, &it.Round); err != nil {
			return err
		}
		it.Reference = ref
		items = append(items, it)
		return nil
	}); err != nil {
		return err
	}
	wait := time.Duration(0)
	later := func(d time.Duration) {
		if wait == 0 || d < wait {
			wait = d
		}
	}
	short := max(time.Duration(w.cfg.PollMin), 100*time.Millisecond)
	if len(items) < len(h.Projects) {
		later(short) // an item not yet made: wait for the intake
	}
	for _, it := range items {
		if isFinal(it.State) {
			continue
		}
		last, _, err := lastCancelEvent(ctx, w.db, ref, it.Project)
		if err != nil {
			return err
		}
		if last == workerdb.EventCancelRefused {
			continue
		}
		switch it.State {
		case StateQueued:
			err := inTx(ctx, w.db, func(tx dbTx) error {
				_, err := w.cancelQueued(ctx, tx, it.itemRef, "cancelled before it was batched")
				return err
			})
			if err != nil {
				return err
			}
			// Batched meanwhile, it is looked at again.
			later(short)
		case StateBatched:
			later(short) // no task yet: wait for the create's answer
		case StateFiled, StateOpen:
			d, err := w.cancelFiled(ctx, it)
			if err != nil {
				return err
			}
			if d > 0 {
				later(d)
			}
		}
	}
	if wait > 0 {
		return river.JobSnooze(wait)
	}
	return nil
}

// cancelFiled asks Mixpanel to cancel the tasks of a filed or open item
// and records the outcome; > 0 asks to come back after that long.
func (w *Worker[TTx]) cancelFiled(ctx context.Context, it cancelItemRow) (time.Duration, error) {
	tasks, err := linkedTasks(ctx, w.db, it.ID, it.Round)
	if err != nil {
		return 0, err
	}
	if len(tasks) == 0 {
		return time.Second, nil
	}
	// A task that also covers another request's IDs is never cancelled:
	// that would cancel the other request's deletion too.
	for _, task := range tasks {
		var others int
		if err := w.db.queryRow(ctx, `SELECT COUNT(*) FROM mpgdpr_item_task l JOIN mpgdpr_item i ON i.id = l.item_id
			WHERE l.project = ? AND l.task_id = ? AND i.reference <> ?`, it.Project, task, it.Reference).Scan(&others); err != nil {
			return 0, err
		}
		if others > 0 {
			return 0, w.refuseCancel(ctx, it, task, "task "+task+" also covers another request's IDs (the requests were batched together): cancelling it would cancel that deletion too; the item goes on")
		}
		var done, status string
		if err := w.db.queryRow(ctx, `SELECT done_at, status FROM mpgdpr_task WHERE project = ? AND task_id = ?`, it.Project, task).Scan(&done, &status); err != nil {
			return 0, err
		}
		if done != "" && status != string(mpgdpr.StatusRevoked) {
			return 0, w.refuseCancel(ctx, it, task, fmt.Sprintf("task %s had already ended (%s)", task, status))
		}
	}
	client, ok := w.clients[it.Project]
	if !ok {
		return time.Minute, nil // the configuration lost the project: wait for it to come back
	}
	var revoked []string
	for _, task := range tasks {
		var callErr error
		ran, _ := w.withGrant(ctx, it.Project, budget.Create, nil, func(cctx context.Context) {
			callErr = client.CancelDeletion(cctx, task)
		})
		if !ran {
			return time.Second, nil // no turn (stopping, or timed out waiting)
		}
		var mpErr *mpgdpr.Error
		switch {
		case callErr == nil:
			revoked = append(revoked, task)
		case errors.Is(callErr, mpgdpr.ErrCannotCancel):
			return 0, w.refuseCancel(ctx, it, task, "Mixpanel: task "+task+" has started and can no longer be cancelled; the item goes on")
		case errors.Is(callErr, mpgdpr.ErrNotFound):
			return 0, w.refuseCancel(ctx, it, task, "Mixpanel does not know task "+task+"; the item goes on")
		case errors.As(callErr, &mpErr) && mpErr.RetryAfter > 0:
			return mpErr.RetryAfter, nil
		default:
			w.log.Warn("mpgdpr worker: cancelling a task failed; trying again", "project", it.Project, "task", task, "error", errText(callErr))
			return 10 * time.Second, nil
		}
	}
	return 0, inTx(ctx, w.db, func(tx dbTx) error {
		var state string
		if err := tx.queryRow(ctx, `SELECT state FROM mpgdpr_item WHERE id = ?`, it.ID).Scan(&state); err != nil {
			return err
		}
		if isFinal(state) {
			return nil
		}
		taskID := ""
		if len(revoked) == 1 {
			taskID = revoked[0]
		}
		return w.setItemState(ctx, tx, it.itemRef, StateCancelled, workerdb.EventCancelled, taskID, "Mixpanel cancelled task "+strings.Join(revoked, ", "))
	})
}

// refuseCancel records why an item's cancellation was not done.
func (w *Worker[TTx]) refuseCancel(ctx context.Context, it cancelItemRow, task, why string) error {
	return inTx(ctx, w.db, func(tx dbTx) error {
		return addEvent(ctx, tx, event{Reference: it.Reference, Project: it.Project, ItemID: it.ID, TaskID: task, Event: workerdb.EventCancelRefused, Detail: why})
	})
}
