package evidence

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// Problem kinds of a chain.
const (
	// Altered: an entry's content no longer matches its hash, or its hash
	// no longer follows from the entry before.
	Altered = "altered"
	// Removed: entries are missing (a gap in the sequence, or fewer than
	// the head records).
	Removed = "removed"
	// HeadMismatch: the chain does not end where its recorded or trusted
	// head says.
	HeadMismatch = "head_mismatch"
	// Reordered: the log's order (event ids) disagrees with the chain's.
	Reordered = "reordered"
)

// Problem is the first thing wrong with a chain.
type Problem struct {
	Kind string
	// Entry names the first entry concerned: its row id in the worker's
	// event log, or its line number in a journal.
	Entry int64
	// Seq is its position in the chain (from 1).
	Seq    int64
	Detail string
}

// String describes the problem.
func (p *Problem) String() string {
	return fmt.Sprintf("%s at entry %d (position %d): %s", p.Kind, p.Entry, p.Seq, p.Detail)
}

// ChainResult is the verification of one chain.
type ChainResult struct {
	// Chain names it: a project ("" for request-level events), or a
	// journal's path.
	Chain string
	// Entries counts the chained entries read; Head is the last one's hash.
	Entries int64
	Head    string
	// Unverifiable counts entries that carry no hash (written before the
	// chain existed, or a journal of an older version): they are neither
	// proven intact nor shown tampered.
	Unverifiable int64
	// Problem is the first problem found, nil if none.
	Problem *Problem
}

// OK reports a chain with no problem.
func (c ChainResult) OK() bool { return c.Problem == nil }

// Verification is the result of verifying every chain of a store and, for
// the worker's database, every row a report reads against its seal.
type Verification struct {
	Chains []ChainResult
	// Tables are the cross-checks of the tables a report reads
	// (mpgdpr_event's own rows first, then the sealed tables); empty for
	// journals.
	Tables []TableResult
}

// OK reports that no chain has a problem and no row was found wrong
// (entries without hashes and unsealed rows are not a problem; see
// Unverifiable and Complete).
func (v *Verification) OK() bool {
	for _, c := range v.Chains {
		if !c.OK() {
			return false
		}
	}
	for _, t := range v.Tables {
		if !t.OK() {
			return false
		}
	}
	return true
}

// Complete reports that every row a report reads was proven by its seal:
// none is unverifiable (written before sealing, or naming people while no
// ID key was given). `mpgdpr report verify` fails unless the verification
// is OK and complete.
func (v *Verification) Complete() bool {
	for _, t := range v.Tables {
		if t.Unverifiable > 0 {
			return false
		}
	}
	return true
}

// Unverifiable reports that some entries carry no hash.
func (v *Verification) Unverifiable() bool {
	for _, c := range v.Chains {
		if c.Unverifiable > 0 {
			return true
		}
	}
	return false
}

// Heads are the chain heads, to keep apart from the database (see
// HeadsFile).
func (v *Verification) Heads() []Head {
	var hs []Head
	for _, c := range v.Chains {
		if c.Entries > 0 {
			hs = append(hs, Head{Chain: c.Chain, Seq: c.Entries, Hash: c.Head})
		}
	}
	return hs
}

// Verify recomputes every chain of the worker's event log and compares each
// with its head in mpgdpr_chain, and with trusted (heads kept apart from the
// database, e.g. from a signed heads file) when given: the entry at each
// trusted head's position must still carry its hash. Within a chain, event
// ids must grow with the chain's sequence (the order a report reads events
// in), and no event may lack a hash unless it predates the chains. Then it
// cross-checks every row a report reads (mpgdpr_request, mpgdpr_item with
// its mpgdpr_item_task links, mpgdpr_task) against the last seal of the row
// in the chains, and every seal against a row still there (see Tables).
// Rows naming people are checked only with WithIDKey. It reads the log in
// one ordered pass and the tables in chunks (constant memory).
func (d *DB) Verify(ctx context.Context, trusted []Head, opts ...VerifyOption) (*Verification, error) {
	var o verifyOptions
	for _, opt := range opts {
		opt(&o)
	}
	st, err := d.sealStart(ctx)
	if err != nil {
		return nil, err
	}
	want := map[string]Head{}
	for _, h := range trusted {
		want[h.Chain] = h
	}
	heads := map[string]Head{}
	rows, err := d.db.QueryContext(ctx, `SELECT chain, seq, head FROM mpgdpr_chain`)
	if err != nil {
		return nil, fmt.Errorf("evidence: reading chain heads (is the worker's schema up to date?): %w", err)
	}
	for rows.Next() {
		var h Head
		if err := rows.Scan(&h.Chain, &h.Seq, &h.Hash); err != nil {
			rows.Close()
			return nil, err
		}
		heads[h.Chain] = h
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	v := &Verification{}
	unchained, events, err := d.unchainedEvents(ctx, st)
	if err != nil {
		return nil, err
	}
	rows, err = d.db.QueryContext(ctx, `SELECT id, project, chain_seq, hash, at, reference, item_id, batch_id, task_id, event, detail
		FROM mpgdpr_event WHERE chain_seq IS NOT NULL ORDER BY project, chain_seq`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cur *ChainResult
	var prev string
	var lastID int64
	finish := func() {
		if cur == nil {
			return
		}
		checkHead(cur, heads[cur.Chain], true)
		if h, ok := want[cur.Chain]; ok {
			checkTrusted(cur, h)
			delete(want, cur.Chain)
		}
		delete(heads, cur.Chain)
		v.Chains = append(v.Chains, *cur)
	}
	for rows.Next() {
		var e ChainEntry
		var id int64
		var hash string
		var item, batch sql.NullInt64
		if err := rows.Scan(&id, &e.Chain, &e.Seq, &hash, &e.At, &e.Reference, &item, &batch, &e.TaskID, &e.Event, &e.Detail); err != nil {
			return nil, err
		}
		e.ItemID, e.BatchID = item.Int64, batch.Int64
		if cur == nil || cur.Chain != e.Chain {
			finish()
			cur, prev, lastID = &ChainResult{Chain: e.Chain}, "", 0
		}
		if cur.Problem != nil {
			continue
		}
		switch {
		case e.Seq != cur.Entries+1:
			cur.Problem = &Problem{Kind: Removed, Entry: id, Seq: cur.Entries + 1,
				Detail: fmt.Sprintf("entries %d to %d of chain %q are missing before event id %d", cur.Entries+1, e.Seq-1, e.Chain, id)}
		case EventHash(prev, e) != hash:
			cur.Problem = &Problem{Kind: Altered, Entry: id, Seq: e.Seq,
				Detail: fmt.Sprintf("event id %d of chain %q does not match its hash (its content, or an entry before it, was changed)", id, e.Chain)}
		case id <= lastID:
			cur.Problem = &Problem{Kind: Reordered, Entry: id, Seq: e.Seq,
				Detail: fmt.Sprintf("event id %d of chain %q comes after event id %d in the chain but before it in the log (events were reordered)", id, e.Chain, lastID)}
		default:
			cur.Entries, cur.Head, prev, lastID = e.Seq, hash, hash, id
			if t, ok := want[e.Chain]; ok && t.Seq == e.Seq && t.Hash != hash {
				cur.Problem = &Problem{Kind: HeadMismatch, Entry: id, Seq: e.Seq,
					Detail: fmt.Sprintf("event id %d of chain %q is not the entry the trusted head names (hash %s, trusted %s): the chain was rewritten", id, e.Chain, short(hash), short(t.Hash))}
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	finish()
	// Chains whose head says entries exist but none are left.
	for _, h := range heads {
		if h.Seq > 0 {
			c := ChainResult{Chain: h.Chain}
			checkHead(&c, h, true)
			v.Chains = append(v.Chains, c)
		}
	}
	for _, h := range want {
		c := ChainResult{Chain: h.Chain}
		checkTrusted(&c, h)
		v.Chains = append(v.Chains, c)
	}
	if unchained > 0 {
		v.Chains = append(v.Chains, ChainResult{Chain: "(events without a hash)", Unverifiable: unchained})
	}
	tables, err := d.verifyRows(ctx, st, o)
	if err != nil {
		return nil, err
	}
	for _, c := range v.Chains {
		events.Rows += c.Entries
	}
	v.Tables = append([]TableResult{events}, tables...)
	return v, nil
}

// unchainedEvents counts the events without a hash that predate the chains
// (unverifiable) and reports every other one as tampered: an event written
// after sealing began, or more old ones than there were then.
func (d *DB) unchainedEvents(ctx context.Context, st sealStart) (old int64, t TableResult, err error) {
	t.Table = "mpgdpr_event"
	if err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM mpgdpr_event WHERE chain_seq IS NULL`).Scan(&old); err != nil {
		return 0, t, err
	}
	if st.legacy {
		return old, t, nil
	}
	err = d.eachString(ctx, `SELECT `+d.text("id")+` FROM mpgdpr_event WHERE chain_seq IS NULL AND id > ? ORDER BY id`, func(id string) {
		old--
		t.problem("id "+id, "carries no hash (inserted outside the chain)")
	}, st.sinceEvent)
	if err != nil {
		return 0, t, err
	}
	if old > st.unchained {
		t.problem("ids up to "+strconv.FormatInt(st.sinceEvent, 10), "%d events without a hash, where sealing began with %d (inserted outside the chain)", old, st.unchained)
	}
	return old, t, nil
}

// checkHead compares a verified chain with the head recorded beside it.
func checkHead(c *ChainResult, h Head, recorded bool) {
	if c.Problem != nil || h.Seq == 0 && h.Hash == "" {
		return
	}
	what := "the trusted head"
	if recorded {
		what = "the head recorded in mpgdpr_chain"
	}
	switch {
	case h.Seq > c.Entries:
		c.Problem = &Problem{Kind: Removed, Seq: c.Entries + 1,
			Detail: fmt.Sprintf("chain %q ends at entry %d but %s is entry %d: the last %d entries were removed", c.Chain, c.Entries, what, h.Seq, h.Seq-c.Entries)}
	case h.Seq == c.Entries && h.Hash != c.Head:
		c.Problem = &Problem{Kind: HeadMismatch, Seq: h.Seq,
			Detail: fmt.Sprintf("chain %q ends with hash %s, %s has %s", c.Chain, short(c.Head), what, short(h.Hash))}
	case h.Seq < c.Entries && recorded:
		c.Problem = &Problem{Kind: HeadMismatch, Seq: h.Seq,
			Detail: fmt.Sprintf("chain %q has %d entries, %s only %d", c.Chain, c.Entries, what, h.Seq)}
	}
}

// checkTrusted reports a chain shorter than a trusted head (Verify checks
// the hash at the trusted head's position as it reads the chain).
func checkTrusted(c *ChainResult, h Head) {
	if c.Problem == nil && h.Seq > c.Entries {
		checkHead(c, h, false)
	}
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}

// String summarises a verification, one line per chain.
func (v *Verification) String() string {
	var b strings.Builder
	for _, c := range v.Chains {
		name := c.Chain
		if name == "" {
			name = "(requests)"
		}
		switch {
		case c.Problem != nil:
			fmt.Fprintf(&b, "TAMPERED %s: %s\n", name, c.Problem)
		case c.Entries == 0 && c.Unverifiable > 0:
			fmt.Fprintf(&b, "UNVERIFIABLE %s: %d entries carry no hash\n", name, c.Unverifiable)
		default:
			fmt.Fprintf(&b, "ok %s: %d entries, head %s", name, c.Entries, c.Head)
			if c.Unverifiable > 0 {
				fmt.Fprintf(&b, " (%d more without a hash: unverifiable)", c.Unverifiable)
			}
			b.WriteByte('\n')
		}
	}
	for _, t := range v.Tables {
		for _, p := range t.Problems {
			fmt.Fprintf(&b, "TAMPERED %s %s: %s\n", t.Table, p.Row, p.Detail)
		}
		if more := t.Tampered - int64(len(t.Problems)); more > 0 {
			fmt.Fprintf(&b, "TAMPERED %s: %d more rows\n", t.Table, more)
		}
		if t.Unverifiable > 0 {
			fmt.Fprintf(&b, "UNVERIFIABLE %s: %d rows: %s\n", t.Table, t.Unverifiable, t.Why)
		}
		if t.OK() && t.Unverifiable == 0 {
			fmt.Fprintf(&b, "ok %s: %d rows checked\n", t.Table, t.Rows)
		}
	}
	return b.String()
}
