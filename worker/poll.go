package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/export"
	"github.com/privacykit/mpgdpr/worker/budget"
	"github.com/privacykit/mpgdpr/worker/workerdb"
	"github.com/riverqueue/river"
)

// pollWorker follows one task: each run polls it once and snoozes until the
// next poll is due, so the River job lives as long as the task does.
type pollWorker[TTx any] struct {
	river.WorkerDefaults[pollArgs]
	w *Worker[TTx]
}

type taskRow struct {
	Project, TaskID, Kind, Status string
	CreatedAt                     time.Time
	Polls                         int
	Done                          bool
	ExportPath                    string
}

// PollInterval is the wait before a task of this age is polled again: an
// eighth of its age, within [min, max]. A task is therefore polled at most
// 3600/min times in any hour, and from its first hour on at most
// max(1, 8·3600/age) times an hour (age in seconds): with the defaults
// (1m, 6h) 26 polls in the first hour, about 170 over 30 days, 4 a day
// once the task is two days old.
func PollInterval(age, minWait, maxWait time.Duration) time.Duration {
	return min(max(age/8, minWait), maxWait)
}

func (pw *pollWorker[TTx]) Work(ctx context.Context, job *river.Job[pollArgs]) error {
	w := pw.w
	t, err := loadTask(ctx, w.db, job.Args.Project, job.Args.TaskID)
	if err != nil {
		return err
	}
	if t.Done {
		return nil
	}
	client, ok := w.clients[t.Project]
	if !ok {
		return river.JobSnooze(time.Minute)
	}
	next := PollInterval(time.Since(t.CreatedAt), time.Duration(w.cfg.PollMin), time.Duration(w.cfg.PollMax))
	var task *mpgdpr.Task
	var checkErr error
	ran, _ := w.withGrant(ctx, t.Project, budget.Poll, nil, func(cctx context.Context) {
		task, checkErr = client.Check(cctx, Kind(t.Kind), t.TaskID)
	})
	if !ran {
		return river.JobSnooze(time.Second) // no turn (stopping, or timed out waiting)
	}
	w.notePoll(ctx, t.Project)
	err = checkErr
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err != nil {
		var mpErr *mpgdpr.Error
		switch {
		case errors.Is(err, mpgdpr.ErrNotFound):
			// Mixpanel does not know the task: as NOT_FOUND.
			task = &mpgdpr.Task{TrackingID: t.TaskID, Status: mpgdpr.StatusNotFound}
		case errors.As(err, &mpErr) && mpErr.RetryAfter > 0:
			return river.JobSnooze(max(mpErr.RetryAfter, next))
		case errors.Is(err, mpgdpr.ErrUnauthorized) || errors.Is(err, mpgdpr.ErrForbidden):
			return river.JobSnooze(max(5*time.Minute, next))
		default:
			return river.JobSnooze(next)
		}
	}
	if err := w.recordPoll(rctx, t, task.Status); err != nil {
		return err
	}
	if !task.Status.Terminal() {
		return river.JobSnooze(next)
	}
	return w.taskEnded(rctx, ctx, t, task)
}

// recordPoll counts the poll and logs a status the first time it is seen;
// items whose tasks are in progress become open.
func (w *Worker[TTx]) recordPoll(ctx context.Context, t *taskRow, status mpgdpr.Status) error {
	return inTx(ctx, w.db, func(tx dbTx) error {
		now := time.Now()
		if _, err := tx.exec(ctx, `UPDATE mpgdpr_task SET polls = polls + 1, last_polled_at = ?, status = ? WHERE project = ? AND task_id = ?`,
			workerdb.FormatTime(now), string(status), t.Project, t.TaskID); err != nil {
			return err
		}
		if string(status) == t.Status {
			return nil
		}
		if err := addEvent(ctx, tx, event{At: now, Project: t.Project, TaskID: t.TaskID, Event: workerdb.EventStatus, Detail: string(status)}); err != nil {
			return err
		}
		if status.Terminal() {
			return nil
		}
		items, err := itemsOfTask(ctx, tx, t.Project, t.TaskID)
		if err != nil {
			return err
		}
		for _, it := range items {
			if it.State == StateFiled {
				// The detail does not repeat the status: the task's row
				// holds it (and moves on), the status event logs it.
				if err := w.setItemState(ctx, tx, it.itemRef, StateOpen, workerdb.EventOpen, t.TaskID, "task "+t.TaskID+" in progress"); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// pollsKept is how long notePoll keeps a poll's row: Status counts the
// last minute.
const pollsKept = 5 * time.Minute

// notePoll records that a poll of project went on the wire (whatever its
// answer: it took a turn of the budget) and drops the rows Status no longer
// needs. A failure only makes Status count short: logged, not returned.
func (w *Worker[TTx]) notePoll(ctx context.Context, project string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	now := time.Now()
	err := inTx(ctx, w.db, func(tx dbTx) error {
		if _, err := tx.exec(ctx, `INSERT INTO mpgdpr_poll (project, at) VALUES (?, ?)`, project, workerdb.FormatTime(now)); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `DELETE FROM mpgdpr_poll WHERE project = ? AND at < ?`, project, workerdb.FormatTime(now.Add(-pollsKept)))
		return err
	})
	if err != nil {
		w.log.Warn("worker: counting a poll", "project", project, "error", err)
	}
}

// taskEnded handles a terminal status: fetch and check a retrieval's export,
// settle the items, apply the FAILURE/NOT_FOUND policy.
func (w *Worker[TTx]) taskEnded(ctx, workCtx context.Context, t *taskRow, task *mpgdpr.Task) error {
	if task.Status.Succeeded() && Kind(t.Kind) == Retrieval && t.ExportPath == "" {
		info, err := w.fetchExport(workCtx, t, task)
		if err != nil {
			if e := addEvent(ctx, w.db, event{Project: t.Project, TaskID: t.TaskID, Event: workerdb.EventExportError, Detail: errText(err)}); e != nil {
				return e
			}
			if errors.Is(err, export.ErrWrongSecret) {
				return w.finishTask(ctx, t, task.Status, "export does not decrypt with the configured API secret")
			}
			var tries int
			if e := w.db.queryRow(ctx, `SELECT COUNT(*) FROM mpgdpr_event WHERE project = ? AND task_id = ? AND event = ?`, t.Project, t.TaskID, workerdb.EventExportError).Scan(&tries); e != nil {
				return e
			}
			if tries >= maxExportTries {
				return w.finishTask(ctx, t, task.Status, fmt.Sprintf("export could not be downloaded and checked in %d tries: %s", tries, errText(err)))
			}
			// A link expires: polling again gets a fresh one.
			return river.JobSnooze(time.Duration(w.cfg.PollMin))
		}
		if err := inTx(ctx, w.db, func(tx dbTx) error {
			if _, err := tx.exec(ctx, `UPDATE mpgdpr_task SET export_path = ?, export_size = ?, export_sha256 = ? WHERE project = ? AND task_id = ?`,
				info.Path, info.Size, info.SHA256, t.Project, t.TaskID); err != nil {
				return err
			}
			if err := sealTask(ctx, tx, t.Project, t.TaskID); err != nil {
				return err
			}
			return addEvent(ctx, tx, event{Project: t.Project, TaskID: t.TaskID, Event: workerdb.EventExported,
				Detail: fmt.Sprintf("%s, %d bytes, sha256 %s, %d entries decrypted", info.Path, info.Size, info.SHA256, info.Entries)})
		}); err != nil {
			return err
		}
	}
	return w.finishTask(ctx, t, task.Status, "")
}

// finishTask marks the task ended and settles its items. failure, if set,
// makes a SUCCESS count as failed (an export that cannot be read).
func (w *Worker[TTx]) finishTask(ctx context.Context, t *taskRow, status mpgdpr.Status, failure string) error {
	var rescans map[scanArgs]bool
	err := inTx(ctx, w.db, func(tx dbTx) error {
		now := time.Now()
		rescans = map[scanArgs]bool{}
		if _, err := tx.exec(ctx, `UPDATE mpgdpr_task SET done_at = ?, status = ? WHERE project = ? AND task_id = ?`, workerdb.FormatTime(now), string(status), t.Project, t.TaskID); err != nil {
			return err
		}
		if err := sealTask(ctx, tx, t.Project, t.TaskID); err != nil {
			return err
		}
		items, err := itemsOfTask(ctx, tx, t.Project, t.TaskID)
		if err != nil {
			return err
		}
		p, _ := w.cfg.Project(t.Project)
		var ids []int64
		for _, it := range items {
			if isFinal(it.State) {
				continue
			}
			if status.Succeeded() && failure == "" {
				ids = append(ids, it.ID)
				continue
			}
			if status == mpgdpr.StatusRevoked {
				// Revoked by our own cancel (cancel.go), seen here first.
				last, _, err := lastCancelEvent(ctx, tx, it.Reference, it.Project)
				if err != nil {
					return err
				}
				if last == workerdb.EventCancelRequested {
					if err := w.setItemState(ctx, tx, it.itemRef, StateCancelled, workerdb.EventCancelled, t.TaskID, "Mixpanel cancelled task "+t.TaskID); err != nil {
						return err
					}
					continue
				}
			}
			why := failure
			if why == "" {
				why = fmt.Sprintf("task %s ended %s", t.TaskID, status)
			}
			policy := PolicyReport
			if p != nil {
				switch status {
				case mpgdpr.StatusFailure:
					policy = p.OnFailure
				case mpgdpr.StatusNotFound:
					policy = p.OnNotFound
				}
			}
			if failure == "" && policy == PolicyResubmit && p != nil && it.Resubmits < *p.Resubmits {
				if _, err := tx.exec(ctx, `UPDATE mpgdpr_item SET state = ?, batch_id = NULL, resubmits = resubmits + 1, queued_at = ?, updated_at = ?, detail = ? WHERE id = ?`,
					StateQueued, workerdb.FormatTime(now), workerdb.FormatTime(now), why, it.ID); err != nil {
					return err
				}
				if err := sealItem(ctx, tx, it.Project, it.ID); err != nil {
					return err
				}
				if err := addEvent(ctx, tx, event{At: now, Reference: it.Reference, Project: it.Project, ItemID: it.ID, TaskID: t.TaskID, Event: workerdb.EventResubmitted,
					Detail: fmt.Sprintf("%s; resubmission %d of %d", why, it.Resubmits+1, *p.Resubmits)}); err != nil {
					return err
				}
				rescans[scanArgs{Project: it.Project, RequestKind: it.Kind, ComplianceType: it.Compliance, DisclosureType: it.Disclosure}] = true
				continue
			}
			if err := w.setItemState(ctx, tx, it.itemRef, StateFailed, workerdb.EventFailed, t.TaskID, why); err != nil {
				return err
			}
		}
		if err := w.evaluateItems(ctx, tx, ids); err != nil {
			return err
		}
		return w.insertScans(ctx, tx, rescans)
	})
	return err
}

// isFinal reports whether an item (or a request) in state has ended.
func isFinal(state string) bool {
	return state == StateDone || state == StateFailed || state == StateUnknown || state == StateCancelled
}

// evaluateItems marks done each item whose current tasks have all succeeded
// (with their exports, for retrievals).
func (w *Worker[TTx]) evaluateItems(ctx context.Context, tx dbTx, ids []int64) error {
	for _, id := range ids {
		var ref, project, state, kind string
		var round, pending, total int
		if err := tx.queryRow(ctx, `SELECT reference, project, state, kind, resubmits FROM mpgdpr_item WHERE id = ?`, id).Scan(&ref, &project, &state, &kind, &round); err != nil {
			return err
		}
		if state != StateFiled && state != StateOpen {
			continue
		}
		if err := tx.queryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN t.done_at = '' OR t.status <> 'SUCCESS' OR (t.kind = 'retrieval' AND t.export_path = '') THEN 1 ELSE 0 END), 0)
			FROM mpgdpr_item_task l JOIN mpgdpr_task t ON t.project = l.project AND t.task_id = l.task_id WHERE l.item_id = ? AND l.round = ?`, id, round).Scan(&total, &pending); err != nil {
			return err
		}
		if total == 0 || pending > 0 {
			continue
		}
		tasks, err := linkedTasks(ctx, tx, id, round)
		if err != nil {
			return err
		}
		if err := w.setItemState(ctx, tx, itemRef{ID: id, Reference: ref, Project: project}, StateDone, workerdb.EventDone, "", "tasks "+strings.Join(tasks, ", ")+" succeeded"); err != nil {
			return err
		}
	}
	return nil
}

type taskItem struct {
	itemRef
	State, Kind, Compliance, Disclosure string
	Resubmits                           int
}

// itemsOfTask lists the items whose current round is covered by the task.
func itemsOfTask(ctx context.Context, q querier, project, taskID string) ([]taskItem, error) {
	rows, err := q.query(ctx, `SELECT i.id, i.reference, i.project, i.state, i.kind, i.compliance_type, i.disclosure_type, i.resubmits
		FROM mpgdpr_item_task l JOIN mpgdpr_item i ON i.id = l.item_id AND l.round = i.resubmits
		WHERE l.project = ? AND l.task_id = ? ORDER BY i.id`, project, taskID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []taskItem
	for rows.Next() {
		var it taskItem
		if err := rows.Scan(&it.ID, &it.Reference, &it.Project, &it.State, &it.Kind, &it.Compliance, &it.Disclosure, &it.Resubmits); err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

func loadTask(ctx context.Context, q querier, project, taskID string) (*taskRow, error) {
	t := &taskRow{Project: project, TaskID: taskID}
	var created, done string
	err := q.queryRow(ctx, `SELECT kind, status, created_at, polls, done_at, export_path FROM mpgdpr_task WHERE project = ? AND task_id = ?`, project, taskID).
		Scan(&t.Kind, &t.Status, &created, &t.Polls, &done, &t.ExportPath)
	if err != nil {
		return nil, fmt.Errorf("worker: task %s/%s: %w", project, taskID, err)
	}
	t.CreatedAt, t.Done = workerdb.ParseTime(created), done != ""
	return t, nil
}
