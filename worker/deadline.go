package worker

import (
	"time"

	"github.com/privacykit/mpgdpr/worker/evidence"
)

// deadlinePolicy is the statutory rule set the worker and its HTTP API
// answer with: evidence's defaults (GDPR one month + two, CCPA 45 days +
// 45), days counted in UTC. Reports may apply a policy file of their own
// (docs/REPORTS.md); what the API promises a caller is the statute.
var deadlinePolicy = evidence.NewPolicy()

// requestDeadline is a request's deadline under deadlinePolicy, as of now:
// received under compliance type ct, with its recorded extension (nil for
// none), completed at completed (zero while open).
func requestDeadline(ct string, received time.Time, ext *Extension, completed, now time.Time) evidence.Deadline {
	r := evidence.Record{ComplianceType: ct, ReceivedAt: received, CompletedAt: completed}
	if ext != nil {
		r.Extension = &evidence.Extension{Reason: ext.Reason, NoticeAt: ext.NoticeAt}
	}
	deadlinePolicy.Evaluate(&r, now)
	return r.Deadline
}
