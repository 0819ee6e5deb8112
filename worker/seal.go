package worker

import (
	"context"
	"fmt"

	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// Every row a report reads is sealed (see package evidence, seal.go): each
// write to mpgdpr_request, mpgdpr_item, mpgdpr_item_task or mpgdpr_task is
// followed, in the same transaction, by a chained "sealed" event carrying
// the digest of the row as stored, distinct IDs keyed with the ID key.
//
// sealMigration (migration 4, evidence.SealVersion) records from which
// event and item on rows are sealed, and how many events carried no hash
// then: the rows of a database that held events before are reported
// unverifiable until sealed by a later change, and any event without a
// hash written after is reported tampered. It also adds
// ids_purged_at, set when a purge replaced a row's plain IDs by their keyed
// hashes (NULL while they are plain).
const sealMigration = `
ALTER TABLE mpgdpr_request ADD COLUMN ids_purged_at TEXT;
ALTER TABLE mpgdpr_create ADD COLUMN ids_purged_at TEXT;
CREATE TABLE mpgdpr_seal_start (since_event {{big}} NOT NULL, since_item {{big}} NOT NULL, unchained {{big}} NOT NULL);
INSERT INTO mpgdpr_seal_start (since_event, since_item, unchained) SELECT (SELECT COALESCE(MAX(id), 0) FROM mpgdpr_event),
	(SELECT COALESCE(MAX(id), 0) FROM mpgdpr_item), (SELECT COUNT(*) FROM mpgdpr_event WHERE chain_seq IS NULL);
`

// A seal reads its row once the chain's head is locked (appendEvent's
// fill): on Postgres, a transaction that changed the row seals it after
// every earlier sealing transaction of the chain committed, so the last
// seal of a row always sees its last state, even when two transactions
// change the same item at once (one linking a task, one moving its state).

// sealRequest seals the request row ref.
func sealRequest(ctx context.Context, q querier, h *evidence.IDHasher, ref string) error {
	return appendEvent(ctx, q, event{Reference: ref, Event: workerdb.EventSealed}, func(e *event) error {
		var r evidence.RequestRow
		if err := r.Scan(q.queryRow(ctx, `SELECT `+evidence.RequestColumns+` FROM mpgdpr_request WHERE reference = ?`, ref)); err != nil {
			return fmt.Errorf("worker: seal request: %w", err)
		}
		d, err := r.Digest(h)
		if err != nil {
			return err
		}
		e.Detail = evidence.SealDetail(evidence.TableRequest, d)
		return nil
	})
}

// sealItem seals the item row id, of project, with its task links.
func sealItem(ctx context.Context, q querier, project string, id int64) error {
	return appendEvent(ctx, q, event{Project: project, ItemID: id, Event: workerdb.EventSealed}, func(e *event) error {
		var r evidence.ItemRow
		if err := r.Scan(q.queryRow(ctx, `SELECT `+evidence.ItemColumns+` FROM mpgdpr_item WHERE id = ?`, id)); err != nil {
			return fmt.Errorf("worker: seal item: %w", err)
		}
		rows, err := q.query(ctx, `SELECT `+evidence.LinkColumns+` FROM mpgdpr_item_task WHERE item_id = ? ORDER BY `+evidence.LinkOrder, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var l evidence.LinkRow
			if err := l.Scan(rows); err != nil {
				return err
			}
			r.Links = append(r.Links, l)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		e.Reference, e.Detail = r.Reference, evidence.SealDetail(evidence.TableItem, r.Digest())
		return nil
	})
}

// sealTask seals the task row (project, taskID).
func sealTask(ctx context.Context, q querier, project, taskID string) error {
	return appendEvent(ctx, q, event{Project: project, TaskID: taskID, Event: workerdb.EventSealed}, func(e *event) error {
		var t evidence.TaskRow
		if err := t.Scan(q.queryRow(ctx, `SELECT `+evidence.TaskColumns+` FROM mpgdpr_task WHERE project = ? AND task_id = ?`, project, taskID)); err != nil {
			return fmt.Errorf("worker: seal task: %w", err)
		}
		e.Detail = evidence.SealDetail(evidence.TableTask, t.Digest())
		return nil
	})
}
