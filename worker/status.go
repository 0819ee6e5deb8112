package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// Status is the worker's picture of its work, per project.
type Status struct {
	Projects []ProjectStatus `json:"projects"`
}

// ProjectStatus counts one project's items by state, its open tasks and the
// creates and polls sent in the last minute (the budget in use).
type ProjectStatus struct {
	Name string `json:"name"`
	// Items by state: queued, batched, filed, open, done, failed, unknown
	// (always there), and cancelled once an item is.
	Items map[string]int `json:"items"`
	// OpenTasks are tasks followed and not yet ended.
	OpenTasks int `json:"open_tasks"`
	// CreatesLastMinute counts creates sent in the last minute, across all
	// workers; PollsLastMinute the polls sent in that minute (a task polled
	// 11 times counts 11). Against Rate × 60 they show the budget in use.
	CreatesLastMinute int     `json:"creates_last_minute"`
	PollsLastMinute   int     `json:"polls_last_minute"`
	Rate              float64 `json:"rate"`
}

// Status reports every configured project's counts.
func (w *Worker[TTx]) Status(ctx context.Context) (*Status, error) {
	st := &Status{}
	since := workerdb.FormatTime(time.Now().Add(-time.Minute))
	for _, name := range w.cfg.ProjectNames() {
		p, _ := w.cfg.Project(name)
		ps := ProjectStatus{Name: name, Items: map[string]int{}, Rate: p.Rate}
		for _, s := range []string{StateQueued, StateBatched, StateFiled, StateOpen, StateDone, StateFailed, StateUnknown} {
			ps.Items[s] = 0
		}
		if err := collect(ctx, w.db, `SELECT state, COUNT(*) FROM mpgdpr_item WHERE project = ? GROUP BY state`, []any{name}, func(r rowScanner) error {
			var s string
			var n int
			if err := r.Scan(&s, &n); err != nil {
				return err
			}
			ps.Items[s] = n
			return nil
		}); err != nil {
			return nil, err
		}
		if err := w.db.queryRow(ctx, `SELECT COUNT(*) FROM mpgdpr_task WHERE project = ? AND done_at = ''`, name).Scan(&ps.OpenTasks); err != nil {
			return nil, err
		}
		if err := w.db.queryRow(ctx, `SELECT COUNT(*) FROM mpgdpr_create c JOIN mpgdpr_batch b ON b.id = c.batch_id WHERE b.project = ? AND c.sent_at >= ?`, name, since).Scan(&ps.CreatesLastMinute); err != nil {
			return nil, err
		}
		if err := w.db.queryRow(ctx, `SELECT COUNT(*) FROM mpgdpr_poll WHERE project = ? AND at >= ?`, name, since).Scan(&ps.PollsLastMinute); err != nil {
			return nil, err
		}
		st.Projects = append(st.Projects, ps)
	}
	return st, nil
}

// RequestStatus is what the worker knows of one request.
type RequestStatus struct {
	Reference      string `json:"reference"`
	Kind           Kind   `json:"kind"`
	ComplianceType string `json:"compliance_type"`
	DisclosureType string `json:"disclosure_type,omitempty"`
	// State is the request's state (one of RequestStates).
	State      string    `json:"state"`
	Projects   []string  `json:"projects"`
	ReceivedAt time.Time `json:"received_at"`
	// CompletedAt is when the request ended (done, failed, unknown or
	// cancelled); nil while it has not.
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	// Due is the statutory deadline's last day (YYYY-MM-DD, UTC), with
	// the recorded extension; DeadlineBy is the end of that day.
	Due        string    `json:"due"`
	DeadlineBy time.Time `json:"deadline_by"`
	Extended   bool      `json:"extended"`
	// DeadlineState is evidence.State: on_time, at_risk, overdue, met or
	// met_late (an ended request counts as answered when it ended).
	DeadlineState string `json:"deadline_state"`
	// Callback is the delivery of the request's callback notices; nil when
	// it has no callback URL.
	Callback *CallbackStatus `json:"callback,omitempty"`
	Items    []ItemStatus    `json:"items"`
}

// ItemStatus is one project's part of a request.
type ItemStatus struct {
	Project string       `json:"project"`
	State   string       `json:"state"`
	Detail  string       `json:"detail"`
	Tasks   []TaskStatus `json:"tasks"`
	// Events are given only when asked (WithEvents).
	Events []Event `json:"events,omitempty"`
}

// TaskStatus is a Mixpanel task covering an item.
type TaskStatus struct {
	TaskID       string `json:"task_id"`
	Origin       string `json:"origin"` // filed (by this worker) or conflict (named by a 409)
	Status       string `json:"status"` // last status seen; empty before the first poll
	Polls        int    `json:"polls"`
	Done         bool   `json:"done"`
	ExportPath   string `json:"export_path"`
	ExportSize   int64  `json:"export_size"`
	ExportSHA256 string `json:"export_sha256"`
}

// Event is one entry of the append-only log.
type Event struct {
	At      time.Time `json:"at"`
	Event   string    `json:"event"`
	TaskID  string    `json:"task_id"`
	BatchID int64     `json:"batch_id"`
	Detail  string    `json:"detail"`
}

// ErrUnknownReference: no request has this reference.
var ErrUnknownReference = fmt.Errorf("worker: no request with this reference")

// StatusOption adjusts RequestStatus.
type StatusOption func(*statusOptions)

type statusOptions struct{ events bool }

// WithEvents makes RequestStatus list every event of each item and of its
// tasks. Without it, the answer is the request's state, deadline, items and
// tasks: what a caller polling a request needs, at a bounded cost.
func WithEvents() StatusOption { return func(o *statusOptions) { o.events = true } }

// RequestStatus reports a request: its state and deadline, its items and
// their tasks, and with WithEvents every event of each item and of its
// tasks, oldest first. An unknown reference is ErrUnknownReference.
func (w *Worker[TTx]) RequestStatus(ctx context.Context, reference string, opts ...StatusOption) (*RequestStatus, error) {
	var o statusOptions
	for _, opt := range opts {
		opt(&o)
	}
	h, err := loadRequestHead(ctx, w.db, reference)
	if err != nil {
		return nil, err
	}
	rs := &RequestStatus{Reference: reference, Kind: Kind(h.Kind), ComplianceType: h.ComplianceType, DisclosureType: h.DisclosureType,
		State: h.State, Projects: h.Projects, ReceivedAt: h.ReceivedAt, CompletedAt: h.completedAt()}
	dl := h.deadline(time.Now())
	rs.Due, rs.DeadlineBy, rs.Extended, rs.DeadlineState = dueDay(dl), dl.By, dl.Extended, string(dl.State)
	names := h.Projects
	for _, name := range names {
		is := ItemStatus{Project: name, State: StateQueued}
		var id int64
		err := w.db.queryRow(ctx, `SELECT id, state, detail FROM mpgdpr_item WHERE reference = ? AND project = ?`, reference, name).Scan(&id, &is.State, &is.Detail)
		if err != nil && !isNoRows(err) {
			return nil, err
		}
		if isNoRows(err) {
			is.Detail = "not yet taken in by a worker"
			rs.Items = append(rs.Items, is)
			continue
		}
		if err := collect(ctx, w.db, `SELECT DISTINCT t.task_id, t.origin, t.status, t.polls, t.done_at, t.export_path, t.export_size, t.export_sha256
			FROM mpgdpr_item_task l JOIN mpgdpr_task t ON t.project = l.project AND t.task_id = l.task_id WHERE l.item_id = ? ORDER BY t.task_id`, []any{id}, func(r rowScanner) error {
			var ts TaskStatus
			var done string
			if err := r.Scan(&ts.TaskID, &ts.Origin, &ts.Status, &ts.Polls, &done, &ts.ExportPath, &ts.ExportSize, &ts.ExportSHA256); err != nil {
				return err
			}
			ts.Done = done != ""
			is.Tasks = append(is.Tasks, ts)
			return nil
		}); err != nil {
			return nil, err
		}
		if !o.events {
			rs.Items = append(rs.Items, is)
			continue
		}
		if err := collect(ctx, w.db, `SELECT e.at, e.event, e.task_id, COALESCE(e.batch_id, 0), e.detail FROM mpgdpr_event e
			WHERE (e.item_id = ? OR (e.item_id IS NULL AND e.project = ? AND e.task_id IN (SELECT task_id FROM mpgdpr_item_task WHERE item_id = ?)))
			AND e.event <> ? ORDER BY e.id`, []any{id, name, id, workerdb.EventSealed}, func(r rowScanner) error {
			var e Event
			var at string
			if err := r.Scan(&at, &e.Event, &e.TaskID, &e.BatchID, &e.Detail); err != nil {
				return err
			}
			e.At = workerdb.ParseTime(at)
			is.Events = append(is.Events, e)
			return nil
		}); err != nil {
			return nil, err
		}
		rs.Items = append(rs.Items, is)
	}
	if rs.Callback, err = w.callbackStatus(ctx, w.db, reference); err != nil {
		return nil, err
	}
	return rs, nil
}

// requestHead is a request's row without its IDs.
type requestHead struct {
	Reference, Kind, ComplianceType, DisclosureType, State string
	Projects                                               []string
	ReceivedAt, EnqueuedAt, CompletedAt                    time.Time
	Extension                                              *Extension
}

// requestHeadColumns are what scanRequestHead reads, in its order.
const requestHeadColumns = `reference, kind, compliance_type, disclosure_type, state, projects, received_at, enqueued_at, completed_at, extension_reason, extension_notice_at`

func scanRequestHead(r rowScanner) (*requestHead, error) {
	var h requestHead
	var projects, received, enqueued, completed, extReason, extAt string
	if err := r.Scan(&h.Reference, &h.Kind, &h.ComplianceType, &h.DisclosureType, &h.State, &projects, &received, &enqueued, &completed, &extReason, &extAt); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(projects), &h.Projects); err != nil {
		return nil, fmt.Errorf("worker: request projects: %w", err)
	}
	h.ReceivedAt, h.EnqueuedAt, h.CompletedAt = workerdb.ParseTime(received), workerdb.ParseTime(enqueued), workerdb.ParseTime(completed)
	if extReason != "" {
		h.Extension = &Extension{Reason: extReason, NoticeAt: workerdb.ParseTime(extAt)}
	}
	return &h, nil
}

// loadRequestHead reads ref's row; ErrUnknownReference when there is none.
func loadRequestHead(ctx context.Context, q querier, ref string) (*requestHead, error) {
	h, err := scanRequestHead(q.queryRow(ctx, `SELECT `+requestHeadColumns+` FROM mpgdpr_request WHERE reference = ?`, ref))
	if isNoRows(err) {
		return nil, ErrUnknownReference
	}
	return h, err
}

func (h *requestHead) completedAt() *time.Time {
	if h.CompletedAt.IsZero() {
		return nil
	}
	t := h.CompletedAt
	return &t
}

// deadline is the request's statutory deadline as of now: an ended
// request (whatever its end) counts as answered when it ended.
func (h *requestHead) deadline(now time.Time) evidence.Deadline {
	return requestDeadline(h.ComplianceType, h.ReceivedAt, h.Extension, h.CompletedAt, now)
}

// dueDay is a deadline's last day as YYYY-MM-DD.
func dueDay(d evidence.Deadline) string {
	if d.Due.IsZero() {
		return ""
	}
	return d.Due.Format(time.DateOnly)
}

// enqueueResult is Enqueue's answer for the stored request ref.
func (w *Worker[TTx]) enqueueResult(ctx context.Context, q querier, ref string, duplicate bool) (*EnqueueResult, error) {
	h, err := loadRequestHead(ctx, q, ref)
	if err != nil {
		return nil, err
	}
	dl := h.deadline(time.Now())
	return &EnqueueResult{Reference: ref, Duplicate: duplicate, Projects: h.Projects, State: h.State, ReceivedAt: h.ReceivedAt,
		Due: dueDay(dl), DeadlineBy: dl.By, Extended: dl.Extended}, nil
}
