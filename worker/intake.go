package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// intakeWorker turns a stored (or, from another system, a freshly
// inserted) request into one queued item per project. It is idempotent: run
// again after a crash, it adds nothing.
type intakeWorker[TTx any] struct {
	river.WorkerDefaults[RequestArgs]
	w *Worker[TTx]
}

func (iw *intakeWorker[TTx]) Work(ctx context.Context, job *river.Job[RequestArgs]) error {
	w := iw.w
	// A job the worker enqueued carries the reference alone: the request
	// is already stored. One inserted by another system carries the whole
	// request, which is checked and stored here; its IDs then leave the
	// job's args in the same transaction (scrubArgs), so River's table
	// holds no distinct ID once the request is taken in.
	foreign := len(job.Args.DistinctIDs) > 0
	var n *normalized
	var err error
	if foreign {
		n, err = w.cfg.checkRequest(job.Args)
	} else {
		n, err = loadStoredRequest(ctx, w.db, job.Args.Reference)
	}
	if err != nil {
		if !errors.Is(err, ErrInvalidRequest) {
			return err
		}
		// Only a job inserted by another system gets here invalid: record
		// why (never the IDs) and stop; retrying would not help.
		return w.rejectJob(ctx, job, job.Args.Reference, err)
	}
	now := time.Now()
	groups := map[scanArgs]bool{}
	err = inTx(ctx, w.db, func(tx dbTx) error {
		if foreign {
			if _, err := storeRequest(ctx, tx, w.ids, n, now); err != nil {
				return err
			}
			if err := scrubArgs(ctx, tx, w.db.dialect(), job.ID, n.Reference); err != nil {
				return err
			}
		}
		for _, project := range n.Projects {
			var id int64
			err := tx.queryRow(ctx, `INSERT INTO mpgdpr_item (reference, project, kind, compliance_type, disclosure_type, n_ids, state, queued_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (reference, project) DO NOTHING RETURNING id`,
				n.Reference, project, n.RequestKind, n.ComplianceType, n.DisclosureType, len(n.DistinctIDs), StateQueued, workerdb.FormatTime(now), workerdb.FormatTime(now)).Scan(&id)
			if isNoRows(err) {
				continue // already there: an earlier run of this job
			}
			if err != nil {
				return err
			}
			if err := sealItem(ctx, tx, project, id); err != nil {
				return err
			}
			it := itemRef{ID: id, Reference: n.Reference, Project: project}
			if err := addEvent(ctx, tx, event{At: n.ReceivedAt, Reference: it.Reference, Project: project, ItemID: id, Event: workerdb.EventReceived,
				Detail: fmt.Sprintf("%s %s, %d IDs; time as given by the caller", n.RequestKind, n.ComplianceType, len(n.DistinctIDs))}); err != nil {
				return err
			}
			if err := addEvent(ctx, tx, event{At: now, Reference: it.Reference, Project: project, ItemID: id, Event: workerdb.EventQueued}); err != nil {
				return err
			}
			// Cancelled before it was taken in (Cancel): never batched.
			last, _, err := lastCancelEvent(ctx, tx, it.Reference, project)
			if err != nil {
				return err
			}
			if last == workerdb.EventCancelRequested {
				if _, err := w.cancelQueued(ctx, tx, it, "cancelled before it was taken in"); err != nil {
					return err
				}
			}
		}
		// Every group of this request gets a scan (a pending one covers it).
		for _, project := range n.Projects {
			groups[scanArgs{Project: project, RequestKind: n.RequestKind, ComplianceType: n.ComplianceType, DisclosureType: n.DisclosureType}] = true
		}
		if err := w.settleRequest(ctx, tx, n.Reference, "", now); err != nil {
			return err
		}
		return w.insertScans(ctx, tx, groups)
	})
	if errors.Is(err, ErrConflictingRequest) {
		return w.rejectJob(ctx, job, n.Reference, err)
	}
	return err
}

// rejectJob records why a request job is not filed (never its IDs), drops
// the IDs from its args, and cancels it.
func (w *Worker[TTx]) rejectJob(ctx context.Context, job *river.Job[RequestArgs], ref string, why error) error {
	err := inTx(ctx, w.db, func(tx dbTx) error {
		if err := scrubArgs(ctx, tx, w.db.dialect(), job.ID, ref); err != nil {
			return err
		}
		return addEvent(ctx, tx, event{Reference: ref, Event: workerdb.EventRejected, Detail: why.Error()})
	})
	if err != nil {
		return err
	}
	return river.JobCancel(why)
}

// scrubArgs rewrites a request job's args to its reference alone, dropping
// the distinct IDs (and the rest) a system that inserted it gave.
func scrubArgs(ctx context.Context, tx dbTx, d dialect, jobID int64, ref string) error {
	_, err := tx.exec(ctx, `UPDATE river_job SET args = `+jsonbParam(d)+` WHERE id = ?`, string(referenceArgs(ref)), jobID)
	return err
}

// referenceArgs is the JSON of a request job that carries only its
// reference, as Enqueue writes it and scrubArgs leaves it.
func referenceArgs(ref string) []byte {
	b, _ := json.Marshal(RequestArgs{Reference: ref})
	return b
}

// jsonbParam is a '?' placeholder for a JSON value in River's args column.
func jsonbParam(d dialect) string {
	if d == dialectPostgres {
		return "?::jsonb"
	}
	return "jsonb(?)"
}

// loadStoredRequest reads back a request Enqueue stored, as checked then.
// A reference with no stored request is an invalid job (no IDs).
func loadStoredRequest(ctx context.Context, q querier, ref string) (*normalized, error) {
	n := &normalized{RequestArgs: RequestArgs{Reference: ref}}
	var ids, projects, received, extReason, extAt string
	err := q.queryRow(ctx, `SELECT kind, compliance_type, disclosure_type, distinct_ids, projects, received_at, digest, callback_url, callback_format, extension_reason, extension_notice_at FROM mpgdpr_request WHERE reference = ?`, ref).
		Scan(&n.RequestKind, &n.ComplianceType, &n.DisclosureType, &ids, &projects, &received, &n.digest, &n.CallbackURL, &n.CallbackFormat, &extReason, &extAt)
	if isNoRows(err) {
		return nil, &RequestError{"distinct ids", "none given"}
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(ids), &n.DistinctIDs); err != nil {
		return nil, fmt.Errorf("worker: request %q: distinct_ids: %w", ref, err)
	}
	if err := json.Unmarshal([]byte(projects), &n.Projects); err != nil {
		return nil, fmt.Errorf("worker: request %q: projects: %w", ref, err)
	}
	n.ReceivedAt = workerdb.ParseTime(received)
	if extReason != "" {
		n.Extension = &Extension{Reason: extReason, NoticeAt: workerdb.ParseTime(extAt)}
	}
	return n, nil
}

// insertScans gives each group a scan (a scan already waiting for the group
// makes this a no-op). The scan runs at once and snoozes until the oldest
// item's window ends: a short snooze is exact, where a job scheduled for
// later waits for River's scheduler (every 5 s).
func (w *Worker[TTx]) insertScans(ctx context.Context, tx dbTx, groups map[scanArgs]bool) error {
	for g := range groups {
		if _, err := w.river.InsertTx(ctx, tx.raw().(TTx), g, nil); err != nil {
			return err
		}
	}
	return nil
}
