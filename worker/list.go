package worker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// Page sizes of ListRequests.
const (
	defaultListLimit = 50
	maxListLimit     = 500
)

// listCursor is where a page ended: the last request's (enqueued_at,
// reference), the key the requests are ordered by, and the state listed,
// so that a cursor is not used with another filter. It travels as
// base64url JSON: opaque to callers, and checked when it comes back.
type listCursor struct {
	State      string `json:"s,omitempty"`
	EnqueuedAt string `json:"t"`
	Reference  string `json:"r"`
}

func (c listCursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s, state string) (*listCursor, error) {
	bad := &RequestError{"after", "not a cursor of this listing (use the next value of the page before)"}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > 2048 {
		return nil, bad
	}
	var c listCursor
	if err := json.Unmarshal(b, &c); err != nil || c.Reference == "" || workerdb.ParseTime(c.EnqueuedAt).IsZero() || c.State != state {
		return nil, bad
	}
	return &c, nil
}

// ListRequests lists requests in the order they were enqueued (then by
// reference), one page at a time: keyset paging on (enqueued_at,
// reference), by state through the index of migration 6, so that a page
// costs the same however deep it is. A bad state, limit or cursor is a
// *RequestError (errors.Is ErrInvalidRequest) naming the field.
func (w *Worker[TTx]) ListRequests(ctx context.Context, opts ListOptions) (*RequestPage, error) {
	if opts.State != "" && !slices.Contains(RequestStates, opts.State) {
		return nil, &RequestError{"state", fmt.Sprintf("%q is not one of %v", opts.State, RequestStates)}
	}
	limit := opts.Limit
	switch {
	case limit == 0:
		limit = defaultListLimit
	case limit < 1 || limit > maxListLimit:
		return nil, &RequestError{"limit", fmt.Sprintf("%d: choose 1 to %d", limit, maxListLimit)}
	}
	q := `SELECT ` + requestHeadColumns + ` FROM mpgdpr_request WHERE 1 = 1`
	var args []any
	if opts.State != "" {
		q += ` AND state = ?`
		args = append(args, opts.State)
	}
	if opts.After != "" {
		c, err := decodeCursor(opts.After, opts.State)
		if err != nil {
			return nil, err
		}
		// Spelled out rather than as a row comparison, which both
		// databases plan on the index all the same.
		q += ` AND (enqueued_at > ? OR (enqueued_at = ? AND reference > ?))`
		args = append(args, c.EnqueuedAt, c.EnqueuedAt, c.Reference)
	}
	// One more than the page says whether another follows.
	q += fmt.Sprintf(` ORDER BY enqueued_at, reference LIMIT %d`, limit+1)
	page := &RequestPage{Requests: []RequestSummary{}}
	now := time.Now()
	var last *requestHead
	n := 0
	err := collect(ctx, w.db, q, args, func(r rowScanner) error {
		h, err := scanRequestHead(r)
		if err != nil {
			return err
		}
		n++
		if n > limit {
			return nil
		}
		last = h
		dl := h.deadline(now)
		page.Requests = append(page.Requests, RequestSummary{Reference: h.Reference, Kind: Kind(h.Kind), ComplianceType: h.ComplianceType,
			State: h.State, Projects: h.Projects, ReceivedAt: h.ReceivedAt, CompletedAt: h.completedAt(), Due: dueDay(dl)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n > limit && last != nil {
		page.Next = listCursor{State: opts.State, EnqueuedAt: workerdb.FormatTime(last.EnqueuedAt), Reference: last.Reference}.encode()
	}
	return page, nil
}
