package worker

import (
	"context"

	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// The event log is tamper-evident: every event carries chain_seq and hash,
// chained to the previous event of the same project (request-level events,
// which have no project, form the chain ""). mpgdpr_chain holds each
// chain's head. evidence.VerifyDB recomputes the chains.
//
// chainMigration adds this to the schema (migration 2).
const chainMigration = `
ALTER TABLE mpgdpr_event ADD COLUMN chain_seq {{big}};
ALTER TABLE mpgdpr_event ADD COLUMN hash TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX mpgdpr_event_chain ON mpgdpr_event (project, chain_seq);
CREATE TABLE mpgdpr_chain (
	chain TEXT PRIMARY KEY,
	seq   {{big}} NOT NULL,
	head  TEXT NOT NULL
);
`

// chainLink takes the next link of e's chain and moves the chain's head to
// it, calling fill (if given) to complete e once the head is locked, in q, which must be a transaction (addEvent makes one when it is
// given the database): the head row stays locked (SELECT ... FOR UPDATE on
// Postgres; SQLite's transactions take the write lock when they begin)
// until the event's insert commits, so concurrent workers extend a chain
// one at a time and a rolled-back insert leaves the head where it was. The
// unique (project, chain_seq) index turns any fork into an error.
func chainLink(ctx context.Context, q querier, e *event, fill func(*event) error) (seq int64, hash string, err error) {
	if _, err := q.exec(ctx, `INSERT INTO mpgdpr_chain (chain, seq, head) VALUES (?, 0, '') ON CONFLICT (chain) DO NOTHING`, e.Project); err != nil {
		return 0, "", err
	}
	lock := ""
	if _, pg := q.(pgxTx); pg {
		lock = " FOR UPDATE"
	}
	var prev string
	if err := q.queryRow(ctx, `SELECT seq, head FROM mpgdpr_chain WHERE chain = ?`+lock, e.Project).Scan(&seq, &prev); err != nil {
		return 0, "", err
	}
	if fill != nil {
		if err := fill(e); err != nil {
			return 0, "", err
		}
	}
	seq++
	hash = evidence.EventHash(prev, evidence.ChainEntry{
		Chain: e.Project, Seq: seq, At: workerdb.FormatTime(e.At), Reference: e.Reference,
		ItemID: e.ItemID, BatchID: e.BatchID, TaskID: e.TaskID, Event: e.Event, Detail: e.Detail,
	})
	if _, err := q.exec(ctx, `UPDATE mpgdpr_chain SET seq = ?, head = ? WHERE chain = ?`, seq, hash, e.Project); err != nil {
		return 0, "", err
	}
	return seq, hash, nil
}
