package mpgdpr

import (
	"context"
	"math/rand/v2"
	"time"
)

// RetryPolicy says how often and how long a call is retried. A retry happens
// only where it is safe: see the README's "Retries" section.
type RetryPolicy struct {
	// MaxAttempts counts every try, the first included; 1 means no retry.
	MaxAttempts int
	// BaseDelay is the first backoff ceiling; each retry doubles it.
	BaseDelay time.Duration
	// MaxDelay caps one backoff wait.
	MaxDelay time.Duration
	// MaxElapsed caps the whole call, waits included. Hours are fine:
	// Mixpanel recommends retrying 429s for hours when a project's scan cap is reached.
	MaxElapsed time.Duration
	// MaxRetryAfter caps how long a server's Retry-After is honoured.
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

func (p RetryPolicy) normalized() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.MaxAttempts < 1 {
		p.MaxAttempts = 1
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

// backoff is the wait before retry number n (1-based): full jitter, a random
// duration in [0, min(MaxDelay, BaseDelay·2^(n-1))), so that many clients
// hitting the same limit spread out instead of retrying in step.
func (p RetryPolicy) backoff(n int, rnd func() float64) time.Duration {
	ceiling := p.BaseDelay
	for i := 1; i < n && ceiling < p.MaxDelay; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, p.MaxDelay)
	return time.Duration(rnd() * float64(ceiling))
}

// wait is the pause before retry n: the server's Retry-After when it gave
// one (capped), else the jittered backoff.
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
