package budget

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Kind is what a request spends the budget on.
type Kind int

const (
	// Create files a new task (a create, or a cancel). Creates go first:
	// while one waits, polls get at most their share of the budget.
	Create Kind = iota + 1
	// Poll checks a task's status.
	Poll
)

// String is "create" or "poll".
func (k Kind) String() string {
	switch k {
	case Create:
		return "create"
	case Poll:
		return "poll"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Limits is one project's budget.
type Limits struct {
	// Rate is the most requests per second the project's server accepts,
	// measured between arrivals: Mixpanel's 1 means no two requests less
	// than a second apart. It must be positive.
	Rate float64
	// PollShare is the most of the budget polls take while creates wait,
	// in [0, 1): 0.5 lets one poll go between two creates, 0 none. With no
	// create waiting, polls take the whole budget.
	PollShare float64
}

// DefaultLimits is Mixpanel's documented limit, and half of it for polls
// while creates wait.
var DefaultLimits = Limits{Rate: 1, PollShare: 0.5}

// Validate reports whether l can be used.
func (l Limits) Validate() error {
	if !(l.Rate > 0) || math.IsInf(l.Rate, 0) {
		return fmt.Errorf("budget: rate %v: must be a positive number of requests per second", l.Rate)
	}
	if !(l.PollShare >= 0 && l.PollShare < 1) {
		return fmt.Errorf("budget: poll share %v: must be at least 0 and below 1", l.PollShare)
	}
	return nil
}

// Budget hands out the right to send one request for a project.
//
// Take waits for the project's next slot and returns a Grant; the caller
// sends its request right away and calls the Grant's Release with the time
// the answer arrived (or the attempt failed). Until then no other request
// of the project is granted, anywhere: see the package documentation for
// why, and for what the caller must do.
//
// Take returns ctx's error (errors.Is context.Canceled or
// context.DeadlineExceeded) as soon as ctx ends while it waits, and an
// error for an empty project or an unknown kind. Budgets are safe for
// concurrent use.
type Budget interface {
	Take(ctx context.Context, project string, kind Kind) (*Grant, error)
}

// Answer is how a granted request ended.
type Answer struct {
	// At is when the answer's first byte arrived, or when the attempt
	// failed; zero means now. The project's next request may be sent one
	// interval after it. A later time than the truth only costs rate; an
	// earlier one risks a 429.
	At time.Time
}

// Grant is the right to send one request. Release it exactly once, as soon
// as the answer arrives or the attempt ends without one.
type Grant struct {
	deadline time.Time
	release  func(Answer) error
	once     sync.Once
	err      error
}

// NewGrant makes a Grant that calls release once, for Budget
// implementations outside this package (a test's fake).
func NewGrant(deadline time.Time, release func(Answer) error) *Grant {
	return &Grant{deadline: deadline, release: release}
}

// Deadline is when the grant's lease ends: the request must have been sent
// and abandoned by then (give its context this deadline). After it, other
// processes take a holder that has not released as dead and go on one
// interval later.
func (g *Grant) Deadline() time.Time { return g.deadline }

// Release ends the grant: the project's next request may be sent one
// interval after a.At. Calls after the first do nothing and return the
// first's result. An error (the database unreachable) means the slot stays
// held until the lease ends: other requests of the project wait longer,
// but none is sent too early.
func (g *Grant) Release(a Answer) error {
	if g == nil {
		return nil
	}
	g.once.Do(func() {
		if g.release != nil {
			g.err = g.release(a)
		}
	})
	return g.err
}

// ErrInvalid is wrapped by Take's errors for bad arguments (an empty
// project, an unknown kind).
var ErrInvalid = errors.New("budget: invalid argument")

// Option configures a Budget.
type Option func(*config) error

type config struct {
	defaults Limits
	projects map[string]Limits
	lease    time.Duration
	margin   time.Duration
}

// WithDefaultLimits sets the limits of every project not named by
// WithProjectLimits (default DefaultLimits).
func WithDefaultLimits(l Limits) Option {
	return func(c *config) error {
		if err := l.Validate(); err != nil {
			return err
		}
		c.defaults = l
		return nil
	}
}

// WithProjectLimits sets one project's limits. Every process sharing a
// database must be given the same limits.
func WithProjectLimits(project string, l Limits) Option {
	return func(c *config) error {
		if err := l.Validate(); err != nil {
			return fmt.Errorf("project %q: %w", project, err)
		}
		if project == "" {
			return fmt.Errorf("%w: empty project name", ErrInvalid)
		}
		c.projects[project] = l
		return nil
	}
}

// DefaultLease is how long a grant may stay unreleased before others take
// its holder as dead.
const DefaultLease = time.Minute

// WithLease sets how long a grant may stay unreleased (default
// DefaultLease). It must exceed the longest request attempt; it is how long
// a project stalls when a holder dies without releasing.
func WithLease(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("budget: lease %v: must be positive", d)
		}
		c.lease = d
		return nil
	}
}

// DefaultMargin is added to every interval; see WithMargin.
const DefaultMargin = 5 * time.Millisecond

// WithMargin sets how much longer than 1/rate after an answer the next
// request waits (default DefaultMargin). Network delays need none (see the
// package documentation); the margin covers a server whose rate check runs
// on several machines whose clocks differ slightly, and timer rounding.
func WithMargin(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("budget: margin %v: must not be negative", d)
		}
		c.margin = d
		return nil
	}
}

func newConfig(opts []Option) (config, error) {
	c := config{defaults: DefaultLimits, projects: map[string]Limits{}, lease: DefaultLease, margin: DefaultMargin}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return config{}, err
		}
	}
	return c, nil
}

// params are the numbers the decision needs for one project.
func (c config) params(project string) params {
	l, ok := c.projects[project]
	if !ok {
		l = c.defaults
	}
	gap := time.Duration(math.Ceil(float64(time.Second)/l.Rate)) + c.margin
	return params{gap: gap, lease: c.lease, ratio: l.PollShare / (1 - l.PollShare)}
}
