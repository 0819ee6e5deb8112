package journal

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// IDState is what the journal says about one distinct ID.
type IDState int

// The states of an ID. A job is complete when every ID is IDAccepted or
// IDConflict.
const (
	// IDUnsent: never sent, or certainly not filed. Safe to send.
	IDUnsent IDState = iota
	// IDInFlight: its latest request has a "sending" record and no outcome:
	// a previous run stopped during that request. The outcome is unknown.
	IDInFlight
	// IDUnknown: its latest request's outcome is unknown.
	IDUnknown
	// IDAccepted: a task was filed for it.
	IDAccepted
	// IDConflict: a 409 said a running deletion already covers it.
	IDConflict
)

// String names the state as the journal records it.
func (s IDState) String() string {
	switch s {
	case IDUnsent:
		return "unsent"
	case IDInFlight:
		return "in flight"
	case IDUnknown:
		return "unknown"
	case IDAccepted:
		return "accepted"
	case IDConflict:
		return "conflict"
	}
	return fmt.Sprintf("IDState(%d)", int(s))
}

// Chunk is one request of the job, as the journal knows it.
type Chunk struct {
	N       int
	IDs     []string
	State   string   // Sending (no outcome yet), Accepted, Conflict, Unknown or Unsent
	TaskID  string   // Accepted
	TaskIDs []string // Conflict: the running deletions Mixpanel named
	Error   string   // Unknown, Unsent
}

// Task is a task the job follows: one it filed, or a running deletion a
// 409 named as already covering some of its IDs.
type Task struct {
	ID       string
	Chunk    int    // the request that filed it; 0 if only named by a 409
	IDs      int    // how many IDs it was filed for (0 if only named by a 409)
	Covering int    // how many of the job's IDs 409s naming it said were covered
	Status   string // the terminal status recorded, if any
	Download *Record
}

type idRef struct {
	state IDState
	chunk int
}

// State is what a journal holds so far. Its methods are safe for
// concurrent use; what they return are copies.
type State struct {
	mu        sync.RWMutex
	Header    Header // set once, before the State is shared
	chunks    map[int]*Chunk
	order     []int
	ids       map[string]idRef
	tasks     map[string]*Task
	taskOrder []string
	maxChunk  int
}

func newState() *State {
	return &State{chunks: map[int]*Chunk{}, ids: map[string]idRef{}, tasks: map[string]*Task{}}
}

// apply checks r and, unless dry, applies it.
func (s *State) apply(r Record, dry bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	open := func() (*Chunk, error) {
		c, ok := s.chunks[r.Chunk]
		if !ok {
			return nil, fmt.Errorf("%s record for request %d, which was never sent", r.State, r.Chunk)
		}
		if c.State != Sending {
			return nil, fmt.Errorf("%s record for request %d, which already ended %s", r.State, r.Chunk, c.State)
		}
		return c, nil
	}
	switch r.State {
	case Sending:
		if r.Chunk <= s.maxChunk {
			return fmt.Errorf("request number %d reused (last was %d)", r.Chunk, s.maxChunk)
		}
		if len(r.IDs) == 0 {
			return fmt.Errorf("request %d has no IDs", r.Chunk)
		}
		if dry {
			return nil
		}
		s.maxChunk = r.Chunk
		s.chunks[r.Chunk] = &Chunk{N: r.Chunk, IDs: slices.Clone(r.IDs), State: Sending}
		s.order = append(s.order, r.Chunk)
		for _, id := range r.IDs {
			s.ids[id] = idRef{IDInFlight, r.Chunk}
		}
	case Accepted:
		c, err := open()
		if err != nil {
			return err
		}
		if r.TaskID == "" {
			return fmt.Errorf("request %d accepted without a task id", r.Chunk)
		}
		if dry {
			return nil
		}
		c.State, c.TaskID = Accepted, r.TaskID
		s.setIDs(c, IDAccepted)
		t := s.task(r.TaskID)
		t.Chunk, t.IDs = c.N, len(c.IDs)
	case Conflict:
		c, err := open()
		if err != nil {
			return err
		}
		if len(r.IDs) == 0 {
			return fmt.Errorf("request %d: conflict naming no IDs", r.Chunk)
		}
		in := make(map[string]bool, len(c.IDs))
		for _, id := range c.IDs {
			in[id] = true
		}
		for _, id := range r.IDs {
			if !in[id] {
				return errors.New("conflict names an ID its request did not carry")
			}
		}
		if dry {
			return nil
		}
		c.State, c.TaskIDs = Conflict, slices.Clone(r.TaskIDs)
		// A 409 rejects the whole request: the IDs it did not name were
		// not filed, and are sent again in a later request.
		s.setIDs(c, IDUnsent)
		for _, id := range r.IDs {
			s.ids[id] = idRef{IDConflict, c.N}
		}
		for _, tid := range r.TaskIDs {
			s.task(tid).Covering += len(r.IDs)
		}
	case Unknown, Unsent:
		c, err := open()
		if err != nil {
			return err
		}
		if dry {
			return nil
		}
		c.State, c.Error = r.State, r.Error
		if r.State == Unknown {
			s.setIDs(c, IDUnknown)
		} else {
			s.setIDs(c, IDUnsent)
		}
	case Finished, Downloaded:
		t, ok := s.tasks[r.TaskID]
		if !ok {
			return fmt.Errorf("%s record for task %q, which the job does not follow", r.State, r.TaskID)
		}
		if r.State == Finished && r.Status == "" {
			return fmt.Errorf("finished record for task %q without a status", r.TaskID)
		}
		if dry {
			return nil
		}
		if r.State == Finished {
			t.Status = r.Status
		} else {
			rc := r
			t.Download = &rc
		}
	case Resumed:
	default:
		return fmt.Errorf("unknown record state %q", r.State)
	}
	return nil
}

// setIDs sets the state of those of c's IDs whose latest request is c.
func (s *State) setIDs(c *Chunk, st IDState) {
	for _, id := range c.IDs {
		if s.ids[id].chunk == c.N {
			s.ids[id] = idRef{st, c.N}
		}
	}
}

func (s *State) task(id string) *Task {
	t, ok := s.tasks[id]
	if !ok {
		t = &Task{ID: id}
		s.tasks[id] = t
		s.taskOrder = append(s.taskOrder, id)
	}
	return t
}

// ID reports the state of one distinct ID and the request it was last in
// (0 if none).
func (s *State) ID(id string) (IDState, int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.ids[id]
	return r.state, r.chunk
}

// NextChunk is the number the next request takes: requests are numbered
// from 1 across every run of the job.
func (s *State) NextChunk() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.maxChunk + 1
}

// Chunks returns every request so far, in the order they were sent.
func (s *State) Chunks() []Chunk {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Chunk, 0, len(s.order))
	for _, n := range s.order {
		c := *s.chunks[n]
		c.IDs = slices.Clone(c.IDs)
		c.TaskIDs = slices.Clone(c.TaskIDs)
		out = append(out, c)
	}
	return out
}

// Tasks returns the tasks the job follows: those it filed and those 409s
// named, in the order the journal first mentions them.
func (s *State) Tasks() []Task {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Task, 0, len(s.taskOrder))
	for _, id := range s.taskOrder {
		t := *s.tasks[id]
		if t.Download != nil {
			d := *t.Download
			t.Download = &d
		}
		out = append(out, t)
	}
	return out
}
