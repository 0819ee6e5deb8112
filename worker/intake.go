package worker

import (
	"context"
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
	n, err := w.cfg.checkRequest(job.Args)
	if err != nil {
		// Only a job inserted by another system gets here invalid: record
		// why (never the IDs) and stop; retrying would not help.
		if e := addEvent(ctx, w.db, event{Reference: job.Args.Reference, Event: workerdb.EventRejected, Detail: err.Error()}); e != nil {
			return e
		}
		return river.JobCancel(err)
	}
	now := time.Now()
	groups := map[scanArgs]bool{}
	err = inTx(ctx, w.db, func(tx dbTx) error {
		if _, err := storeRequest(ctx, tx, w.ids, n, now); err != nil {
			return err
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
		}
		// Every group of this request gets a scan (a pending one covers it).
		for _, project := range n.Projects {
			groups[scanArgs{Project: project, RequestKind: n.RequestKind, ComplianceType: n.ComplianceType, DisclosureType: n.DisclosureType}] = true
		}
		return w.insertScans(ctx, tx, groups)
	})
	if errors.Is(err, ErrConflictingRequest) {
		if e := addEvent(ctx, w.db, event{Reference: n.Reference, Event: workerdb.EventRejected, Detail: err.Error()}); e != nil {
			return e
		}
		return river.JobCancel(err)
	}
	return err
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
