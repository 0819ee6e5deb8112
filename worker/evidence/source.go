package evidence

import (
	"context"
	"time"
)

// Source yields records one at a time, so that a report of any size runs
// in constant memory. The worker's database is one (DBSource); the mpgdpr
// command implements one over its job journals.
type Source interface {
	// Records calls yield for each record matching f (Since, Until and
	// Project; the report applies State), and stops at yield's first error,
	// returning it.
	Records(ctx context.Context, f Filter, yield func(*Record) error) error
}

// Filter selects records.
type Filter struct {
	// Since and Until bound ReceivedAt: Since <= received < Until (zero:
	// unbounded).
	Since, Until time.Time
	// Project, if set, keeps only this project.
	Project string
	// State keeps only "overdue" (overdue now), "open" (neither completed
	// nor cancelled) or "done" (completed) records; empty keeps all.
	// Applied after Evaluate.
	State string
}

// matchTime reports whether t lies in [Since, Until).
func (f Filter) matchTime(t time.Time) bool {
	if !f.Since.IsZero() && t.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !t.Before(f.Until) {
		return false
	}
	return true
}

// Match reports whether an evaluated record passes every part of f.
func (f Filter) Match(r *Record) bool {
	if f.Project != "" && r.Project != f.Project {
		return false
	}
	if !f.matchTime(r.ReceivedAt) {
		return false
	}
	switch f.State {
	case "overdue":
		return r.Deadline.State == Overdue
	case "open":
		return !r.Ended()
	case "done":
		return r.Completed()
	}
	return true
}

// ValidState reports whether s is a Filter.State value.
func ValidState(s string) bool { return s == "" || s == "overdue" || s == "open" || s == "done" }

// SliceSource is a Source over records in memory (tests, small tools).
type SliceSource []*Record

// Records yields the records matching f's time and project.
func (s SliceSource) Records(ctx context.Context, f Filter, yield func(*Record) error) error {
	for _, r := range s {
		if err := ctx.Err(); err != nil {
			return err
		}
		if (f.Project != "" && r.Project != f.Project) || !f.matchTime(r.ReceivedAt) {
			continue
		}
		if err := yield(r); err != nil {
			return err
		}
	}
	return nil
}
