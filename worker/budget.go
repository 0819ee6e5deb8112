package worker

import (
	"context"
	"sync"

	"golang.org/x/time/rate"
)

// RequestClass says what a request to Mixpanel is for, so that a Budget can
// keep polls from starving creates.
type RequestClass int

// The classes of request.
const (
	ClassCreate RequestClass = iota
	ClassPoll
)

// Budget paces a project's requests to Mixpanel: Take returns when one
// request of that class may be sent, or with ctx's error. Every create and
// every poll takes one turn. Package budget implements it for one process
// and for all processes sharing a Postgres database.
type Budget interface {
	Take(ctx context.Context, project string, class RequestClass) error
}

// BudgetFunc adapts a function to Budget.
type BudgetFunc func(ctx context.Context, project string, class RequestClass) error

// Take calls f.
func (f BudgetFunc) Take(ctx context.Context, project string, class RequestClass) error {
	return f(ctx, project, class)
}

// localBudget paces each project within this process: a token bucket per
// project at its configured rate, burst 1. It does not reserve a share for
// creates; use package budget for that.
type localBudget struct {
	mu       sync.Mutex
	limiters map[string]*rate.Limiter
	rates    map[string]float64
}

func newLocalBudget(cfg *Config) *localBudget {
	b := &localBudget{limiters: map[string]*rate.Limiter{}, rates: map[string]float64{}}
	for _, p := range cfg.Projects {
		b.rates[p.Name] = p.Rate
	}
	return b
}

func (b *localBudget) Take(ctx context.Context, project string, _ RequestClass) error {
	b.mu.Lock()
	l, ok := b.limiters[project]
	if !ok {
		l = rate.NewLimiter(rate.Limit(b.rates[project]), 1)
		b.limiters[project] = l
	}
	b.mu.Unlock()
	return l.Wait(ctx)
}
