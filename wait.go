package mpgdpr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Default poll intervals of WaitRetrieval and WaitDeletion. A deletion can
// take up to 30 days; polling more often than every 10 minutes would only
// spend the project's 1 request/second.
const (
	DefaultPollStart = 5 * time.Second
	DefaultPollMax   = 10 * time.Minute
)

// WaitOption configures WaitRetrieval and WaitDeletion.
type WaitOption func(*waitConfig)

type waitConfig struct {
	start, max time.Duration
	onPoll     func(*Task)
}

// WithPollInterval sets the wait after the first poll (start) and the most
// any wait may grow to (max); each wait doubles the one before. A start of 0
// or less keeps DefaultPollStart; a max below start is raised to start.
func WithPollInterval(start, maxInterval time.Duration) WaitOption {
	return func(c *waitConfig) { c.start, c.max = start, maxInterval }
}

// WithOnPoll calls f with every status received, terminal or not, e.g. to
// show progress or record it.
func WithOnPoll(f func(*Task)) WaitOption {
	return func(c *waitConfig) { c.onPoll = f }
}

// WaitRetrieval polls a retrieval task until it reaches a terminal status
// (SUCCESS, FAILURE, REVOKED, NOT_FOUND) and returns it; check
// Task.Status.Succeeded. The first poll is immediate; then the wait starts
// at DefaultPollStart and doubles up to DefaultPollMax (WithPollInterval),
// each wait jittered between half and all of its value so that many waiters
// spread out. Every poll goes through the client's rate limiter and retries.
//
// A poll that fails in a way that may pass (429, 5xx, a network failure, an
// unreadable answer, each after the client's own retries) is logged and
// polling goes on. One that cannot pass (400, 401, 403, 404, an invalid
// tracking id, a refused redirect) ends the wait at once with that error.
//
// When ctx ends first, WaitRetrieval returns the last status it saw (nil if
// none) together with an error matching ctx.Err() (and the last poll's
// error, if it failed): bound the wait with a deadline.
func (c *Client) WaitRetrieval(ctx context.Context, trackingID string, opts ...WaitOption) (*Task, error) {
	return c.wait(ctx, "WaitRetrieval", trackingID, c.CheckRetrieval, opts)
}

// WaitDeletion polls a deletion task until it reaches a terminal status and
// returns it, exactly as WaitRetrieval does. A deletion can take 30 days:
// give ctx a deadline to match, and persist the tracking id so a later run
// can wait again.
func (c *Client) WaitDeletion(ctx context.Context, trackingID string, opts ...WaitOption) (*Task, error) {
	return c.wait(ctx, "WaitDeletion", trackingID, c.CheckDeletion, opts)
}

func (c *Client) wait(ctx context.Context, op, trackingID string, check func(context.Context, string) (*Task, error), opts []WaitOption) (*Task, error) {
	cfg := waitConfig{start: DefaultPollStart, max: DefaultPollMax}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.start <= 0 {
		cfg.start = DefaultPollStart
	}
	cfg.max = max(cfg.max, cfg.start)
	if err := validateTrackingID(trackingID); err != nil {
		return nil, err
	}
	var last *Task
	var lastErr error
	interval := cfg.start
	for poll := 1; ; poll++ {
		t, err := check(ctx, trackingID)
		switch {
		case err == nil:
			last, lastErr = t, nil
			if cfg.onPoll != nil {
				cfg.onPoll(t)
			}
			if t.Status.Terminal() {
				return t, nil
			}
		case ctx.Err() != nil:
			return last, stoppedWaiting(op, ctx.Err(), last, lastErr)
		case !transientPollError(err):
			return last, err
		default:
			lastErr = err
			c.logger.LogAttrs(ctx, slog.LevelWarn, "mpgdpr: poll failed, will poll again",
				slog.String("op", op),
				slog.Int("poll", poll),
				slog.String("reason", c.secrets.String(err.Error())))
		}
		if err := sleep(ctx, pollDelay(interval, c.rand)); err != nil {
			return last, stoppedWaiting(op, err, last, lastErr)
		}
		interval = nextPollInterval(interval, cfg.max)
	}
}

// nextPollInterval doubles interval up to maxInterval, without overflow.
func nextPollInterval(interval, maxInterval time.Duration) time.Duration {
	if interval > maxInterval/2 {
		return maxInterval
	}
	return interval * 2
}

// pollDelay jitters interval into [interval/2, interval]: waiters spread
// out, and no wait is ever much shorter than asked (no busy polling).
func pollDelay(interval time.Duration, rnd func() float64) time.Duration {
	f := rnd()
	if !(f > 0) {
		f = 0
	}
	f = min(f, 1)
	return interval/2 + time.Duration(f*float64(interval-interval/2))
}

// transientPollError reports whether a failed poll may succeed later.
func transientPollError(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Temporary()
	}
	var ie *InputError
	return !errors.As(err, &ie) && !unretryable(err)
}

func stoppedWaiting(op string, ctxErr error, last *Task, lastErr error) error {
	status := "no status received"
	if last != nil {
		status = fmt.Sprintf("last status %.40q", string(last.Status))
	}
	if lastErr != nil {
		return errorf("%s: stopped waiting (%s): %w; the last poll had failed: %w", op, status, ctxErr, lastErr)
	}
	return errorf("%s: stopped waiting (%s): %w", op, status, ctxErr)
}
