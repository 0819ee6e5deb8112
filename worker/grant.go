package worker

import (
	"context"
	"time"

	"github.com/privacykit/mpgdpr/worker/budget"
)

// budgetOptions gives package budget each project's limits from the
// configuration; every process sharing a database reads the same file.
func budgetOptions(cfg *Config) []budget.Option {
	opts := []budget.Option{
		budget.WithDefaultLimits(budget.Limits{Rate: budget.DefaultLimits.Rate, PollShare: cfg.PollShare}),
		budget.WithLease(time.Duration(cfg.RequestLease)),
	}
	for _, p := range cfg.Projects {
		opts = append(opts, budget.WithProjectLimits(p.Name, budget.Limits{Rate: p.Rate, PollShare: cfg.PollShare}))
	}
	return opts
}

// withGrant takes one turn of the project's budget, runs f (one request on
// the wire) within the grant's lease and releases the grant when f returns.
// errTurn wraps a failure to get a turn (ctx ended), in which case f did not
// run.
func (w *Worker[TTx]) withGrant(ctx context.Context, project string, kind budget.Kind, before func() error, f func(ctx context.Context)) (ran bool, err error) {
	g, err := w.budget.Take(ctx, project, kind)
	if err != nil {
		return false, err
	}
	if before != nil {
		if err := before(); err != nil {
			_ = g.Release(budget.Answer{})
			return false, err
		}
	}
	cctx, cancel := context.WithDeadline(ctx, g.Deadline())
	f(cctx)
	cancel()
	// The answer has arrived (or the attempt ended) by now; a later time
	// than the truth only costs rate.
	if err := g.Release(budget.Answer{At: time.Now()}); err != nil {
		w.log.Warn("mpgdpr worker: budget release failed; the project waits for the lease to end", "project", project, "error", err)
	}
	return true, nil
}
