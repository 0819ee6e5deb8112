package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// scanWorker coalesces a group's queued items (same project, kind,
// compliance and disclosure type) into batches of at most the project's
// per-request limit. Full batches are formed at once; the rest waits until
// its oldest item has waited the batching window, so no item waits longer.
type scanWorker[TTx any] struct {
	river.WorkerDefaults[scanArgs]
	w *Worker[TTx]
}

type queuedItem struct {
	itemRef
	nIDs     int
	queuedAt time.Time
}

var errRaced = errors.New("worker: items taken by another scan")

func (sw *scanWorker[TTx]) Work(ctx context.Context, job *river.Job[scanArgs]) error {
	w, g := sw.w, job.Args
	p, ok := w.cfg.Project(g.Project)
	if !ok {
		return river.JobCancel(fmt.Errorf("project %q is no longer configured", g.Project))
	}
	limit := p.limit(Kind(g.RequestKind))
	window := time.Duration(p.BatchWindow)
	for {
		items, err := queuedItems(ctx, w.db, g)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return nil
		}
		now := time.Now()
		// Pack items in arrival order; an item is never split.
		var batch []queuedItem
		sum := 0
		formed := false
		for i, it := range items {
			if sum+it.nIDs > limit && len(batch) > 0 {
				if err := w.formBatch(ctx, g, batch); err != nil {
					if errors.Is(err, errRaced) {
						break
					}
					return err
				}
				formed = true
				batch, sum = nil, 0
			}
			batch = append(batch, it)
			sum += it.nIDs
			if i == len(items)-1 && len(batch) > 0 {
				due := batch[0].queuedAt.Add(window)
				if sum < limit && now.Before(due) {
					return river.JobSnooze(due.Sub(now))
				}
				if err := w.formBatch(ctx, g, batch); err != nil && !errors.Is(err, errRaced) {
					return err
				}
				formed = true
			}
		}
		if !formed {
			return nil
		}
		// Look again: items may have arrived meanwhile.
	}
}

func queuedItems(ctx context.Context, q querier, g scanArgs) ([]queuedItem, error) {
	rows, err := q.query(ctx, `SELECT id, reference, n_ids, queued_at FROM mpgdpr_item
		WHERE project = ? AND kind = ? AND compliance_type = ? AND disclosure_type = ? AND state = ?
		ORDER BY queued_at, id LIMIT 100000`, g.Project, g.RequestKind, g.ComplianceType, g.DisclosureType, StateQueued)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var items []queuedItem
	for rows.Next() {
		var it queuedItem
		var at string
		if err := rows.Scan(&it.ID, &it.Reference, &it.nIDs, &at); err != nil {
			return nil, err
		}
		it.Project, it.queuedAt = g.Project, workerdb.ParseTime(at)
		items = append(items, it)
	}
	return items, rows.Err()
}

// formBatch stores a batch, moves its items to it and inserts its file job,
// in one transaction. errRaced: another scan took some items first.
func (w *Worker[TTx]) formBatch(ctx context.Context, g scanArgs, items []queuedItem) error {
	return inTx(ctx, w.db, func(tx dbTx) error {
		now := time.Now()
		var batchID int64
		if err := tx.queryRow(ctx, `INSERT INTO mpgdpr_batch (project, kind, compliance_type, disclosure_type, state, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, g.Project, g.RequestKind, g.ComplianceType, g.DisclosureType, batchPlanned, workerdb.FormatTime(now), workerdb.FormatTime(now)).Scan(&batchID); err != nil {
			return err
		}
		args := []any{StateBatched, batchID, workerdb.FormatTime(now)}
		marks := make([]string, len(items))
		for i, it := range items {
			marks[i] = "?"
			args = append(args, it.ID)
		}
		args = append(args, StateQueued)
		n, err := tx.exec(ctx, `UPDATE mpgdpr_item SET state = ?, batch_id = ?, updated_at = ? WHERE id IN (`+strings.Join(marks, ",")+`) AND state = ?`, args...)
		if err != nil {
			return err
		}
		if n != int64(len(items)) {
			return errRaced
		}
		for _, it := range items {
			if err := sealItem(ctx, tx, it.Project, it.ID); err != nil {
				return err
			}
			if err := addEvent(ctx, tx, event{At: now, Reference: it.Reference, Project: it.Project, ItemID: it.ID, BatchID: batchID, Event: workerdb.EventBatched,
				Detail: fmt.Sprintf("batch of %d items", len(items))}); err != nil {
				return err
			}
		}
		_, err = w.river.InsertTx(ctx, tx.raw().(TTx), fileArgs{BatchID: batchID}, nil)
		return err
	})
}

// Batch states (mpgdpr_batch.state).
const (
	batchPlanned = "planned" // formed, no create answered for every ID yet
	batchFiled   = "filed"   // every ID is in a task, a conflict or (retrieval) unknown
	batchFailed  = "failed"  // Mixpanel refused it for good (e.g. 400)
)
