package evidence

import "time"

// Record is the evidence about one request (the caller's reference) in one
// project.
type Record struct {
	// Reference is the caller's id for the request (a DSR ticket id).
	Reference string
	// Project is the Mixpanel project (the worker's project name, or for
	// a journal the API host unless named).
	Project string
	// Kind is "deletion" or "retrieval".
	Kind string
	// ComplianceType is "GDPR" or "CCPA"; it chooses the Regulation.
	ComplianceType string
	// DistinctIDs name the person; IDs counts them (a source may give the
	// count only).
	DistinctIDs []string
	IDs         int
	// IDsKeyed reports DistinctIDs that are already the keyed hashes of the
	// IDs (HMAC-SHA-256 under the worker's ID key), written by a purge once
	// the request ended: a report shows them as they are.
	IDsKeyed bool
	// ReceivedAt is when the request was received (the caller's time).
	ReceivedAt time.Time
	// Tasks are the Mixpanel tasks that covered the request, in the order
	// they were linked to it.
	Tasks []Task
	// CompletedAt is when every covering task was confirmed SUCCESS (and
	// every export checked); zero while not completed.
	CompletedAt time.Time
	// CancelledAt is when the request was cancelled in this project
	// (before filing, or Mixpanel revoked its task): it ended, not done.
	CancelledAt time.Time
	// SourceState is the source's own state for the request (the worker's
	// item state: queued, batched, filed, open, done, failed, unknown).
	SourceState string
	// Resubmissions counts the times the request was filed again after a
	// FAILURE or NOT_FOUND.
	Resubmissions int
	// Notes are failures, unknown outcomes, refusals and export errors,
	// oldest first.
	Notes []Note
	// Extension, if the deadline was extended (see Policy.Extend).
	Extension *Extension
	// Deadline is set by Policy.Evaluate.
	Deadline Deadline
	// ChainHash is the hash of the last chained entry about this record's
	// item, when the source has one: DB.Verify proves that entry is in its
	// chain, and every other value of the record matches a sealed row or a
	// chained event, so it ties a report line to the verified history.
	ChainHash string
}

// Task is one Mixpanel task covering a record.
type Task struct {
	TaskID string
	// Origin is "filed" (this request's create) or "conflict" (a 409 named
	// the task as already covering some of the IDs).
	Origin string
	// FiledAt is when the task was filed, or named by the 409.
	FiledAt time.Time
	// Statuses are the statuses seen, each the first time it was seen.
	Statuses []StatusSeen
	// DoneAt is when the task was seen in a terminal status.
	DoneAt time.Time
	// ExportBytes and ExportSHA256 describe a retrieval's downloaded export.
	ExportBytes  int64
	ExportSHA256 string
}

// StatusSeen is a task status and when it was first seen.
type StatusSeen struct {
	Status string
	At     time.Time
}

// Note is an event worth an auditor's attention: a failure, an unknown
// outcome, a refused create, a resubmission, an export error.
type Note struct {
	At     time.Time
	Event  string
	TaskID string
	Detail string
}

// LastStatus is the latest status seen of any covering task, and when.
func (r *Record) LastStatus() (string, time.Time) {
	var s string
	var at time.Time
	for _, t := range r.Tasks {
		for _, st := range t.Statuses {
			if !st.At.Before(at) {
				s, at = st.Status, st.At
			}
		}
	}
	return s, at
}

// FirstFiledAt is when the first covering task was filed or named.
func (r *Record) FirstFiledAt() time.Time {
	var first time.Time
	for _, t := range r.Tasks {
		if !t.FiledAt.IsZero() && (first.IsZero() || t.FiledAt.Before(first)) {
			first = t.FiledAt
		}
	}
	return first
}

// plainIDs are the record's distinct IDs while they are plain (none once
// purged), to find in free text.
func (r *Record) plainIDs() []string {
	if r.IDsKeyed {
		return nil
	}
	return r.DistinctIDs
}

// Completed reports whether the request was completed.
func (r *Record) Completed() bool { return !r.CompletedAt.IsZero() }

// Cancelled reports whether the request was cancelled (and not completed).
func (r *Record) Cancelled() bool { return !r.Completed() && !r.CancelledAt.IsZero() }

// Ended reports whether the request was completed or cancelled.
func (r *Record) Ended() bool { return r.Completed() || r.Cancelled() }

// TimeToComplete is CompletedAt - ReceivedAt, or 0 while not completed.
func (r *Record) TimeToComplete() time.Duration {
	if !r.Completed() {
		return 0
	}
	return r.CompletedAt.Sub(r.ReceivedAt)
}
