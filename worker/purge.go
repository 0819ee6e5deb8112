package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/riverqueue/river"

	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// Purging: once a request has ended (every item done, failed or unknown)
// and IDRetention has passed, its plain distinct IDs are replaced, in every
// row that holds them, by their keyed hash (the ID key, Config.IDHasher),
// and a chained ids_purged event says so. The chains hold IDs only as keyed
// hashes, so the evidence verifies the same before and after.
//
// Requests are purged up to purgeGroup per transaction, each whole: its
// mpgdpr_request row (IDs, digest, ids_purged_at), the mpgdpr_create rows
// of every batch its items were in (the IDs that no request still kept
// plain shares), and its event. A purge killed at any point leaves each
// request plain or purged, and the next run goes on from there; concurrent
// purges lock the request rows in reference order and then the create rows
// in id order (Postgres), or run one at a time (SQLite), so no change is
// lost.

// PurgeOption adjusts a purge (Worker.Purge).
type PurgeOption func(*purgeOptions)

type purgeOptions struct {
	idsOlderThan     *time.Duration
	exportsOlderThan *time.Duration
	dryRun           bool
	now              time.Time
}

// PurgeOlderThan purges the IDs of requests that ended at least d ago,
// instead of Config.IDRetention (0: every ended request).
func PurgeOlderThan(d time.Duration) PurgeOption {
	return func(o *purgeOptions) { o.idsOlderThan = &d }
}

// PurgeExportsOlderThan deletes exports downloaded at least d ago, instead
// of Config.ExportRetention.
func PurgeExportsOlderThan(d time.Duration) PurgeOption {
	return func(o *purgeOptions) { o.exportsOlderThan = &d }
}

// PurgeDryRun counts what a purge would change and changes nothing.
func PurgeDryRun() PurgeOption { return func(o *purgeOptions) { o.dryRun = true } }

// PurgeResult says what a purge changed (or, dry, would change): counts
// only, never an ID.
type PurgeResult struct {
	DryRun bool `json:"dry_run"`
	// Requests whose plain IDs were replaced by their keyed hash, and how
	// many IDs that was (each counted once per request).
	Requests int `json:"requests"`
	IDs      int `json:"ids"`
	// CreateRows is how many mpgdpr_create rows were rewritten.
	CreateRows int `json:"create_rows"`
	// Waiting counts ended requests left plain for now: a batch they were
	// in is still being filed (the next purge takes them).
	Waiting int `json:"waiting"`
	// RiverJobs is how many River jobs' args lost IDs (jobs inserted by
	// another system, or by an older worker).
	RiverJobs int `json:"river_jobs"`
	// Exports deleted after their retention (exports.go).
	Exports int `json:"exports"`
}

// Purge replaces the plain distinct IDs of every request that ended at
// least IDRetention ago (or PurgeOlderThan) by their keyed hash, in every
// table; drops IDs left in River's job args; and deletes exports older than
// ExportRetention, recording each one's digest. The worker runs it
// periodically; it is idempotent, and safe beside running workers. An open
// request is never purged.
func (w *Worker[TTx]) Purge(ctx context.Context, opts ...PurgeOption) (*PurgeResult, error) {
	var o purgeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.now.IsZero() {
		o.now = time.Now()
	}
	idsAge, exportsAge := time.Duration(w.cfg.IDRetention), time.Duration(w.cfg.ExportRetention)
	if o.idsOlderThan != nil {
		idsAge = *o.idsOlderThan
	}
	if o.exportsOlderThan != nil {
		exportsAge = *o.exportsOlderThan
	}
	res := &PurgeResult{DryRun: o.dryRun}
	p := purger{db: w.db, h: w.ids, dry: o.dryRun, res: res}
	if err := p.riverArgs(ctx); err != nil {
		return res, fmt.Errorf("worker: purge: river job args: %w", err)
	}
	refs, err := endedRequests(ctx, w.db, o.now.Add(-idsAge))
	if err != nil {
		return res, fmt.Errorf("worker: purge: %w", err)
	}
	if err := p.requests(ctx, refs, o.now); err != nil {
		return res, fmt.Errorf("worker: purge: %w", err)
	}
	if err := w.purgeExports(ctx, o.now.Add(-exportsAge), o.dryRun, res); err != nil {
		return res, fmt.Errorf("worker: purge: exports: %w", err)
	}
	if !o.dryRun && w.db.dialect() == dialectSQLite {
		// The WAL still holds the pages as they were before: copy them
		// into the file (whose freed space secure_delete zeroed) and
		// empty it. A reader in another process may keep it from
		// emptying now; the next purge tries again.
		if _, err := w.db.exec(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			return res, fmt.Errorf("worker: purge: checkpoint: %w", err)
		}
	}
	return res, nil
}

// purgeWorker runs Purge periodically (purgeArgs), as River's leader
// schedules it: one worker at a time, and idempotent all the same.
type purgeWorker[TTx any] struct {
	river.WorkerDefaults[purgeArgs]
	w *Worker[TTx]
}

func (pw *purgeWorker[TTx]) Work(ctx context.Context, _ *river.Job[purgeArgs]) error {
	res, err := pw.w.Purge(ctx)
	if res != nil && (res.Requests > 0 || res.RiverJobs > 0 || res.Exports > 0) {
		pw.w.log.Info("mpgdpr worker: purged", "requests", res.Requests, "ids", res.IDs, "create_rows", res.CreateRows,
			"river_jobs", res.RiverJobs, "exports", res.Exports, "waiting", res.Waiting)
	}
	return err
}

// finalStatesSQL lists the states in which an item has ended.
const finalStatesSQL = `('` + StateDone + `', '` + StateFailed + `', '` + StateUnknown + `', '` + StateCancelled + `')`

// endedRequests lists the requests still plain whose items have all ended,
// the last at or before cutoff.
func endedRequests(ctx context.Context, q querier, cutoff time.Time) ([]string, error) {
	var refs []string
	err := collect(ctx, q, `SELECT r.reference FROM mpgdpr_request r JOIN mpgdpr_item i ON i.reference = r.reference
		WHERE r.ids_purged_at IS NULL
		GROUP BY r.reference
		HAVING SUM(CASE WHEN i.state IN `+finalStatesSQL+` THEN 0 ELSE 1 END) = 0 AND MAX(i.updated_at) <= ?
		ORDER BY r.reference`, []any{workerdb.FormatTime(cutoff)}, func(r rowScanner) error {
		var ref string
		if err := r.Scan(&ref); err != nil {
			return err
		}
		refs = append(refs, ref)
		return nil
	})
	return refs, err
}

type purger struct {
	db  database
	h   *evidence.IDHasher
	dry bool
	res *PurgeResult
}

// inTx runs f in a transaction, which a dry run rolls back.
func (p *purger) inTx(ctx context.Context, f func(tx dbTx) error) error {
	if !p.dry {
		return inTx(ctx, p.db, f)
	}
	tx, err := p.db.begin(ctx)
	if err != nil {
		return err
	}
	err = f(tx)
	_ = tx.rollback(context.WithoutCancel(ctx))
	return err
}

// purgeGroup is how many requests one transaction purges: each batch's
// create rows are rewritten once per group, not once per request.
const purgeGroup = 100

// requests purges ended requests (refs, sorted) a group per transaction.
func (p *purger) requests(ctx context.Context, refs []string, now time.Time) error {
	for len(refs) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(refs), purgeGroup)
		if err := p.group(ctx, refs[:n], now); err != nil {
			return err
		}
		refs = refs[n:]
	}
	return nil
}

// plainRequest is a request about to be purged.
type plainRequest struct {
	ref string
	a   RequestArgs
}

// group purges requests in one transaction: each is purged whole or not at
// all. Request rows are locked in reference order, then create rows in
// batch and id order (Postgres), so concurrent purges wait for each other
// and never deadlock.
func (p *purger) group(ctx context.Context, refs []string, now time.Time) error {
	var res PurgeResult
	err := p.inTx(ctx, func(tx dbTx) error {
		res = PurgeResult{}
		lock := ""
		if p.db.dialect() == dialectPostgres {
			lock = " FOR UPDATE"
		}
		var todo []plainRequest
		inGroup := map[string]bool{}
		byBatch := map[int64][]int{} // batch → indexes in todo
		var batches []int64
		for _, ref := range refs {
			r := plainRequest{ref: ref}
			var ids, projects string
			err := tx.queryRow(ctx, `SELECT kind, compliance_type, disclosure_type, distinct_ids, projects FROM mpgdpr_request WHERE reference = ? AND ids_purged_at IS NULL`+lock, ref).
				Scan(&r.a.RequestKind, &r.a.ComplianceType, &r.a.DisclosureType, &ids, &projects)
			if isNoRows(err) {
				continue // purged by another worker meanwhile
			}
			if err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(ids), &r.a.DistinctIDs); err != nil {
				return fmt.Errorf("request %q: distinct_ids: %w", ref, err)
			}
			if err := json.Unmarshal([]byte(projects), &r.a.Projects); err != nil {
				return fmt.Errorf("request %q: projects: %w", ref, err)
			}
			bs, planned, err := requestBatches(ctx, tx, ref)
			if err != nil {
				return err
			}
			if planned {
				res.Waiting++ // a batch still being filed reads these IDs
				continue
			}
			for _, b := range bs {
				if byBatch[b] == nil {
					batches = append(batches, b)
				}
				byBatch[b] = append(byBatch[b], len(todo))
			}
			inGroup[ref] = true
			todo = append(todo, r)
		}
		slices.Sort(batches)
		for _, b := range batches {
			mine := map[string]bool{}
			for _, i := range byBatch[b] {
				markAll(mine, todo[i].a.DistinctIDs)
			}
			n, err := p.createRows(ctx, tx, b, inGroup, mine, now, lock)
			if err != nil {
				return err
			}
			res.CreateRows += n
		}
		for _, r := range todo {
			hashed := make([]string, len(r.a.DistinctIDs))
			for i, id := range r.a.DistinctIDs {
				hashed[i] = p.h.Hash(id)
			}
			enc, _ := json.Marshal(hashed)
			if _, err := tx.exec(ctx, `UPDATE mpgdpr_request SET distinct_ids = ?, digest = ?, ids_purged_at = ? WHERE reference = ?`,
				string(enc), requestDigest(r.a, p.h), workerdb.FormatTime(now), r.ref); err != nil {
				return err
			}
			res.Requests++
			res.IDs += len(r.a.DistinctIDs)
			if err := addEvent(ctx, tx, event{At: now, Reference: r.ref, Event: workerdb.EventIDsPurged,
				Detail: fmt.Sprintf("%d distinct IDs replaced by their keyed hash in the request and the create rows of its batches, after the request ended", len(r.a.DistinctIDs))}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	p.res.Requests += res.Requests
	p.res.IDs += res.IDs
	p.res.CreateRows += res.CreateRows
	p.res.Waiting += res.Waiting
	return nil
}

// requestBatches lists, in id order, every batch the request's items were
// in (each round's: an item's "batched" events name them), and whether one
// of them is still being filed.
func requestBatches(ctx context.Context, q querier, ref string) (batches []int64, planned bool, err error) {
	err = collect(ctx, q, `SELECT b.id, b.state FROM mpgdpr_batch b WHERE b.id IN
		(SELECT e.batch_id FROM mpgdpr_event e WHERE e.reference = ? AND e.batch_id IS NOT NULL) ORDER BY b.id`, []any{ref}, func(r rowScanner) error {
		var id int64
		var state string
		if err := r.Scan(&id, &state); err != nil {
			return err
		}
		batches = append(batches, id)
		planned = planned || state == batchPlanned
		return nil
	})
	return batches, planned, err
}

// createRows replaces, in batch b's create rows, each of mine (the IDs of
// the group's requests in the batch) that no request outside the group,
// still plain and of the batch, holds, by its keyed hash; a row whose every
// request is then purged gets ids_purged_at. It returns how many rows
// changed.
func (p *purger) createRows(ctx context.Context, tx dbTx, b int64, inGroup, mine map[string]bool, now time.Time, lock string) (int, error) {
	type row struct {
		id        int64
		ids, cids []string
	}
	var rows []row
	// Lock the rows first (Postgres): what the other requests hold is read
	// after any purge that had them has committed.
	if err := collect(ctx, tx, `SELECT id, distinct_ids, conflict_ids FROM mpgdpr_create WHERE batch_id = ? ORDER BY id`+lock, []any{b}, func(r rowScanner) error {
		var c row
		var ids, cids string
		if err := r.Scan(&c.id, &ids, &cids); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(ids), &c.ids); err != nil {
			return fmt.Errorf("create %d: distinct_ids: %w", c.id, err)
		}
		if err := json.Unmarshal([]byte(cids), &c.cids); err != nil {
			return fmt.Errorf("create %d: conflict_ids: %w", c.id, err)
		}
		rows = append(rows, c)
		return nil
	}); err != nil {
		return 0, err
	}
	if len(rows) == 0 {
		return 0, nil
	}
	// IDs the batch's other requests still hold plain stay plain.
	keep := map[string]bool{}
	others := 0
	if err := collect(ctx, tx, `SELECT r.reference, r.distinct_ids FROM mpgdpr_request r WHERE r.ids_purged_at IS NULL AND r.reference IN
		(SELECT e.reference FROM mpgdpr_event e WHERE e.batch_id = ?)`, []any{b}, func(r rowScanner) error {
		var ref, enc string
		if err := r.Scan(&ref, &enc); err != nil {
			return err
		}
		if inGroup[ref] {
			return nil
		}
		var ids []string
		if err := json.Unmarshal([]byte(enc), &ids); err != nil {
			return err
		}
		others++
		markAll(keep, ids)
		return nil
	}); err != nil {
		return 0, err
	}
	purgedAt := any(nil)
	if others == 0 {
		purgedAt = workerdb.FormatTime(now)
	}
	replace := func(ids []string) bool {
		changed := false
		for i, id := range ids {
			if mine[id] && !keep[id] {
				ids[i] = p.h.Hash(id)
				changed = true
			}
		}
		return changed
	}
	n := 0
	for _, c := range rows {
		a, b := replace(c.ids), replace(c.cids)
		if !a && !b && purgedAt == nil {
			continue
		}
		ids, _ := json.Marshal(c.ids)
		cids, _ := json.Marshal(c.cids)
		if _, err := tx.exec(ctx, `UPDATE mpgdpr_create SET distinct_ids = ?, conflict_ids = ?, ids_purged_at = COALESCE(ids_purged_at, ?) WHERE id = ?`,
			string(ids), string(cids), purgedAt, c.id); err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

// riverArgs drops what a finished request job's args hold beyond its
// reference (jobs taken in before the worker did so itself at intake).
func (p *purger) riverArgs(ctx context.Context) error {
	has, build := `json_extract(args, '$.distinct_ids') IS NOT NULL`, `jsonb_object('reference', json_extract(args, '$.reference'))`
	if p.db.dialect() == dialectPostgres {
		has, build = `args -> 'distinct_ids' IS NOT NULL`, `jsonb_build_object('reference', args -> 'reference')`
	}
	where := ` WHERE kind = 'mpgdpr_request' AND state IN ('completed', 'cancelled', 'discarded') AND ` + has
	if p.dry {
		var n int
		if err := p.db.queryRow(ctx, `SELECT COUNT(*) FROM river_job`+where).Scan(&n); err != nil {
			return err
		}
		p.res.RiverJobs = n
		return nil
	}
	n, err := p.db.exec(ctx, `UPDATE river_job SET args = `+build+where)
	p.res.RiverJobs = int(n)
	return err
}
