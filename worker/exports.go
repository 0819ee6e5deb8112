package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// Export retention: an export downloaded at least ExportRetention ago is
// deleted from the export directory, and a chained export_deleted event
// records its path, size and SHA-256, so the evidence still proves what was
// delivered (the exported event and mpgdpr_task keep them too; reports and
// verify never read the file).
//
// The file is first renamed to PATH.deleting, then the event is committed,
// then the renamed file is removed: a purge killed at any step is finished
// by the next (a PATH.deleting without its event gets it; one with its
// event is removed), and a worker on another machine, which holds neither
// file, changes nothing.

// deletingSuffix marks an export being deleted.
const deletingSuffix = ".deleting"

type exportRow struct {
	Project, TaskID, Path, SHA256 string
	Size                          int64
	Recorded                      bool // its export_deleted event is in
}

// purgeExports deletes the exports downloaded at or before cutoff.
func (w *Worker[TTx]) purgeExports(ctx context.Context, cutoff time.Time, dry bool, res *PurgeResult) error {
	var rows []exportRow
	err := collect(ctx, w.db, `SELECT t.project, t.task_id, t.export_path, t.export_size, t.export_sha256,
		EXISTS (SELECT 1 FROM mpgdpr_event e WHERE e.project = t.project AND e.task_id = t.task_id AND e.event = ?)
		FROM mpgdpr_task t WHERE t.export_path <> '' AND t.done_at <> '' AND t.done_at <= ? ORDER BY t.project, t.task_id`,
		[]any{workerdb.EventExportDeleted, workerdb.FormatTime(cutoff)}, func(r rowScanner) error {
			var e exportRow
			if err := r.Scan(&e.Project, &e.TaskID, &e.Path, &e.Size, &e.SHA256, &e.Recorded); err != nil {
				return err
			}
			rows = append(rows, e)
			return nil
		})
	if err != nil {
		return err
	}
	for _, e := range rows {
		if err := ctx.Err(); err != nil {
			return err
		}
		deleting := e.Path + deletingSuffix
		if e.Recorded {
			// Killed between the event and the removal: finish it.
			if !dry {
				if err := os.Remove(deleting); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			continue
		}
		if dry {
			if exists(e.Path) || exists(deleting) {
				res.Exports++
			}
			continue
		}
		if err := os.Rename(e.Path, deleting); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if !exists(deleting) {
			continue // not on this machine, or removed by hand: nothing to prove deleted here
		}
		recorded := false
		if err := inTx(ctx, w.db, func(tx dbTx) error {
			recorded = false
			lock := ""
			if w.db.dialect() == dialectPostgres {
				lock = " FOR UPDATE"
			}
			var one int
			if err := tx.queryRow(ctx, `SELECT 1 FROM mpgdpr_task WHERE project = ? AND task_id = ?`+lock, e.Project, e.TaskID).Scan(&one); err != nil {
				return err
			}
			var n int
			if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM mpgdpr_event WHERE project = ? AND task_id = ? AND event = ?`, e.Project, e.TaskID, workerdb.EventExportDeleted).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil // another worker recorded it
			}
			recorded = true
			return addEvent(ctx, tx, event{Project: e.Project, TaskID: e.TaskID, Event: workerdb.EventExportDeleted,
				Detail: fmt.Sprintf("%s deleted after export_retention: %d bytes, sha256 %s", e.Path, e.Size, e.SHA256)})
		}); err != nil {
			return err
		}
		if err := os.Remove(deleting); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if recorded {
			res.Exports++
		}
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
