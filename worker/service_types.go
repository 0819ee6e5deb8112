package worker

import (
	"errors"
	"io"
	"time"
)

// ListOptions selects a page of requests for ListRequests.
type ListOptions struct {
	// State is one of RequestStates, or "" for every state.
	State string
	// After is the cursor of the page before (RequestPage.Next); "" for
	// the first page.
	After string
	// Limit is the page size, 1 to 500; 0 means 50.
	Limit int
}

// RequestPage is one page of requests, oldest first.
type RequestPage struct {
	Requests []RequestSummary `json:"requests"`
	// Next is the cursor of the following page; empty on the last one.
	Next string `json:"next,omitempty"`
}

// RequestSummary is one request in a list.
type RequestSummary struct {
	Reference      string     `json:"reference"`
	Kind           Kind       `json:"kind"`
	ComplianceType string     `json:"compliance_type"`
	State          string     `json:"state"`
	Projects       []string   `json:"projects"`
	ReceivedAt     time.Time  `json:"received_at"`
	CompletedAt    *time.Time `json:"completed_at,omitempty"`
	// Due is the statutory deadline's last day (YYYY-MM-DD, UTC).
	Due string `json:"due"`
}

// CancelResult says what Cancel did to each of a request's items.
type CancelResult struct {
	Reference string       `json:"reference"`
	Items     []CancelItem `json:"items"`
}

// CancelItem is one project's part of a cancellation.
type CancelItem struct {
	Project string `json:"project"`
	// State is the item's state after the call.
	State string `json:"state"`
	// Outcome: "cancelled", "pending" (a worker will ask Mixpanel),
	// "too_late" (Mixpanel has started it) or "already_ended".
	Outcome string `json:"outcome"`
	Detail  string `json:"detail"`
}

// ErrNotCancellable: a retrieval, or a request whose every item has ended.
var ErrNotCancellable = errors.New("worker: request cannot be cancelled")

// ExportFile is a finished retrieval's export, open for reading; the
// caller closes it.
type ExportFile struct {
	io.ReadCloser
	TaskID string
	// Name is the file's name, e.g. "<task>.zip".
	Name   string
	Size   int64
	SHA256 string
}

// ErrNoExport: not a retrieval, not done, no such task, or its export was
// deleted by retention.
var ErrNoExport = errors.New("worker: no export")

// ErrIntakeOnly is what Start and Run return on an intake-only worker
// (WithIntakeOnly): it stores requests and answers about them, and files
// nothing.
var ErrIntakeOnly = errors.New("worker: intake-only: this process files nothing")

// CallbackStatus is the delivery state of a request's callback notices.
type CallbackStatus struct {
	// State: none, pending, delivered, failing or given_up.
	State       string     `json:"state"`
	Attempts    int        `json:"attempts"`
	LastError   string     `json:"last_error,omitempty"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
}
