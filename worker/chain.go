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
//
// The head row is locked from the first link of a transaction until it
// ends, so every statement after it delays every other writer of the
// chain (request-level events all share the chain ""): the transaction
// remembers the heads it holds (txHeads) and later links of the same chain
// skip the read.
func chainLink(ctx context.Context, q querier, e *event, fill func(*event) error) (seq int64, hash string, err error) {
	var prev string
	held := txHeads(q)
	if h, ok := held[e.Project]; ok {
		seq, prev = h.seq, h.head
	} else if seq, prev, err = lockHead(ctx, q, e.Project); err != nil {
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
	if held != nil {
		held[e.Project] = chainHead{seq, hash}
	}
	return seq, hash, nil
}

// lockHead reads a chain's head and locks it (SELECT ... FOR UPDATE on
// Postgres; SQLite's transaction holds the write lock), making the chain
// on its first use.
func lockHead(ctx context.Context, q querier, chain string) (seq int64, head string, err error) {
	lock := ""
	if _, pg := q.(pgxTx); pg {
		lock = " FOR UPDATE"
	}
	read := func() error {
		return q.queryRow(ctx, `SELECT seq, head FROM mpgdpr_chain WHERE chain = ?`+lock, chain).Scan(&seq, &head)
	}
	err = read()
	if isNoRows(err) {
		if _, err := q.exec(ctx, `INSERT INTO mpgdpr_chain (chain, seq, head) VALUES (?, 0, '') ON CONFLICT (chain) DO NOTHING`, chain); err != nil {
			return 0, "", err
		}
		err = read()
	}
	return seq, head, err
}

// chainHead is a chain's head as a transaction that holds it left it.
type chainHead struct {
	seq  int64
	head string
}

// txHeads is the heads q, a transaction, holds; nil for anything else.
func txHeads(q querier) map[string]chainHead {
	switch t := q.(type) {
	case sqlTx:
		return t.heads
	case pgxTx:
		return t.heads
	}
	return nil
}
