package worker

import (
	"context"

	"github.com/riverqueue/river"
)

// sweepWorker is the periodic safety net (every batching window, between
// 1 s and 1 min, and at every start): it gives every group with queued
// items a scan, every unfiled batch a file job and every open task a poll
// job, unless one is already waiting. Jobs are unique while alive, so this
// adds nothing in the normal case; it recovers from a job that was
// discarded, cancelled by hand, or lost to a race between intake and a
// running scan.
type sweepWorker[TTx any] struct {
	river.WorkerDefaults[sweepArgs]
	w *Worker[TTx]
}

func (sw *sweepWorker[TTx]) Work(ctx context.Context, _ *river.Job[sweepArgs]) error {
	w := sw.w
	return inTx(ctx, w.db, func(tx dbTx) error {
		var groups []scanArgs
		if err := collect(ctx, tx, `SELECT DISTINCT project, kind, compliance_type, disclosure_type FROM mpgdpr_item WHERE state = ?`, []any{StateQueued}, func(r rowScanner) error {
			var g scanArgs
			if err := r.Scan(&g.Project, &g.RequestKind, &g.ComplianceType, &g.DisclosureType); err != nil {
				return err
			}
			groups = append(groups, g)
			return nil
		}); err != nil {
			return err
		}
		var batches []int64
		if err := collect(ctx, tx, `SELECT id FROM mpgdpr_batch WHERE state = ?`, []any{batchPlanned}, func(r rowScanner) error {
			var id int64
			if err := r.Scan(&id); err != nil {
				return err
			}
			batches = append(batches, id)
			return nil
		}); err != nil {
			return err
		}
		var polls []pollArgs
		if err := collect(ctx, tx, `SELECT project, task_id FROM mpgdpr_task WHERE done_at = ''`, nil, func(r rowScanner) error {
			var p pollArgs
			if err := r.Scan(&p.Project, &p.TaskID); err != nil {
				return err
			}
			polls = append(polls, p)
			return nil
		}); err != nil {
			return err
		}
		raw := tx.raw().(TTx)
		for _, g := range groups {
			if _, err := w.river.InsertTx(ctx, raw, g, nil); err != nil {
				return err
			}
		}
		for _, id := range batches {
			if _, err := w.river.InsertTx(ctx, raw, fileArgs{BatchID: id}, nil); err != nil {
				return err
			}
		}
		for _, p := range polls {
			if _, err := w.river.InsertTx(ctx, raw, p, nil); err != nil {
				return err
			}
		}
		return nil
	})
}

func collect(ctx context.Context, q querier, sql string, args []any, f func(rowScanner) error) error {
	rows, err := q.query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := f(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
