package budget

import (
	"context"
	"sync"
	"time"
)

// Memory is a Budget for one process: its state lives in memory, so it
// holds only when this process is the only one sending for its projects
// (the embedded SQLite worker, a test). Several processes sharing a
// database need the Postgres budget.
type Memory struct {
	*core
}

// NewMemory makes a budget kept in this process's memory.
func NewMemory(opts ...Option) (*Memory, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return &Memory{core: newCore(cfg, &memStore{projects: map[string]*memProject{}})}, nil
}

type memStore struct {
	mu       sync.Mutex
	projects map[string]*memProject
}

type memProject struct {
	s       state
	changed chan struct{} // closed and replaced at every change
}

func (m *memStore) project(name string) *memProject {
	p := m.projects[name]
	if p == nil {
		p = &memProject{changed: make(chan struct{})}
		m.projects[name] = p
	}
	return p
}

func (m *memStore) attempt(_ context.Context, project string, kind Kind, p params, holder int64, creates int, _ bool) (verdict, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mp := m.project(project)
	// In one process, the count of creates in Take is exact.
	v := mp.s.take(time.Now(), kind, creates > 0, p, holder)
	if v.granted {
		mp.notify()
	}
	return v, nil
}

func (m *memStore) release(_ context.Context, project string, holder int64, ago time.Duration, p params) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	mp := m.project(project)
	mp.s.release(time.Now().Add(-ago), holder, p)
	mp.notify()
	return nil
}

func (m *memStore) unregister(context.Context, string) {}

func (m *memStore) changed(project string) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.project(project).changed
}

func (mp *memProject) notify() {
	close(mp.changed)
	mp.changed = make(chan struct{})
}
