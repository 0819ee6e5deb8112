package worker

import (
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// River queues: separate so that polls waiting for the budget never take
// every slot from creates.
const (
	queueIntake = "mpgdpr_intake"
	queueFile   = "mpgdpr_file"
	queuePoll   = "mpgdpr_poll"
)

// liveStates makes a job unique among those not yet finished, so that the
// sweeper can insert again a job that was discarded or cancelled.
var liveStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateScheduled,
}

// maxAttempts is high: a job that keeps failing (a database away, Mixpanel
// down) must wait, not be discarded. Ordinary waits are snoozes, which do
// not count.
const maxAttempts = 10000

// scanArgs coalesces one group's queued items into batches.
type scanArgs struct {
	Project        string `json:"project" river:"unique"`
	RequestKind    string `json:"kind" river:"unique"`
	ComplianceType string `json:"compliance_type" river:"unique"`
	DisclosureType string `json:"disclosure_type" river:"unique"`
}

func (scanArgs) Kind() string { return "mpgdpr_scan" }
func (scanArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueIntake, MaxAttempts: maxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: liveStates}}
}

// fileArgs files one batch with Mixpanel.
type fileArgs struct {
	BatchID int64 `json:"batch_id" river:"unique"`
}

func (fileArgs) Kind() string { return "mpgdpr_file" }
func (fileArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueFile, MaxAttempts: maxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: liveStates}}
}

// pollArgs follows one task to its end.
type pollArgs struct {
	Project string `json:"project" river:"unique"`
	TaskID  string `json:"task_id" river:"unique"`
}

func (pollArgs) Kind() string { return "mpgdpr_poll" }
func (pollArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queuePoll, MaxAttempts: maxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: liveStates}}
}

// sweepArgs is the periodic safety net: it inserts again any job that a
// group, batch or task should have and does not.
type sweepArgs struct{}

func (sweepArgs) Kind() string { return "mpgdpr_sweep" }
func (sweepArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueIntake, MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByState: liveStates}}
}

// purgeArgs is the periodic purge (purge.go): IDs of requests ended longer
// than id_retention ago, exports older than export_retention.
type purgeArgs struct{}

func (purgeArgs) Kind() string { return "mpgdpr_purge" }
func (purgeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueIntake, MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByState: liveStates}}
}

// purgeEvery is how often the worker purges.
const purgeEvery = time.Hour

// InsertOpts of an enqueued request: unique by reference while River keeps
// the job; the mpgdpr_request table keeps it for good.
func (RequestArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueIntake, MaxAttempts: maxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}
