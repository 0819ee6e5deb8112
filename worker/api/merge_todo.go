package api

import (
	"context"
	"time"

	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/evidence"
)

// TODO(issue 25, merge): the worker-core helper adds State, ReceivedAt,
// Due, DeadlineBy and Extended to worker.EnqueueResult, and ComplianceType,
// DisclosureType, State, Projects, Due, DeadlineBy, Extended,
// DeadlineState, CompletedAt and Callback to worker.RequestStatus. Until
// that is merged, this file makes do with what exists: the receipt time
// from RequestStatus, a state derived from the items, the deadline from
// package evidence's statutory policy. Once merged, replace the bodies
// with the commented code and drop the fallbacks.

// enqueued is the answer to an enqueue of compliance type ct.
func (h *handlers) enqueued(ctx context.Context, res *worker.EnqueueResult, ct string, ext *worker.Extension) (*Enqueued, error) {
	// After the merge:
	//	return &Enqueued{Reference: res.Reference, State: res.State, Projects: res.Projects,
	//		ReceivedAt: res.ReceivedAt, Due: &res.Due, DeadlineBy: &res.DeadlineBy,
	//		Extended: res.Extended, Duplicate: res.Duplicate}, nil
	rs, err := h.s.svc.RequestStatus(ctx, res.Reference)
	if err != nil {
		return nil, err
	}
	d := statutoryDeadline(ct, rs.ReceivedAt, ext)
	due := d.Due.Format(time.DateOnly)
	return &Enqueued{
		Reference: res.Reference, State: derivedState(rs), Projects: res.Projects,
		ReceivedAt: rs.ReceivedAt, Due: &due, DeadlineBy: &d.By, Extended: d.Extended, Duplicate: res.Duplicate,
	}, nil
}

// statusExtras fills what the worker's RequestStatus will carry.
func statusExtras(rs *worker.RequestStatus, out *RequestStatus) {
	// After the merge:
	//	out.ComplianceType, out.State, out.Projects = &rs.ComplianceType, &rs.State, &rs.Projects
	//	if rs.DisclosureType != "" { out.DisclosureType = &rs.DisclosureType }
	//	out.Due, out.DeadlineBy, out.Extended, out.DeadlineState = &rs.Due, &rs.DeadlineBy, &rs.Extended, &rs.DeadlineState
	//	out.CompletedAt = rs.CompletedAt
	//	if c := rs.Callback; c != nil { out.Callback = &CallbackStatus{State: c.State, Attempts: c.Attempts, DeliveredAt: c.DeliveredAt}; if c.LastError != "" { out.Callback.LastError = &c.LastError } }
	state := derivedState(rs)
	projects := make([]string, 0, len(rs.Items))
	for _, it := range rs.Items {
		projects = append(projects, it.Project)
	}
	out.State, out.Projects = &state, &projects
}

// derivedState approximates the request's state from its items' (the
// worker's requestState, with items not yet made reported as queued).
func derivedState(rs *worker.RequestStatus) string {
	counts := map[string]int{}
	for _, it := range rs.Items {
		counts[it.State]++
	}
	for s, n := range counts {
		if s != worker.StateDone && s != worker.StateFailed && s != worker.StateUnknown && s != worker.StateCancelled && n > 0 {
			if counts[worker.StateQueued] == len(rs.Items) {
				return worker.RequestReceived
			}
			return worker.RequestActive
		}
	}
	switch {
	case len(rs.Items) == 0:
		return worker.RequestReceived
	case counts[worker.StateUnknown] > 0:
		return worker.StateUnknown
	case counts[worker.StateFailed] > 0:
		return worker.StateFailed
	case counts[worker.StateCancelled] > 0:
		return worker.StateCancelled
	}
	return worker.StateDone
}

// statutoryDeadline is the deadline the worker computes too (its
// requestDeadline): package evidence's statutory policy.
func statutoryDeadline(ct string, received time.Time, ext *worker.Extension) evidence.Deadline {
	r := evidence.Record{ComplianceType: ct, ReceivedAt: received}
	if ext != nil {
		r.Extension = &evidence.Extension{Reason: ext.Reason, NoticeAt: ext.NoticeAt}
	}
	evidence.NewPolicy().Evaluate(&r, time.Now())
	return r.Deadline
}

// deadlineBy is the instant the request must be completed by.
func deadlineBy(rs *worker.RequestStatus) time.Time {
	// After the merge: return rs.DeadlineBy
	// Until then RequestStatus does not say the compliance type: GDPR's,
	// the shorter.
	return statutoryDeadline("GDPR", rs.ReceivedAt, nil).By
}
