package evidence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// maxRowProblems bounds the problems listed per table (the count goes on).
const maxRowProblems = 20

// RowProblem is a row of a table a report reads that its seals do not
// vouch for: changed since sealed, never sealed (inserted), or sealed but
// gone (deleted).
type RowProblem struct {
	// Row names it: "id 7 (reference R, project P)", "reference R",
	// "project P, task T".
	Row    string
	Detail string
}

// TableResult is the cross-check of one table a report reads against the
// seals in the chains (see seal.go).
type TableResult struct {
	Table string
	// Rows counts the rows whose seal matches.
	Rows int64
	// Unverifiable counts the rows no seal covers in a database that held
	// events before sealing began (schema version SealVersion), or whose
	// IDs cannot be keyed (no ID key given); Why says which.
	Unverifiable int64
	Why          string
	// Problems lists the first rows found wrong; Tampered counts them all.
	Problems []RowProblem
	Tampered int64
}

// OK reports a table with no row found wrong.
func (t TableResult) OK() bool { return t.Tampered == 0 }

func (t *TableResult) problem(row, format string, args ...any) {
	t.Tampered++
	if len(t.Problems) < maxRowProblems {
		t.Problems = append(t.Problems, RowProblem{Row: row, Detail: fmt.Sprintf(format, args...)})
	}
}

// VerifyOption configures DB.Verify.
type VerifyOption func(*verifyOptions)

type verifyOptions struct{ ids *IDHasher }

// WithIDKey gives Verify the worker's ID key, without which the rows that
// name people (mpgdpr_request) cannot be checked against their seals.
func WithIDKey(h *IDHasher) VerifyOption { return func(o *verifyOptions) { o.ids = h } }

// sealStart is from where rows are sealed: events after sinceEvent and
// items after sinceItem were written by a worker that seals; legacy is
// true when the database has no seals at all (schema before SealVersion).
type sealStart struct {
	sinceEvent, sinceItem, unchained int64
	legacy                           bool
}

func (d *DB) sealStart(ctx context.Context) (sealStart, error) {
	var s sealStart
	version, err := d.schemaVersion(ctx)
	if err != nil {
		return s, err
	}
	if version < SealVersion {
		s.legacy = true
		return s, nil
	}
	err = d.db.QueryRowContext(ctx, `SELECT since_event, since_item, unchained FROM mpgdpr_seal_start`).Scan(&s.sinceEvent, &s.sinceItem, &s.unchained)
	if errors.Is(err, sql.ErrNoRows) {
		return s, nil // none: every row must be sealed
	}
	return s, err
}

// legacyWhy says why a row without a seal is unverifiable.
var legacyWhy = fmt.Sprintf("written before schema version %d (rows not sealed)", SealVersion)

// verifyRows cross-checks every row a report reads against its seal.
func (d *DB) verifyRows(ctx context.Context, st sealStart, o verifyOptions) ([]TableResult, error) {
	if st.legacy {
		var out []TableResult
		for _, t := range []string{TableRequest, TableItem, TableTask} {
			var n int64
			if err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+t).Scan(&n); err != nil {
				return nil, err
			}
			out = append(out, TableResult{Table: t, Unverifiable: n, Why: legacyWhy})
		}
		return out, nil
	}
	req, err := d.verifyRequests(ctx, st, o.ids)
	if err != nil {
		return nil, err
	}
	items, err := d.verifyItems(ctx, st)
	if err != nil {
		return nil, err
	}
	tasks, err := d.verifyTasks(ctx, st)
	if err != nil {
		return nil, err
	}
	for _, c := range []struct {
		t   *TableResult
		q   string
		row func(key string) string
	}{
		{req, `SELECT DISTINCT e.reference FROM mpgdpr_event e WHERE e.event = ? AND e.chain_seq IS NOT NULL AND e.project = '' AND e.item_id IS NULL
			AND NOT EXISTS (SELECT 1 FROM mpgdpr_request r WHERE r.reference = e.reference) ORDER BY 1`, func(k string) string { return "reference " + strconv.Quote(k) }},
		{items, `SELECT DISTINCT ` + d.text("e.item_id") + ` FROM mpgdpr_event e WHERE e.event = ? AND e.chain_seq IS NOT NULL AND e.item_id IS NOT NULL
			AND NOT EXISTS (SELECT 1 FROM mpgdpr_item i WHERE i.id = e.item_id) ORDER BY 1`, func(k string) string { return "id " + k }},
		{tasks, `SELECT DISTINCT e.project || ' ' || e.task_id FROM mpgdpr_event e WHERE e.event = ? AND e.chain_seq IS NOT NULL AND e.item_id IS NULL AND e.task_id <> ''
			AND NOT EXISTS (SELECT 1 FROM mpgdpr_task t WHERE t.project = e.project AND t.task_id = e.task_id) ORDER BY 1`, func(k string) string {
			p, t, _ := strings.Cut(k, " ")
			return fmt.Sprintf("project %q, task %q", p, t)
		}},
	} {
		if err := d.eachString(ctx, c.q, func(k string) { c.t.problem(c.row(k), "sealed in the chain but no longer in the table (deleted)") }, workerdb.EventSealed); err != nil {
			return nil, err
		}
	}
	return []TableResult{*req, *items, *tasks}, nil
}

// text casts an integer column to text for a DISTINCT list of keys.
func (d *DB) text(col string) string { return "CAST(" + col + " AS TEXT)" }

func (d *DB) eachString(ctx context.Context, q string, f func(string), args ...any) error {
	rows, err := d.db.QueryContext(ctx, d.q(q), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		f(s)
	}
	return rows.Err()
}

// lastSeals maps each key to the digest of its last chained seal of table,
// read from q (rows of key, detail, chain_seq, in event order). Whether an
// event is chained is tested here, not in q: on the request chain ""
// "project = ” AND chain_seq IS NOT NULL" leads SQLite to scan the whole
// chain by its (project, chain_seq) index for every chunk.
func (d *DB) lastSeals(ctx context.Context, table, q string, args ...any) (map[string]string, error) {
	rows, err := d.db.QueryContext(ctx, d.q(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var key, detail string
		var seq sql.NullInt64
		if err := rows.Scan(&key, &detail, &seq); err != nil {
			return nil, err
		}
		if t, dg := parseSeal(detail); t == table && seq.Valid {
			out[key] = dg
		}
	}
	return out, rows.Err()
}

// queryRows reads every row of q with scan.
func queryRows[T any](ctx context.Context, d *DB, q string, args []any, scan func(*T, rowScanner) error) ([]T, error) {
	rows, err := d.db.QueryContext(ctx, d.q(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := scan(&v, rows); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func marks(n int) string { return "(" + strings.TrimSuffix(strings.Repeat("?,", n), ",") + ")" }

// check compares a row's digest with its last seal.
func (t *TableResult) check(row, digest string, seal string, sealed bool, mustBeSealed bool, why string) {
	switch {
	case !sealed && mustBeSealed:
		t.problem(row, "no seal in the chain (inserted, or its key columns were changed)")
	case !sealed:
		t.Unverifiable++
		t.Why = why
	case seal != digest:
		t.problem(row, "differs from its sealed digest (a reported column was changed)")
	default:
		t.Rows++
	}
}

func (d *DB) verifyRequests(ctx context.Context, st sealStart, h *IDHasher) (*TableResult, error) {
	t := &TableResult{Table: TableRequest}
	after := ""
	for {
		recs, err := queryRows(ctx, d, `SELECT `+RequestColumns+` FROM mpgdpr_request WHERE reference > ? ORDER BY reference LIMIT `+strconv.Itoa(chunk),
			[]any{after}, (*RequestRow).Scan)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			return t, nil
		}
		args := []any{workerdb.EventSealed}
		for _, r := range recs {
			args = append(args, r.Reference)
		}
		seals, err := d.lastSeals(ctx, TableRequest, `SELECT reference, detail, chain_seq FROM mpgdpr_event WHERE event = ? AND reference IN `+marks(len(recs))+`
			AND item_id IS NULL ORDER BY id`, args...)
		if err != nil {
			return nil, err
		}
		for i := range recs {
			r := &recs[i]
			seal, ok := seals[r.Reference]
			dg, err := r.Digest(h)
			if errors.Is(err, ErrNoIDKey) {
				t.Unverifiable++
				t.Why = "no ID key given: the distinct IDs cannot be checked"
				continue
			}
			t.check("reference "+strconv.Quote(r.Reference), dg, seal, ok, st.sinceEvent == 0, legacyWhy)
		}
		after = recs[len(recs)-1].Reference
	}
}

func (d *DB) verifyItems(ctx context.Context, st sealStart) (*TableResult, error) {
	t := &TableResult{Table: TableItem}
	var after int64
	for {
		items, err := queryRows(ctx, d, `SELECT `+ItemColumns+` FROM mpgdpr_item WHERE id > ? ORDER BY id LIMIT `+strconv.Itoa(chunk), []any{after}, (*ItemRow).Scan)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return t, nil
		}
		recs := make([]*ItemRow, len(items))
		byID := make(map[int64]*ItemRow, len(items))
		for i := range items {
			recs[i] = &items[i]
			byID[items[i].ID] = &items[i]
		}
		ids := make([]any, len(recs))
		refs := []any{workerdb.EventSealed}
		seenRef := map[string]bool{}
		for i, r := range recs {
			ids[i] = r.ID
			if !seenRef[r.Reference] {
				seenRef[r.Reference] = true
				refs = append(refs, r.Reference)
			}
		}
		links, err := queryRows(ctx, d, `SELECT `+LinkColumns+` FROM mpgdpr_item_task WHERE item_id IN `+marks(len(ids))+` ORDER BY `+LinkOrder, ids, (*LinkRow).Scan)
		if err != nil {
			return nil, err
		}
		for _, l := range links {
			if r := byID[l.ItemID]; r != nil {
				r.Links = append(r.Links, l)
			}
		}
		seals, err := d.lastSeals(ctx, TableItem, `SELECT `+d.text("item_id")+`, detail, chain_seq FROM mpgdpr_event WHERE event = ? AND reference IN `+marks(len(refs)-1)+`
			AND item_id IN `+marks(len(ids))+` ORDER BY id`, append(refs, ids...)...)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			seal, ok := seals[strconv.FormatInt(r.ID, 10)]
			t.check(fmt.Sprintf("id %d (reference %q, project %q)", r.ID, r.Reference, r.Project), r.Digest(), seal, ok, r.ID > st.sinceItem, legacyWhy)
		}
		after = recs[len(recs)-1].ID
	}
}

func (d *DB) verifyTasks(ctx context.Context, st sealStart) (*TableResult, error) {
	t := &TableResult{Table: TableTask}
	var afterProject, afterTask string
	first := true
	for {
		q := `SELECT ` + TaskColumns + ` FROM mpgdpr_task`
		var args []any
		if !first {
			q += ` WHERE project > ? OR (project = ? AND task_id > ?)`
			args = []any{afterProject, afterProject, afterTask}
		}
		recs, err := queryRows(ctx, d, q+` ORDER BY project, task_id LIMIT `+strconv.Itoa(chunk), args, (*TaskRow).Scan)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			return t, nil
		}
		var projects, tasks []any
		seenP, seenT := map[string]bool{}, map[string]bool{}
		for _, r := range recs {
			if !seenP[r.Project] {
				seenP[r.Project] = true
				projects = append(projects, r.Project)
			}
			if !seenT[r.TaskID] {
				seenT[r.TaskID] = true
				tasks = append(tasks, r.TaskID)
			}
		}
		args = append(append([]any{workerdb.EventSealed}, projects...), tasks...)
		seals, err := d.lastSeals(ctx, TableTask, `SELECT project || ' ' || task_id, detail, chain_seq FROM mpgdpr_event WHERE event = ? AND project IN `+marks(len(projects))+`
			AND task_id IN `+marks(len(tasks))+` AND item_id IS NULL ORDER BY id`, args...)
		if err != nil {
			return nil, err
		}
		for i := range recs {
			r := &recs[i]
			seal, ok := seals[r.Project+" "+r.TaskID]
			t.check(fmt.Sprintf("project %q, task %q", r.Project, r.TaskID), r.Digest(), seal, ok, st.sinceEvent == 0, legacyWhy)
		}
		afterProject, afterTask, first = recs[len(recs)-1].Project, recs[len(recs)-1].TaskID, false
	}
}
