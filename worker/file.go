package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/internal/redact"
	"github.com/privacykit/mpgdpr/worker/budget"
	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/workerdb"
	"github.com/riverqueue/river"
)

// Create states (mpgdpr_create.state): one row per create put on the wire,
// written as "sending" before it goes and updated with the answer.
const (
	createSending  = "sending"
	createFiled    = "filed"
	createConflict = "conflict"
	createUnknown  = "unknown"
	createRefused  = "refused"
)

// fileWorker files one batch: as many creates as it takes until every ID is
// in an accepted task, named by a 409, or (retrievals) of unknown outcome.
type fileWorker[TTx any] struct {
	river.WorkerDefaults[fileArgs]
	w *Worker[TTx]
}

type batchRow struct {
	ID                                int64
	Project, Kind, Compliance, Disclo string
	State                             string
}

type batchItem struct {
	itemRef
	State     string
	Round     int
	IDs       []string
	Resubmits int
}

type createRow struct {
	ID, Seq     int64
	IDs         []string
	State       string
	ConflictIDs []string
}

func (fw *fileWorker[TTx]) Work(ctx context.Context, job *river.Job[fileArgs]) error {
	w := fw.w
	b, err := loadBatch(ctx, w.db, job.Args.BatchID)
	if err != nil {
		return err
	}
	if b.State != batchPlanned {
		return nil // filed or failed by an earlier run
	}
	client, ok := w.clients[b.Project]
	if !ok {
		return river.JobSnooze(time.Minute) // configuration lost the project: wait for it to come back
	}
	items, err := batchItems(ctx, w.db, b.ID)
	if err != nil {
		return err
	}
	var all []string
	seen := map[string]bool{}
	for _, it := range items {
		for _, id := range it.IDs {
			if !seen[id] {
				seen[id] = true
				all = append(all, id)
			}
		}
	}
	creates, err := batchCreates(ctx, w.db, b.ID)
	if err != nil {
		return err
	}
	accounted := map[string]bool{}
	var seq int64
	for _, c := range creates {
		seq = max(seq, c.Seq)
		switch c.State {
		case createSending:
			// The worker stopped (or was killed) with this create on the
			// wire: Mixpanel may have it.
			if err := w.settleLostCreate(ctx, b, items, c); err != nil {
				return err
			}
			if !Kind(b.Kind).Resubmittable() {
				markAll(accounted, c.IDs)
			}
		case createFiled:
			markAll(accounted, c.IDs)
		case createConflict:
			markAll(accounted, c.ConflictIDs)
		case createUnknown:
			if !Kind(b.Kind).Resubmittable() {
				markAll(accounted, c.IDs)
			}
		}
	}
	var remaining []string
	for _, id := range all {
		if !accounted[id] {
			remaining = append(remaining, id)
		}
	}
	unknownsInRow := 0
	for len(remaining) > 0 {
		seq++
		var createID int64
		var taskID string
		var callErr error
		ran, err := w.withGrant(ctx, b.Project, budget.Create, func() error {
			var err error
			createID, err = w.journalSending(ctx, b, items, seq, remaining)
			return err
		}, func(cctx context.Context) {
			taskID, callErr = w.callCreate(cctx, client, b, remaining)
		})
		if !ran {
			if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
				return river.JobSnooze(time.Second) // stopping, or timed out waiting: try again later
			}
			return err
		}
		// The answer is recorded even when ctx has ended (stop, timeout).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		next, wait, err := w.recordCreate(rctx, b, items, createID, remaining, taskID, callErr)
		cancel()
		if err != nil {
			return err
		}
		if errors.Is(callErr, mpgdpr.ErrOutcomeUnknown) && Kind(b.Kind).Resubmittable() {
			unknownsInRow++
			if unknownsInRow >= mpgdpr.MaxUnknownInARow {
				return river.JobSnooze(30 * time.Second)
			}
		} else {
			unknownsInRow = 0
		}
		if wait > 0 {
			return river.JobSnooze(wait)
		}
		if wait < 0 {
			return nil // the batch failed for good; recorded
		}
		remaining = next
	}
	return w.finishBatch(ctx, b)
}

func markAll(m map[string]bool, ids []string) {
	for _, id := range ids {
		m[id] = true
	}
}

func (w *Worker[TTx]) callCreate(ctx context.Context, c *mpgdpr.Client, b *batchRow, ids []string) (string, error) {
	return c.Create(ctx, Kind(b.Kind), ids, mpgdpr.ComplianceType(b.Compliance), mpgdpr.DisclosureType(b.Disclo))
}

// journalSending records, and commits, that a create is about to be sent.
func (w *Worker[TTx]) journalSending(ctx context.Context, b *batchRow, items []batchItem, seq int64, ids []string) (int64, error) {
	var createID int64
	err := inTx(ctx, w.db, func(tx dbTx) error {
		enc, _ := json.Marshal(ids)
		now := time.Now()
		if err := tx.queryRow(ctx, `INSERT INTO mpgdpr_create (batch_id, seq, distinct_ids, state, sent_at) VALUES (?, ?, ?, ?, ?) RETURNING id`,
			b.ID, seq, string(enc), createSending, workerdb.FormatTime(now)).Scan(&createID); err != nil {
			return err
		}
		set := toSet(ids)
		for _, it := range items {
			if it.State != StateBatched || !intersects(it.IDs, set) {
				continue
			}
			if err := addEvent(ctx, tx, event{At: now, Reference: it.Reference, Project: it.Project, ItemID: it.ID, BatchID: b.ID, Event: workerdb.EventSending,
				Detail: fmt.Sprintf("create #%d, %d IDs", seq, len(ids))}); err != nil {
				return err
			}
		}
		return nil
	})
	return createID, err
}

// recordCreate stores a create's answer, as the library's rule
// (mpgdpr.SplitCreate) reads it. It returns the IDs still to file, and a
// wait: > 0 to try again later (snooze), < 0 when the batch failed for good.
func (w *Worker[TTx]) recordCreate(ctx context.Context, b *batchRow, items []batchItem, createID int64, ids []string, taskID string, callErr error) (next []string, wait time.Duration, err error) {
	set := toSet(ids)
	out := mpgdpr.SplitCreate(ids, taskID, callErr)
	// Mixpanel's answer may quote the IDs: none reaches the log in plain.
	errText := func(err error) string { return w.createErrText(err, ids) }
	err = inTx(ctx, w.db, func(tx dbTx) error {
		now := time.Now()
		switch {
		case len(out.Filed) > 0:
			if _, err := tx.exec(ctx, `UPDATE mpgdpr_create SET state = ?, task_id = ?, answered_at = ? WHERE id = ?`, createFiled, out.TaskID, workerdb.FormatTime(now), createID); err != nil {
				return err
			}
			if err := insertTask(ctx, tx, b.Project, out.TaskID, b.Kind, "filed", now); err != nil {
				return err
			}
			for _, it := range items {
				if it.State == StateBatched && intersects(it.IDs, set) {
					if err := linkItem(ctx, tx, it, out.TaskID, "filed", now); err != nil {
						return err
					}
					if err := addEvent(ctx, tx, event{At: now, Reference: it.Reference, Project: it.Project, ItemID: it.ID, BatchID: b.ID, TaskID: out.TaskID, Event: workerdb.EventFiled}); err != nil {
						return err
					}
				}
			}
			return nil

		case len(out.Conflicting) > 0:
			cids, _ := json.Marshal(out.Conflicting)
			ctasks, _ := json.Marshal(out.ConflictTasks)
			if _, err := tx.exec(ctx, `UPDATE mpgdpr_create SET state = ?, conflict_ids = ?, conflict_tasks = ?, answered_at = ? WHERE id = ?`,
				createConflict, string(cids), string(ctasks), workerdb.FormatTime(now), createID); err != nil {
				return err
			}
			cset := toSet(out.Conflicting)
			for _, t := range out.ConflictTasks {
				if err := insertTask(ctx, tx, b.Project, t, b.Kind, "conflict", now); err != nil {
					return err
				}
			}
			for _, it := range items {
				if it.State != StateBatched || !intersects(it.IDs, cset) {
					continue
				}
				for _, t := range out.ConflictTasks {
					if err := linkItem(ctx, tx, it, t, "conflict", now); err != nil {
						return err
					}
					if err := addEvent(ctx, tx, event{At: now, Reference: it.Reference, Project: it.Project, ItemID: it.ID, BatchID: b.ID, TaskID: t, Event: workerdb.EventConflict,
						Detail: "409: a running deletion already covers some of these IDs"}); err != nil {
						return err
					}
				}
			}
			next = out.Unfiled
			return nil

		case len(out.Unknown) > 0:
			if _, err := tx.exec(ctx, `UPDATE mpgdpr_create SET state = ?, detail = ?, answered_at = ? WHERE id = ?`, createUnknown, errText(callErr), workerdb.FormatTime(now), createID); err != nil {
				return err
			}
			if Kind(b.Kind).Resubmittable() {
				next = out.Unknown // a filed deletion draws a 409 naming its task
				return eventsFor(ctx, tx, b, items, set, workerdb.EventUnknown, "outcome unknown; the deletion is filed again (a 409 will name the task if the first was accepted)", now)
			}
			return w.markUnknown(ctx, tx, b, items, set, createID)
		}

		// Refused: nothing was filed.
		var mpErr *mpgdpr.Error
		errors.As(out.Err, &mpErr)
		if mpErr != nil && mpErr.StatusCode == http.StatusConflict {
			// A 409 that names none of our IDs or no task: nothing to
			// follow. Try again later.
			wait = time.Minute
			return refuseCreate(ctx, tx, b, items, createID, set, "409 naming none of the request's IDs or no task", now)
		}
		permanent := errors.Is(out.Err, mpgdpr.ErrInvalidInput) || errors.Is(out.Err, mpgdpr.ErrBadRequest) || errors.Is(out.Err, mpgdpr.ErrNotFound)
		if err := refuseCreate(ctx, tx, b, items, createID, set, errText(out.Err), now); err != nil {
			return err
		}
		switch {
		case permanent:
			wait = -1
			return w.failBatch(ctx, tx, b, items, set, "Mixpanel refused the create: "+errText(out.Err), now)
		case errors.Is(out.Err, mpgdpr.ErrUnauthorized) || errors.Is(out.Err, mpgdpr.ErrForbidden):
			wait = 5 * time.Minute // credentials: an operator must act; keep the items
		case mpErr != nil && mpErr.RetryAfter > 0:
			wait = mpErr.RetryAfter
		default:
			wait = 10 * time.Second
		}
		return nil
	})
	return next, wait, err
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return truncateDetail(err.Error())
}

// truncateDetail bounds a detail written to the log.
func truncateDetail(s string) string {
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}

// createErrText is errText for a create's error: each of the create's
// distinct IDs quoted in it is replaced, before truncation, by a mark
// holding the start of its keyed hash (scrubIDs).
func (w *Worker[TTx]) createErrText(err error, ids []string) string {
	if err == nil {
		return ""
	}
	return truncateDetail(scrubIDs(w.ids, err.Error(), ids))
}

// scrubIDs replaces each of ids quoted in text (redact.IDs: whole words,
// escaped forms, longest first) by "[ID " and the first 16 characters of
// its keyed hash "…]", which 'mpgdpr report hash-id' finds again.
func scrubIDs(h *evidence.IDHasher, text string, ids []string) string {
	return redact.IDs(text, ids, func(id string) string { return "[ID " + h.Hash(id)[:16] + "…]" })
}

func refuseCreate(ctx context.Context, tx dbTx, b *batchRow, items []batchItem, createID int64, set map[string]bool, why string, now time.Time) error {
	if _, err := tx.exec(ctx, `UPDATE mpgdpr_create SET state = ?, detail = ?, answered_at = ? WHERE id = ?`, createRefused, why, workerdb.FormatTime(now), createID); err != nil {
		return err
	}
	return eventsFor(ctx, tx, b, items, set, workerdb.EventRefused, why, now)
}

func eventsFor(ctx context.Context, tx dbTx, b *batchRow, items []batchItem, set map[string]bool, ev, detail string, now time.Time) error {
	for _, it := range items {
		if it.State == StateBatched && intersects(it.IDs, set) {
			if err := addEvent(ctx, tx, event{At: now, Reference: it.Reference, Project: it.Project, ItemID: it.ID, BatchID: b.ID, Event: ev, Detail: detail}); err != nil {
				return err
			}
		}
	}
	return nil
}

const unknownDetail = "the create's outcome is unknown: Mixpanel may have filed this retrieval; it is not filed again. Check Mixpanel, then enqueue it again under a new reference if it was not filed"

// markUnknown reports the retrieval items of an unknown create, with the
// time the create was sent (what Mixpanel support needs to find the task).
func (w *Worker[TTx]) markUnknown(ctx context.Context, tx dbTx, b *batchRow, items []batchItem, set map[string]bool, createID int64) error {
	var sent string
	if err := tx.queryRow(ctx, `SELECT sent_at FROM mpgdpr_create WHERE id = ?`, createID).Scan(&sent); err != nil {
		return err
	}
	detail := workerdb.UnknownCreateDetail(workerdb.ParseTime(sent), unknownDetail)
	for i, it := range items {
		if it.State == StateBatched && intersects(it.IDs, set) {
			if err := w.setItemState(ctx, tx, it.itemRef, StateUnknown, workerdb.EventUnknown, "", detail); err != nil {
				return err
			}
			items[i].State = StateUnknown
		}
	}
	return nil
}

func (w *Worker[TTx]) failBatch(ctx context.Context, tx dbTx, b *batchRow, items []batchItem, set map[string]bool, why string, now time.Time) error {
	for i, it := range items {
		if it.State == StateBatched {
			if err := w.setItemState(ctx, tx, it.itemRef, StateFailed, workerdb.EventFailed, "", why); err != nil {
				return err
			}
			items[i].State = StateFailed
		}
	}
	_, err := tx.exec(ctx, `UPDATE mpgdpr_batch SET state = ?, updated_at = ? WHERE id = ?`, batchFailed, workerdb.FormatTime(now), b.ID)
	return err
}

// settleLostCreate handles a create found "sending" at the start of a run.
func (w *Worker[TTx]) settleLostCreate(ctx context.Context, b *batchRow, items []batchItem, c createRow) error {
	return inTx(ctx, w.db, func(tx dbTx) error {
		now := time.Now()
		detail := "the worker stopped while this create was in flight"
		if _, err := tx.exec(ctx, `UPDATE mpgdpr_create SET state = ?, detail = ?, answered_at = ? WHERE id = ? AND state = ?`, createUnknown, detail, workerdb.FormatTime(now), c.ID, createSending); err != nil {
			return err
		}
		set := toSet(c.IDs)
		if Kind(b.Kind).Resubmittable() {
			return eventsFor(ctx, tx, b, items, set, workerdb.EventUnknown, detail+"; the deletion is filed again (a 409 will name the task if the first was accepted)", now)
		}
		return w.markUnknown(ctx, tx, b, items, set, c.ID)
	})
}

// finishBatch marks the batch filed, its items filed, and sets every task
// it touched to be followed.
func (w *Worker[TTx]) finishBatch(ctx context.Context, b *batchRow) error {
	return inTx(ctx, w.db, func(tx dbTx) error {
		now := time.Now()
		items, err := batchItems(ctx, tx, b.ID)
		if err != nil {
			return err
		}
		var ids []int64
		for _, it := range items {
			if it.State != StateBatched {
				continue
			}
			tasks, err := linkedTasks(ctx, tx, it.ID, it.Round)
			if err != nil {
				return err
			}
			if err := w.setItemState(ctx, tx, it.itemRef, StateFiled, workerdb.EventFiled, "", "covered by tasks "+strings.Join(tasks, ", ")); err != nil {
				return err
			}
			ids = append(ids, it.ID)
		}
		if _, err := tx.exec(ctx, `UPDATE mpgdpr_batch SET state = ?, updated_at = ? WHERE id = ?`, batchFiled, workerdb.FormatTime(now), b.ID); err != nil {
			return err
		}
		rows, err := tx.query(ctx, `SELECT DISTINCT t.project, t.task_id FROM mpgdpr_item_task l JOIN mpgdpr_item i ON i.id = l.item_id
			JOIN mpgdpr_task t ON t.project = l.project AND t.task_id = l.task_id WHERE i.batch_id = ? AND t.done_at = ''`, b.ID)
		if err != nil {
			return err
		}
		var polls []pollArgs
		for rows.Next() {
			var pa pollArgs
			if err := rows.Scan(&pa.Project, &pa.TaskID); err != nil {
				rows.Close()
				return err
			}
			polls = append(polls, pa)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, pa := range polls {
			if _, err := w.river.InsertTx(ctx, tx.raw().(TTx), pa, nil); err != nil {
				return err
			}
		}
		// Items covered only by tasks that already ended (a 409 naming a
		// task followed to its end before) are settled now.
		return w.evaluateItems(ctx, tx, ids)
	})
}

func loadBatch(ctx context.Context, q querier, id int64) (*batchRow, error) {
	b := &batchRow{ID: id}
	err := q.queryRow(ctx, `SELECT project, kind, compliance_type, disclosure_type, state FROM mpgdpr_batch WHERE id = ?`, id).
		Scan(&b.Project, &b.Kind, &b.Compliance, &b.Disclo, &b.State)
	if err != nil {
		return nil, fmt.Errorf("worker: batch %d: %w", id, err)
	}
	return b, nil
}

func batchItems(ctx context.Context, q querier, batchID int64) ([]batchItem, error) {
	rows, err := q.query(ctx, `SELECT i.id, i.reference, i.project, i.state, i.resubmits, r.distinct_ids FROM mpgdpr_item i
		JOIN mpgdpr_request r ON r.reference = i.reference WHERE i.batch_id = ? ORDER BY i.id`, batchID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var items []batchItem
	for rows.Next() {
		var it batchItem
		var ids string
		if err := rows.Scan(&it.ID, &it.Reference, &it.Project, &it.State, &it.Resubmits, &ids); err != nil {
			return nil, err
		}
		it.Round = it.Resubmits
		if err := json.Unmarshal([]byte(ids), &it.IDs); err != nil {
			return nil, fmt.Errorf("worker: item %d: %w", it.ID, err)
		}
		items = append(items, it)
	}
	return items, rows.Err()
}

func batchCreates(ctx context.Context, q querier, batchID int64) ([]createRow, error) {
	rows, err := q.query(ctx, `SELECT id, seq, distinct_ids, state, conflict_ids FROM mpgdpr_create WHERE batch_id = ? ORDER BY seq`, batchID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []createRow
	for rows.Next() {
		var c createRow
		var ids, cids string
		if err := rows.Scan(&c.ID, &c.Seq, &ids, &c.State, &cids); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(ids), &c.IDs); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(cids), &c.ConflictIDs); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func insertTask(ctx context.Context, tx dbTx, project, taskID, kind, origin string, now time.Time) error {
	n, err := tx.exec(ctx, `INSERT INTO mpgdpr_task (project, task_id, kind, origin, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (project, task_id) DO NOTHING`,
		project, taskID, kind, origin, workerdb.FormatTime(now))
	if err != nil || n == 0 {
		return err
	}
	return sealTask(ctx, tx, project, taskID)
}

func linkItem(ctx context.Context, tx dbTx, it batchItem, taskID, origin string, now time.Time) error {
	n, err := tx.exec(ctx, `INSERT INTO mpgdpr_item_task (item_id, round, project, task_id, origin, linked_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (item_id, round, task_id) DO NOTHING`,
		it.ID, it.Round, it.Project, taskID, origin, workerdb.FormatTime(now))
	if err != nil || n == 0 {
		return err
	}
	return sealItem(ctx, tx, it.Project, it.ID)
}

func linkedTasks(ctx context.Context, q querier, itemID int64, round int) ([]string, error) {
	rows, err := q.query(ctx, `SELECT task_id FROM mpgdpr_item_task WHERE item_id = ? AND round = ? ORDER BY task_id`, itemID, round)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func toSet(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func intersects(ids []string, set map[string]bool) bool {
	for _, id := range ids {
		if set[id] {
			return true
		}
	}
	return false
}
