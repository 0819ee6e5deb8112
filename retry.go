package mpgdpr

import (
	"context"
	"math/rand/v2"
	"time"
)

// RetryPolicy says how often and how long a call is retried. A retry happens
// only where it is safe: 429 always; 503 always for checks and cancels, and
// for creates only with a Retry-After (see CreateRefused); 502 and 504 for
// checks and cancels only; a failure to connect always; any other transport
// failure (reset, timeout) for checks and cancels only. A create that may
// have reached Mixpanel is never re-sent by the pipeline (see
// ErrOutcomeUnknown; DeleteAll resubmits a deletion itself).
//
// A zero field takes its value from DefaultRetryPolicy. To retry for hours,
// as Mixpanel recommends when a project's scan cap is reached, raise
// MaxElapsed and set MaxAttempts to -1 (or a large number):
//
//	mpgdpr.RetryPolicy{MaxAttempts: -1, MaxDelay: 10 * time.Minute, MaxElapsed: 6 * time.Hour}
//
// A context deadline or cancellation always ends the retries earlier.
type RetryPolicy struct {
	// MaxAttempts counts every try, the first included: 1 means no retry,
	// 0 means the default (8), and a negative value means no limit on the
	// number of attempts, only on MaxElapsed.
	MaxAttempts int
	// BaseDelay is the first backoff ceiling; each retry doubles it.
	BaseDelay time.Duration
	// MaxDelay caps one backoff wait.
	MaxDelay time.Duration
	// MaxElapsed caps the whole call: the waits for the rate limiter, the
	// attempt in flight (each attempt gets what is left) and the waits
	// between attempts. A retry whose wait would end past it is not made,
	// and the last failure is returned; an attempt or limiter wait it cuts
	// short fails with an error matching context.DeadlineExceeded and,
	// after a failed attempt, that attempt's failure too (after 429s,
	// errors.Is(err, ErrRateLimited) and errors.As(err, **Error) hold); for
	// a create that may have been sent it is ErrOutcomeUnknown instead.
	// Hours (or days) are fine.
	MaxElapsed time.Duration
	// MaxRetryAfter caps how long a server's Retry-After (seconds or an
	// HTTP date) is honoured; a longer one is cut to this.
	MaxRetryAfter time.Duration
}

// DefaultRetryPolicy: 8 attempts, backoff from 1s doubling to at most 2m,
// at most 15m in all, Retry-After honoured up to 5m.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		MaxAttempts:   8,
		BaseDelay:     time.Second,
		MaxDelay:      2 * time.Minute,
		MaxElapsed:    15 * time.Minute,
		MaxRetryAfter: 5 * time.Minute,
	}
}

// NoRetries sends every call once.
func NoRetries() RetryPolicy { return RetryPolicy{MaxAttempts: 1} }

// normalized fills zero fields from DefaultRetryPolicy.
func (p RetryPolicy) normalized() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.MaxAttempts == 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = d.BaseDelay
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = max(p.BaseDelay, d.MaxDelay)
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = d.MaxElapsed
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = d.MaxRetryAfter
	}
	return p
}

// attemptsLeft reports whether another attempt may follow attempt n.
func (p RetryPolicy) attemptsLeft(n int) bool {
	return p.MaxAttempts < 0 || n < p.MaxAttempts
}

// backoff is the wait before retry number n (1-based): full jitter, a random
// duration in [0, min(MaxDelay, BaseDelay·2^(n-1))), so that many clients
// hitting the same limit spread out instead of retrying in step. The
// doubling stops at MaxDelay, so no n and no MaxDelay overflows.
func (p RetryPolicy) backoff(n int, rnd func() float64) time.Duration {
	ceiling := p.BaseDelay
	for i := 1; i < n && ceiling < p.MaxDelay; i++ {
		if ceiling > p.MaxDelay/2 {
			ceiling = p.MaxDelay
			break
		}
		ceiling *= 2
	}
	ceiling = min(ceiling, p.MaxDelay)
	f := rnd()
	if !(f > 0) { // also NaN from a broken source
		return 0
	}
	if f >= 1 {
		return ceiling
	}
	return time.Duration(f * float64(ceiling))
}

// wait is the pause before retry n: the server's Retry-After when it gave
// one (capped at MaxRetryAfter), else the jittered backoff.
func (p RetryPolicy) wait(n int, retryAfter time.Duration, rnd func() float64) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, p.MaxRetryAfter)
	}
	return p.backoff(n, rnd)
}

// sleep waits d or until ctx ends, whichever is first; it returns ctx.Err()
// in the second case, so errors.Is(err, context.Canceled) holds.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func defaultRand() float64 { return rand.Float64() }
