package mpgdpr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net/http"
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

// pastDeadline reports whether ctx ends before a wait of d does: then the
// retry could not happen, and the last failure is more useful than a
// context error reported d later.
func pastDeadline(ctx context.Context, d time.Duration) bool {
	dl, ok := ctx.Deadline()
	return ok && time.Until(dl) < d
}

// retryableStatus: 429, 502, 503 and 504 are retried for idempotent calls.
// A create is retried only on 429 and on a 503 that CreateRefused counts as
// a refusal (it carries Retry-After): any other of these may come from a
// gateway that passed the request on.
func retryableStatus(code int, h http.Header, idempotent bool) bool {
	switch code {
	case http.StatusTooManyRequests:
		return true
	case http.StatusServiceUnavailable:
		return idempotent || CreateRefused(code, h)
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return idempotent
	}
	return false
}

// refusedUnsent reports an error from a wrapping transport that refused to
// send the request at all, such as contract.Transport in strict mode
// rejecting a request the spec forbids. Sending it again would fail again,
// and since it was never sent, a create's outcome is known: not filed.
func refusedUnsent(err error) bool {
	var rs interface{ RequestSent() bool }
	return errors.As(err, &rs) && !rs.RequestSent()
}

// unretryable reports transport failures that a retry cannot fix: a
// refused redirect, and a server certificate that does not verify.
func unretryable(err error) bool {
	var re *redirectError
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &re) || errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}

// decision is what the pipeline does after one attempt (shouldRetry).
type decision int

const (
	// deliver: hand the answer on, a success or an error status that a
	// retry would not change (final turns the latter into an *Error).
	deliver decision = iota
	// retry: try again, if the policy's attempts and time allow.
	retry
	// refused: a wrapping transport refused to send the request (or the
	// redirect): not sent, so neither retried nor an unknown outcome.
	refused
	// unknown: a create that may have reached the server failed; never
	// re-sent (ErrOutcomeUnknown).
	unknown
	// fail: a failure a retry cannot fix, or the call's context ended.
	fail
)

// attemptResult is what shouldRetry looks at: how one attempt ended.
type attemptResult struct {
	idempotent bool        // not a create
	sent       bool        // the request may have reached the server
	err        error       // a transport failure, or nil
	ctxDone    bool        // the call's context (or MaxElapsed) has ended
	status     int         // the answer's status, when err is nil
	header     http.Header // the answer's headers, when err is nil
}

// shouldRetry is the one retry rule of the pipeline, as a pure function:
// what to do after an attempt, and why (for tests and for reading). The
// policy's budget (attempts, MaxElapsed, the context's deadline) is checked
// afterwards, for a retry only.
//
//	transport failure, wrapper refused to send it      refused
//	transport failure, create that may have been sent  unknown
//	transport failure, context ended                   fail
//	refused redirect, certificate that does not verify fail
//	any other transport failure                        retry (a check; a create never connected)
//	429; 503 (a create: only with Retry-After);
//	  502 and 504 (checks only)                        retry
//	anything else                                      deliver
func shouldRetry(a attemptResult) (decision, string) {
	switch {
	case a.err != nil && refusedUnsent(a.err):
		return refused, "refused before sending"
	case a.err != nil && !a.idempotent && a.sent:
		return unknown, "a create failed after it may have reached the server"
	case a.err != nil && a.ctxDone:
		return fail, "the context ended"
	case a.err != nil && unretryable(a.err):
		return fail, "a retry cannot fix it (refused redirect or certificate)"
	case a.err != nil && !a.sent:
		return retry, "the request never reached the server"
	case a.err != nil:
		return retry, "a transport failure of a check or cancel"
	case retryableStatus(a.status, a.header, a.idempotent):
		return retry, "a status that may pass on a retry"
	}
	return deliver, "the answer" // no formatting: this is every call's path
}
