package budget

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// store keeps the projects' states: in memory or in Postgres.
type store interface {
	// attempt is one try for holder. creates is how many creates of
	// this process wait for the project, this one included; last says
	// this is a create and the only one (so its grant ends this
	// process's registration as a waiting creator).
	attempt(ctx context.Context, project string, kind Kind, p params, holder int64, creates int, last bool) (verdict, error)
	// release ends holder's grant, answered ago.
	release(ctx context.Context, project string, holder int64, ago time.Duration, p params) error
	// unregister says no create of this process waits for project any
	// more (the last one gave up).
	unregister(ctx context.Context, project string)
	// changed is closed at the project's next change, if the store can
	// tell (nil otherwise: waiters look again when their wait ends).
	changed(project string) <-chan struct{}
}

// core is what both budgets share: argument checks, the line each process
// forms per project and kind, and the wait loop.
type core struct {
	cfg   config
	store store

	mu     sync.Mutex
	queues map[string]*queue
}

// queue is one project's line in this process: one request of each kind
// tries at a time (the others wait here, first come first served), so the
// store sees at most two contenders per process and project.
type queue struct {
	kinds   [3]chan struct{} // by Kind: capacity 1, held by the kind's head
	creates int              // creates of this process in Take; guarded by core.mu
}

func newCore(cfg config, s store) *core {
	return &core{cfg: cfg, store: s, queues: map[string]*queue{}}
}

// Take implements Budget.
func (c *core) Take(ctx context.Context, project string, kind Kind) (*Grant, error) {
	if project == "" {
		return nil, fmt.Errorf("%w: empty project name", ErrInvalid)
	}
	if kind != Create && kind != Poll {
		return nil, fmt.Errorf("%w: kind %v", ErrInvalid, kind)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := c.cfg.params(project)
	q := c.queue(project)
	counted := false
	if kind == Create {
		c.mu.Lock()
		q.creates++
		c.mu.Unlock()
		counted = true
		defer func() {
			if counted { // gave up: no grant
				if c.uncount(q) == 0 {
					// Best effort, past ctx's end; otherwise the
					// registration expires by itself.
					uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
					c.store.unregister(uctx, project)
					cancel()
				}
			}
		}()
	}
	select {
	case q.kinds[kind] <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-q.kinds[kind] }()

	for {
		holder := newHolder()
		creates, last := 0, false
		c.mu.Lock()
		creates = q.creates
		c.mu.Unlock()
		if kind == Create {
			last = creates == 1
		}
		changed := c.store.changed(project)
		start := time.Now()
		v, err := c.store.attempt(ctx, project, kind, p, holder, creates, last)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("budget: %w (last error: %v)", ctx.Err(), err)
			}
			return nil, err
		}
		if v.granted {
			if counted {
				c.uncount(q)
				counted = false
			}
			g := NewGrant(start.Add(p.lease), func(a Answer) error {
				ago := time.Duration(0)
				if !a.At.IsZero() {
					ago = max(time.Since(a.At), 0)
				}
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer cancel()
				return c.store.release(rctx, project, holder, ago, p)
			})
			if ctx.Err() != nil {
				_ = g.Release(Answer{})
				return nil, ctx.Err()
			}
			return g, nil
		}
		if err := wait(ctx, v.wait, changed); err != nil {
			return nil, err
		}
	}
}

func (c *core) queue(project string) *queue {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.queues[project]
	if q == nil {
		q = &queue{}
		for i := range q.kinds {
			q.kinds[i] = make(chan struct{}, 1)
		}
		c.queues[project] = q
	}
	return q
}

// waitingCreates is how many creates of this process wait for project.
func (c *core) waitingCreates(project string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if q := c.queues[project]; q != nil {
		return q.creates
	}
	return 0
}

// uncount removes a create from q's count and returns what is left.
func (c *core) uncount(q *queue) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	q.creates--
	return q.creates
}

// wait sleeps d, or until changed is closed, or returns ctx's error.
func wait(ctx context.Context, d time.Duration, changed <-chan struct{}) error {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-changed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// newHolder is a random non-zero grant id: ids from different processes
// must not collide.
func newHolder() int64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if h := int64(binary.LittleEndian.Uint64(b[:]) >> 1); h != 0 {
			return h
		}
	}
}
