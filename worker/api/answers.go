package api

import (
	"github.com/privacykit/mpgdpr/worker"
)

// enqueued is the API's answer for a filed request.
func enqueued(res *worker.EnqueueResult) *Enqueued {
	return &Enqueued{Reference: res.Reference, State: res.State, Projects: res.Projects,
		ReceivedAt: res.ReceivedAt, Due: res.Due, DeadlineBy: res.DeadlineBy,
		Extended: res.Extended, Duplicate: res.Duplicate}
}

// statusExtras fills the request-wide fields of a status answer.
func statusExtras(rs *worker.RequestStatus, out *RequestStatus) {
	out.ComplianceType, out.State, out.Projects = rs.ComplianceType, rs.State, rs.Projects
	if rs.DisclosureType != "" {
		out.DisclosureType = &rs.DisclosureType
	}
	out.Due, out.DeadlineBy, out.Extended, out.DeadlineState = rs.Due, rs.DeadlineBy, rs.Extended, rs.DeadlineState
	out.CompletedAt = rs.CompletedAt
	if c := rs.Callback; c != nil {
		out.Callback = &CallbackStatus{State: c.State, Attempts: c.Attempts, DeliveredAt: c.DeliveredAt}
		if c.LastError != "" {
			out.Callback.LastError = &c.LastError
		}
	}
}
