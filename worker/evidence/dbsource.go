package evidence

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// chunk is how many items DBSource reads at a time: memory is bounded by
// it, whatever the number of requests.
const chunk = 500

// Events of the worker's log a record shows as notes.
var noteEvents = map[string]bool{
	workerdb.EventUnknown: true, workerdb.EventRefused: true, workerdb.EventFailed: true,
	workerdb.EventResubmitted: true, workerdb.EventExportError: true, workerdb.EventRejected: true,
	workerdb.EventCancelRequested: true, workerdb.EventCancelRefused: true, workerdb.EventCancelled: true,
}

// Records yields one record per request and project from the worker's
// tables (mpgdpr_request, mpgdpr_item, mpgdpr_item_task, mpgdpr_task and the
// event log), in the order the items were taken in, reading chunk items at a time.
// A request not yet taken in by a worker yields one record per project it
// names, in the source state "received".
func (d *DB) Records(ctx context.Context, f Filter, yield func(*Record) error) error {
	var last int64
	for {
		recs, ids, err := d.itemChunk(ctx, f, last)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			break
		}
		last = ids[len(ids)-1]
		if err := d.fill(ctx, recs, ids); err != nil {
			return err
		}
		for _, r := range recs {
			if err := yield(r); err != nil {
				return err
			}
		}
	}
	return d.pending(ctx, f, yield)
}

func (d *DB) where(f Filter, args *[]any) string {
	var w []string
	if f.Project != "" {
		w = append(w, "i.project = ?")
		*args = append(*args, f.Project)
	}
	if !f.Since.IsZero() {
		w = append(w, "r.received_at >= ?")
		*args = append(*args, workerdb.FormatTime(f.Since))
	}
	if !f.Until.IsZero() {
		w = append(w, "r.received_at < ?")
		*args = append(*args, workerdb.FormatTime(f.Until))
	}
	if len(w) == 0 {
		return ""
	}
	return " AND " + strings.Join(w, " AND ")
}

func (d *DB) itemChunk(ctx context.Context, f Filter, after int64) ([]*Record, []int64, error) {
	args := []any{after}
	purged, err := d.purgedColumn(ctx)
	if err != nil {
		return nil, nil, err
	}
	q := `SELECT i.id, i.reference, i.project, i.kind, i.compliance_type, i.n_ids, i.state, i.resubmits, r.received_at, r.distinct_ids, ` + purged + `
		FROM mpgdpr_item i JOIN mpgdpr_request r ON r.reference = i.reference WHERE i.id > ?` + d.where(f, &args) + ` ORDER BY i.id LIMIT ` + strconv.Itoa(chunk)
	rows, err := d.db.QueryContext(ctx, d.q(q), args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var recs []*Record
	var ids []int64
	for rows.Next() {
		var r Record
		var id int64
		var received, dids string
		var purgedAt sql.NullString
		if err := rows.Scan(&id, &r.Reference, &r.Project, &r.Kind, &r.ComplianceType, &r.IDs, &r.SourceState, &r.Resubmissions, &received, &dids, &purgedAt); err != nil {
			return nil, nil, err
		}
		r.IDsKeyed = purgedAt.Valid
		r.ReceivedAt = workerdb.ParseTime(received)
		_ = json.Unmarshal([]byte(dids), &r.DistinctIDs)
		recs = append(recs, &r)
		ids = append(ids, id)
	}
	return recs, ids, rows.Err()
}

// fill adds tasks, statuses, completion and notes to a chunk of items.
func (d *DB) fill(ctx context.Context, recs []*Record, ids []int64) error {
	byID := make(map[int64]*Record, len(ids))
	in := make([]string, len(ids))
	args := make([]any, len(ids))
	for i, id := range ids {
		byID[id] = recs[i]
		in[i], args[i] = "?", id
	}
	list := "(" + strings.Join(in, ",") + ")"
	// The tasks linked to each item, with what the task table knows.
	type taskKey struct{ project, task string }
	taskOf := map[taskKey][]*Task{}
	rows, err := d.db.QueryContext(ctx, d.q(`SELECT l.item_id, l.task_id, l.origin, l.linked_at, t.done_at, t.export_size, t.export_sha256
		FROM mpgdpr_item_task l LEFT JOIN mpgdpr_task t ON t.project = l.project AND t.task_id = l.task_id
		WHERE l.item_id IN `+list+` ORDER BY l.item_id, l.round, l.linked_at, l.task_id`), args...)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id, size sql.NullInt64
		var task, origin, linked string
		var done, sha sql.NullString
		if err := rows.Scan(&id, &task, &origin, &linked, &done, &size, &sha); err != nil {
			rows.Close()
			return err
		}
		r := byID[id.Int64]
		// A task linked again in a later round (resubmission) is one task.
		dup := false
		for _, t := range r.Tasks {
			dup = dup || t.TaskID == task
		}
		if dup {
			continue
		}
		r.Tasks = append(r.Tasks, Task{TaskID: task, Origin: origin, FiledAt: workerdb.ParseTime(linked), DoneAt: workerdb.ParseTime(done.String),
			ExportBytes: size.Int64, ExportSHA256: sha.String})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var tasks, projects []any
	var tin, pin []string
	seenProject := map[string]bool{}
	for _, r := range recs {
		for i := range r.Tasks {
			k := taskKey{r.Project, r.Tasks[i].TaskID}
			if _, ok := taskOf[k]; !ok {
				tasks = append(tasks, k.task)
				tin = append(tin, "?")
			}
			if !seenProject[r.Project] {
				seenProject[r.Project] = true
				projects = append(projects, r.Project)
				pin = append(pin, "?")
			}
			taskOf[k] = append(taskOf[k], &r.Tasks[i])
		}
	}
	// The item's own events: filing times, completion, notes, chain hash.
	// By reference too, so that the (reference, id) index is used.
	refs := make([]string, 0, len(recs))
	eargs := make([]any, 0, 2*len(recs))
	seenRef := map[string]bool{}
	for _, r := range recs {
		if !seenRef[r.Reference] {
			seenRef[r.Reference] = true
			refs = append(refs, "?")
			eargs = append(eargs, r.Reference)
		}
	}
	eargs = append(eargs, args...)
	rows, err = d.db.QueryContext(ctx, d.q(`SELECT item_id, at, event, task_id, detail, hash FROM mpgdpr_event
		WHERE reference IN (`+strings.Join(refs, ",")+`) AND item_id IN `+list+` ORDER BY id`), eargs...)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id int64
		var at, ev, task, detail, hash string
		if err := rows.Scan(&id, &at, &ev, &task, &detail, &hash); err != nil {
			rows.Close()
			return err
		}
		r := byID[id]
		t := workerdb.ParseTime(at)
		switch ev {
		case workerdb.EventFiled, workerdb.EventConflict:
			for i := range r.Tasks {
				if r.Tasks[i].TaskID == task && task != "" {
					r.Tasks[i].FiledAt = t
				}
			}
		case workerdb.EventDone:
			r.CompletedAt = t
		case workerdb.EventResubmitted:
			// A resubmission reopens the request until its new tasks end.
			r.CompletedAt = time.Time{}
		case workerdb.EventCancelled:
			r.CancelledAt = t
		}
		if noteEvents[ev] {
			r.Notes = append(r.Notes, Note{At: t, Event: ev, TaskID: task, Detail: detail})
		}
		if hash != "" {
			r.ChainHash = hash
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if err := d.extensions(ctx, recs); err != nil {
		return err
	}
	if len(tasks) == 0 {
		return nil
	}
	// The tasks' events: statuses seen and export errors (through the
	// (project, task_id) index).
	rows, err = d.db.QueryContext(ctx, d.q(`SELECT project, task_id, at, event, detail FROM mpgdpr_event
		WHERE project IN (`+strings.Join(pin, ",")+`) AND task_id IN (`+strings.Join(tin, ",")+`) AND item_id IS NULL ORDER BY id`), append(projects, tasks...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var project, task, at, ev, detail string
		if err := rows.Scan(&project, &task, &at, &ev, &detail); err != nil {
			return err
		}
		ts := taskOf[taskKey{project, task}]
		t := workerdb.ParseTime(at)
		for _, tk := range ts {
			switch ev {
			case workerdb.EventStatus:
				tk.Statuses = append(tk.Statuses, StatusSeen{Status: detail, At: t})
			}
		}
		if ev == workerdb.EventExportError {
			seen := map[*Record]bool{}
			for _, r := range recs {
				if r.Project != project || seen[r] {
					continue
				}
				for _, tk := range r.Tasks {
					if tk.TaskID == task {
						seen[r] = true
						r.Notes = append(r.Notes, Note{At: t, Event: ev, TaskID: task, Detail: detail})
						break
					}
				}
			}
		}
	}
	return rows.Err()
}

// purgedColumn is mpgdpr_request's ids_purged_at as the report's queries
// select it (as r), or NULL in a database older than the column.
func (d *DB) purgedColumn(ctx context.Context) (string, error) {
	v, err := d.schemaVersion(ctx)
	if err != nil {
		return "", err
	}
	if v < SealVersion {
		return "NULL", nil
	}
	return "r.ids_purged_at", nil
}

// schemaVersion is the worker's schema version of the database (read once).
func (d *DB) schemaVersion(ctx context.Context) (int64, error) {
	d.schemaMu.Lock()
	defer d.schemaMu.Unlock()
	if d.schema == 0 {
		if err := d.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM mpgdpr_schema`).Scan(&d.schema); err != nil {
			return 0, fmt.Errorf("evidence: reading the schema version: %w", err)
		}
	}
	return d.schema, nil
}

// pending yields the requests no worker has taken in yet (no item).
func (d *DB) pending(ctx context.Context, f Filter, yield func(*Record) error) error {
	var args []any
	w := d.where(Filter{Since: f.Since, Until: f.Until}, &args)
	purged, err := d.purgedColumn(ctx)
	if err != nil {
		return err
	}
	rows, err := d.db.QueryContext(ctx, d.q(`SELECT r.reference, r.kind, r.compliance_type, r.distinct_ids, r.projects, r.received_at, `+purged+` FROM mpgdpr_request r
		WHERE NOT EXISTS (SELECT 1 FROM mpgdpr_item i WHERE i.reference = r.reference)`+w+` ORDER BY r.reference`), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var recs []*Record
	for rows.Next() {
		var ref, kind, ct, dids, projects, received string
		var purgedAt sql.NullString
		if err := rows.Scan(&ref, &kind, &ct, &dids, &projects, &received, &purgedAt); err != nil {
			return err
		}
		var ids, names []string
		_ = json.Unmarshal([]byte(dids), &ids)
		_ = json.Unmarshal([]byte(projects), &names)
		for _, p := range names {
			if f.Project != "" && p != f.Project {
				continue
			}
			r := &Record{Reference: ref, Project: p, Kind: kind, ComplianceType: ct, DistinctIDs: ids, IDs: len(ids), IDsKeyed: purgedAt.Valid,
				ReceivedAt: workerdb.ParseTime(received), SourceState: "received"}
			recs = append(recs, r)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	// Read after the rows are closed: SQLite's one connection.
	for i := 0; i < len(recs); i += chunk {
		part := recs[i:min(i+chunk, len(recs))]
		if err := d.extensions(ctx, part); err != nil {
			return err
		}
		for _, r := range part {
			if err := yield(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// extensions sets each record's Extension from its request's chained
// "extended" event (the last one, if several), which the worker records
// when it stores a request with an extension.
func (d *DB) extensions(ctx context.Context, recs []*Record) error {
	byRef := map[string][]*Record{}
	var in []string
	var args []any
	for _, r := range recs {
		if _, ok := byRef[r.Reference]; !ok {
			in = append(in, "?")
			args = append(args, r.Reference)
		}
		byRef[r.Reference] = append(byRef[r.Reference], r)
	}
	if len(in) == 0 {
		return nil
	}
	args = append(args, workerdb.EventExtended)
	rows, err := d.db.QueryContext(ctx, d.q(`SELECT reference, detail FROM mpgdpr_event
		WHERE reference IN (`+strings.Join(in, ",")+`) AND event = ? AND item_id IS NULL ORDER BY id`), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var ref, detail string
		if err := rows.Scan(&ref, &detail); err != nil {
			return err
		}
		reason, at, ok := ParseExtensionDetail(detail)
		if !ok {
			continue
		}
		for _, r := range byRef[ref] {
			r.Extension = &Extension{Reference: ref, Reason: reason, NoticeAt: at}
		}
	}
	return rows.Err()
}
