package mpgdprtest

import (
	"fmt"
	"slices"
	"time"
)

// Task statuses, as Mixpanel spells them.
const (
	StatusPending  = "PENDING"
	StatusStaging  = "STAGING"
	StatusStarted  = "STARTED"
	StatusSuccess  = "SUCCESS"
	StatusFailure  = "FAILURE"
	StatusRevoked  = "REVOKED"
	StatusNotFound = "NOT_FOUND"
	StatusUnknown  = "UNKNOWN"
)

// progression is the path every task takes unless cancelled or forced.
var progression = []string{StatusPending, StatusStaging, StatusStarted, StatusSuccess}

func terminal(status string) bool {
	switch status {
	case StatusSuccess, StatusFailure, StatusRevoked, StatusNotFound:
		return true
	}
	return false
}

func cancellable(status string) bool { return status == StatusPending || status == StatusStaging }

// next is the status after s on the normal path, or s itself when the
// normal path has no step after it.
func next(s string) string {
	i := slices.Index(progression, s)
	if i < 0 || i == len(progression)-1 {
		return s
	}
	return progression[i+1]
}

// Kind says whether a task is a retrieval or a deletion.
type Kind string

// The two kinds of task.
const (
	Retrieval Kind = "retrieval"
	Deletion  Kind = "deletion"
)

// Schedule says how tasks advance from PENDING through STAGING and STARTED
// to SUCCESS. Whatever the schedule, Server.Advance, AdvanceAll and
// SetStatus move tasks by hand.
type Schedule struct {
	mode  scheduleMode
	after [3]time.Duration // time spent in PENDING, STAGING, STARTED
}

type scheduleMode int

const (
	modeStepPerPoll scheduleMode = iota
	modeManual
	modeTimed
)

// StepPerPoll, the default, advances a task one step each time its status
// is checked, after answering: successive checks see PENDING, STAGING,
// STARTED, then SUCCESS. Only checks answered 200 count. Deterministic and
// instant, it suits most tests.
func StepPerPoll() Schedule { return Schedule{mode: modeStepPerPoll} }

// Manual never advances a task by itself: the test calls Server.Advance,
// AdvanceAll or SetStatus.
func Manual() Schedule { return Schedule{mode: modeManual} }

// Timed advances a task by the clock (see WithClock): it stays pending for
// pending, staging for staging and started for started, then succeeds.
// With an injected clock a test moves time instead of sleeping.
func Timed(pending, staging, started time.Duration) Schedule {
	return Schedule{mode: modeTimed, after: [3]time.Duration{pending, staging, started}}
}

// Task is a snapshot of a task the server holds.
type Task struct {
	ID             string
	Kind           Kind
	Status         string
	DistinctIDs    []string
	ComplianceType string // as sent: GDPR or CCPA
	DisclosureType string // retrievals only, as sent; empty if none was
	Requested      time.Time
	// Checks counts the status checks answered 200.
	Checks int
	// DownloadURL is a finished retrieval's link; empty before SUCCESS.
	DownloadURL string
	// Downloads counts the export requests served (a resumed download
	// counts each Range request).
	Downloads int
}

// task is the server's record; guarded by Server.mu.
type task struct {
	Task
	since   time.Time // when it entered Status, for Timed
	sig     string    // the download link's signature
	archive []byte    // built on first download
}

func (t *task) snapshot() Task {
	c := t.Task
	c.DistinctIDs = slices.Clone(t.DistinctIDs)
	return c
}

// settle applies the Timed schedule up to now.
func (s *Server) settle(t *task) {
	sch := s.cfg.schedule
	if sch.mode != modeTimed {
		return
	}
	now := s.cfg.now()
	for {
		i := slices.Index(progression, t.Status)
		if i < 0 || i >= len(sch.after) || now.Sub(t.since) < sch.after[i] {
			return
		}
		t.since = t.since.Add(sch.after[i])
		s.setStatus(t, progression[i+1], t.since)
	}
}

// setStatus moves t to status, attaching the download link when a
// retrieval succeeds.
func (s *Server) setStatus(t *task, status string, at time.Time) {
	t.Status, t.since = status, at
	if t.Kind == Retrieval && status == StatusSuccess && t.DownloadURL == "" {
		t.DownloadURL = fmt.Sprintf("%s/exports/%s.zip?sig=%s", s.dl.URL, t.ID, t.sig)
	}
}

// Tasks returns a snapshot of every task, in creation order.
func (s *Server) Tasks() []Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Task, 0, len(s.order))
	for _, id := range s.order {
		t := s.tasks[id]
		s.settle(t)
		out = append(out, t.snapshot())
	}
	return out
}

// Task returns a snapshot of the task with this id.
func (s *Server) Task(id string) (Task, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok {
		return Task{}, false
	}
	s.settle(t)
	return t.snapshot(), true
}

// Advance moves a task one step along PENDING → STAGING → STARTED → SUCCESS.
// It fails for an unknown task or one that has ended.
func (s *Server) Advance(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok {
		return fmt.Errorf("mpgdprtest: no task %q", id)
	}
	s.settle(t)
	n := next(t.Status)
	if n == t.Status {
		return fmt.Errorf("mpgdprtest: task %q is %s and cannot advance", id, t.Status)
	}
	s.setStatus(t, n, s.cfg.now())
	return nil
}

// AdvanceAll moves every task that has not ended one step.
func (s *Server) AdvanceAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.now()
	for _, id := range s.order {
		t := s.tasks[id]
		s.settle(t)
		if n := next(t.Status); n != t.Status {
			s.setStatus(t, n, now)
		}
	}
}

// SetStatus forces a task into any status, FAILURE, NOT_FOUND or UNKNOWN
// included, whatever the schedule.
func (s *Server) SetStatus(id, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok {
		return fmt.Errorf("mpgdprtest: no task %q", id)
	}
	s.setStatus(t, status, s.cfg.now())
	return nil
}
