package mpgdprtest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
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
		t.DownloadURL = fmt.Sprintf("%s/exports/%s.zip?sig=%s", s.downloadBase, t.ID, t.sig)
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

// Errors of Advance and SetStatus, for errors.Is.
var (
	// ErrNoTask: the server holds no task with this id.
	ErrNoTask = errors.New("no such task")
	// ErrCannotAdvance: the task has ended, or is in a status off the
	// normal path (UNKNOWN), so it has no next step.
	ErrCannotAdvance = errors.New("the task cannot advance")
)

// Advance moves a task one step along PENDING → STAGING → STARTED → SUCCESS.
// It fails for an unknown task (ErrNoTask) or one that cannot advance
// (ErrCannotAdvance).
func (s *Server) Advance(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok {
		return fmt.Errorf("mpgdprtest: task %q: %w", id, ErrNoTask)
	}
	s.settle(t)
	n := next(t.Status)
	if n == t.Status {
		return fmt.Errorf("mpgdprtest: task %q is %s: %w", id, t.Status, ErrCannotAdvance)
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
		return fmt.Errorf("mpgdprtest: task %q: %w", id, ErrNoTask)
	}
	s.setStatus(t, status, s.cfg.now())
	return nil
}

// String names the schedule as ParseSchedule reads it: "step-per-poll",
// "manual", or "timed:" and its three durations.
func (sch Schedule) String() string {
	switch sch.mode {
	case modeManual:
		return "manual"
	case modeTimed:
		return fmt.Sprintf("timed:%s,%s,%s", sch.after[0], sch.after[1], sch.after[2])
	}
	return "step-per-poll"
}

// ParseSchedule reads a schedule by name: "step-per-poll" (StepPerPoll),
// "manual" (Manual), or "timed:PENDING,STAGING,STARTED" (Timed), each a
// Go duration such as 500ms or 2s; "timed:D" spends D in each.
func ParseSchedule(s string) (Schedule, error) {
	switch s {
	case "step-per-poll", "":
		return StepPerPoll(), nil
	case "manual":
		return Manual(), nil
	}
	spec, ok := strings.CutPrefix(s, "timed:")
	if !ok {
		return Schedule{}, fmt.Errorf("mpgdprtest: schedule %q: want step-per-poll, manual or timed:PENDING,STAGING,STARTED", s)
	}
	parts := strings.Split(spec, ",")
	if len(parts) == 1 {
		parts = []string{parts[0], parts[0], parts[0]}
	}
	if len(parts) != 3 {
		return Schedule{}, fmt.Errorf("mpgdprtest: schedule %q: timed takes one duration or three (PENDING,STAGING,STARTED)", s)
	}
	var d [3]time.Duration
	for i, p := range parts {
		v, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil || v < 0 {
			return Schedule{}, fmt.Errorf("mpgdprtest: schedule %q: %q is not a duration such as 500ms or 2s", s, p)
		}
		d[i] = v
	}
	return Timed(d[0], d[1], d[2]), nil
}

// Reset forgets every task, injected fault, recorded request and
// violation, as if the server had just started. Task ids are never
// reused: the numbering goes on.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tasks = map[string]*task{}
	s.order = nil
	s.faults = nil
	s.requests = nil
	s.violations = nil
}
