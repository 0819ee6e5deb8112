package evidence

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/privacykit/mpgdpr/internal/digest"
)

// The worker seals every row a report reads: each time it creates or
// changes a row of mpgdpr_request, mpgdpr_item (with its mpgdpr_item_task
// links) or mpgdpr_task, it appends a chained event (workerdb.EventSealed) whose
// detail is "<table> <digest>", the digest of the row's reported columns as
// then stored. Verify recomputes each row's digest and compares it with the
// last sealed one, so an edit, insertion or deletion of a row shows even
// though the row itself is outside the event log. Distinct IDs enter a
// digest only as their keyed hashes (IDHasher): a purge that replaces a
// plain ID by its keyed hash leaves the digest as it was.

// SealVersion is the worker's schema version from which rows are sealed: a
// database that held events before it has rows no seal covers, which Verify
// reports unverifiable, not proven.
const SealVersion = 4

// Tables whose rows are sealed.
const (
	TableRequest = "mpgdpr_request"
	TableItem    = "mpgdpr_item"
	TableTask    = "mpgdpr_task"
	// TableItemTask rows are sealed with their item's row (ItemRow.Digest).
	TableItemTask = "mpgdpr_item_task"
)

// rowScanner is a row (database/sql's or pgx's) to scan.
type rowScanner interface{ Scan(dest ...any) error }

// RequestColumns are the columns of mpgdpr_request a seal covers, in
// RequestRow.Scan's order.
const RequestColumns = "reference, kind, compliance_type, disclosure_type, distinct_ids, projects, received_at, ids_purged_at"

// RequestRow is a request's sealed columns.
type RequestRow struct {
	Reference, Kind, ComplianceType, DisclosureType string
	DistinctIDs, Projects                           string // JSON lists, as stored
	ReceivedAt                                      string // as stored
	// IDsPurgedAt is set once the plain IDs were replaced by their keyed
	// hashes (a purge); empty while DistinctIDs holds plain IDs.
	IDsPurgedAt string
}

// Scan reads RequestColumns.
func (r *RequestRow) Scan(s rowScanner) error {
	var purged *string
	if err := s.Scan(&r.Reference, &r.Kind, &r.ComplianceType, &r.DisclosureType, &r.DistinctIDs, &r.Projects, &r.ReceivedAt, &purged); err != nil {
		return err
	}
	r.IDsPurgedAt = ""
	if purged != nil {
		r.IDsPurgedAt = *purged
	}
	return nil
}

// ErrNoIDKey is returned when a digest covering distinct IDs is asked for
// without the ID key.
var ErrNoIDKey = errors.New("evidence: the ID key is needed to check rows that name people (give the worker's --config, or --hash-ids)")

// KeyedIDs is the list of a row's distinct IDs as the evidence covers them:
// each plain ID hashed with h, or, in a purged row, each ID as it is (the
// purge wrote its keyed hash).
func KeyedIDs(h *IDHasher, ids []string, purged bool) ([]string, error) {
	if purged {
		return ids, nil
	}
	if h == nil {
		return nil, ErrNoIDKey
	}
	return h.names(ids), nil
}

// Digest is the row's seal, its IDs keyed with h (see KeyedIDs). A
// DistinctIDs that is not a JSON list of strings is digested as it is, so
// that it never matches a seal.
func (r *RequestRow) Digest(h *IDHasher) (string, error) {
	var ids []string
	keyed := r.DistinctIDs
	if err := json.Unmarshal([]byte(r.DistinctIDs), &ids); err == nil {
		k, err := KeyedIDs(h, ids, r.IDsPurgedAt != "")
		if err != nil {
			return "", err
		}
		keyed = strings.Join(k, "\n")
	} else {
		keyed = "invalid:" + keyed
	}
	return rowDigest(TableRequest, r.Reference, r.Kind, r.ComplianceType, r.DisclosureType, keyed, r.Projects, r.ReceivedAt), nil
}

// ItemColumns are the columns of mpgdpr_item a seal covers, in
// ItemRow.Scan's order.
const ItemColumns = "id, reference, project, kind, compliance_type, disclosure_type, n_ids, state, resubmits"

// ItemRow is an item's sealed columns, with its task links.
type ItemRow struct {
	ID                                                       int64
	Reference, Project, Kind, ComplianceType, DisclosureType string
	NIDs                                                     int64
	State                                                    string
	Resubmits                                                int64
	Links                                                    []LinkRow
}

// Scan reads ItemColumns (not the links).
func (r *ItemRow) Scan(s rowScanner) error {
	r.Links = r.Links[:0]
	return s.Scan(&r.ID, &r.Reference, &r.Project, &r.Kind, &r.ComplianceType, &r.DisclosureType, &r.NIDs, &r.State, &r.Resubmits)
}

// LinkColumns are the columns of mpgdpr_item_task a seal covers, in
// LinkRow.Scan's order; LinkOrder is the order an item's links are sealed in.
const (
	LinkColumns = "item_id, round, project, task_id, origin, linked_at"
	LinkOrder   = "item_id, round, task_id"
)

// LinkRow is one mpgdpr_item_task row.
type LinkRow struct {
	ItemID, Round                   int64
	Project, TaskID, Origin, Linked string
}

// Scan reads LinkColumns.
func (l *LinkRow) Scan(s rowScanner) error {
	return s.Scan(&l.ItemID, &l.Round, &l.Project, &l.TaskID, &l.Origin, &l.Linked)
}

// Digest is the item's seal: its columns and its links in LinkOrder.
func (r *ItemRow) Digest() string {
	parts := []string{strconv.FormatInt(r.ID, 10), r.Reference, r.Project, r.Kind, r.ComplianceType, r.DisclosureType,
		strconv.FormatInt(r.NIDs, 10), r.State, strconv.FormatInt(r.Resubmits, 10), strconv.Itoa(len(r.Links))}
	for _, l := range r.Links {
		parts = append(parts, strconv.FormatInt(l.ItemID, 10), strconv.FormatInt(l.Round, 10), l.Project, l.TaskID, l.Origin, l.Linked)
	}
	return rowDigest(TableItem, parts...)
}

// TaskColumns are the columns of mpgdpr_task a seal covers, in
// TaskRow.Scan's order.
const TaskColumns = "project, task_id, kind, origin, created_at, done_at, export_size, export_sha256"

// TaskRow is a task's sealed columns (not its status and poll counts, which
// a report takes from the status events).
type TaskRow struct {
	Project, TaskID, Kind, Origin, CreatedAt, DoneAt string
	ExportSize                                       int64
	ExportSHA256                                     string
}

// Scan reads TaskColumns.
func (t *TaskRow) Scan(s rowScanner) error {
	return s.Scan(&t.Project, &t.TaskID, &t.Kind, &t.Origin, &t.CreatedAt, &t.DoneAt, &t.ExportSize, &t.ExportSHA256)
}

// Digest is the task's seal.
func (t *TaskRow) Digest() string {
	return rowDigest(TableTask, t.Project, t.TaskID, t.Kind, t.Origin, t.CreatedAt, t.DoneAt, strconv.FormatInt(t.ExportSize, 10), t.ExportSHA256)
}

// SealDetail is a seal event's detail: the table and the digest.
func SealDetail(table, digest string) string { return table + " " + digest }

// parseSeal splits a seal event's detail.
func parseSeal(detail string) (table, digest string) {
	table, digest, _ = strings.Cut(detail, " ")
	return table, digest
}

// rowDomain separates row digests from the chain's hashes.
const rowDomain = "mpgdpr-row-v1"

// rowDigest is hex(SHA-256(domain, table, parts)), each part prefixed with
// its length (as EventHash).
func rowDigest(table string, parts ...string) string {
	return lengthHash(append([]string{rowDomain, table}, parts...)...)
}

// lengthHash is the repository's one length-prefixed SHA-256
// (internal/digest), so that no two different lists hash alike by moving
// bytes between parts.
func lengthHash(parts ...string) string { return digest.Parts(parts...) }
