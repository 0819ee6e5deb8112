package mpgdpr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// pipeline is the HttpRequestDoer the generated client sends through: every
// request, the raw client's too, is paced by the rate limiter and retried
// here, and nowhere else.
type pipeline struct{ c *Client }

// Do sends req, retrying what is safe to retry. On a final 429/5xx it
// returns that response for the caller to turn into an *Error.
func (p pipeline) Do(req *http.Request) (*http.Response, error) {
	c := p.c
	ctx := req.Context()
	op := opName(req)
	idempotent := req.Method != http.MethodPost
	pol := c.retry
	start := time.Now()
	for attempt := 1; ; attempt++ {
		if err := c.waitLimiter(ctx); err != nil {
			return nil, err
		}
		r, err := cloneRequest(ctx, req)
		if err != nil {
			return nil, err
		}
		resp, err := c.http.Do(r)
		var retryAfter time.Duration
		var reason string
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, c.scrub(err) // wraps ctx.Err(): errors.Is works
			}
			if !idempotent && !neverSent(err) {
				return nil, &OutcomeUnknownError{Op: op, Err: c.scrub(err)}
			}
			reason = c.redact(c.scrub(err).Error())
		case retryableStatus(resp.StatusCode, idempotent):
			retryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
			reason = resp.Status
		default:
			if !idempotent && (resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout) {
				// A gateway may have passed the create on before failing.
				e := newError(op, resp, c.redact)
				drainClose(resp)
				return nil, &OutcomeUnknownError{Op: op, Err: e}
			}
			return resp, nil
		}
		wait := pol.wait(attempt, retryAfter, c.rand)
		if attempt >= pol.MaxAttempts || time.Since(start)+wait > pol.MaxElapsed {
			if err != nil {
				if !idempotent {
					return nil, &OutcomeUnknownError{Op: op, Err: c.scrub(err)}
				}
				return nil, fmt.Errorf("mpgdpr: %s: giving up after %d attempts: %w", op, attempt, c.scrub(err))
			}
			return resp, nil // the final 429/5xx becomes an *Error
		}
		if resp != nil {
			drainClose(resp)
		}
		c.logger.LogAttrs(ctx, slog.LevelWarn, "mpgdpr: retrying",
			slog.String("op", op),
			slog.Int("attempt", attempt),
			slog.Duration("wait", wait),
			slog.String("reason", reason))
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("mpgdpr: %s: %w while waiting to retry", op, err)
		}
	}
}

// waitLimiter takes a token from the shared bucket. A deadline too close to
// wait for one is reported as context.DeadlineExceeded.
func (c *Client) waitLimiter(ctx context.Context) error {
	if c.limiter == nil {
		return ctx.Err()
	}
	if err := c.limiter.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("mpgdpr: %w: the rate limiter's next slot is past the deadline", context.DeadlineExceeded)
	}
	return nil
}

// retryableStatus: 429 and 503 mean the request was not processed; 502 and
// 504 come from a gateway that may have passed it on, so they are retried
// only for idempotent calls.
func retryableStatus(code int, idempotent bool) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return true
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return idempotent
	}
	return false
}

// neverSent reports failures that prove the request never reached the
// server: it could not connect at all.
func neverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func cloneRequest(ctx context.Context, req *http.Request) (*http.Request, error) {
	r := req.Clone(ctx)
	if req.Body != nil && req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		r.Body = body
	}
	return r, nil
}

// drainClose reads a little of an unwanted body so the connection can be
// reused, then closes it.
func drainClose(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	_ = resp.Body.Close()
}

// opName names the call a request makes, for errors and logs.
func opName(req *http.Request) string {
	p := strings.TrimSuffix(req.URL.Path, "/")
	deletion := strings.Contains(p, "/data-deletions/")
	create := strings.HasSuffix(p, "/v3.0")
	switch {
	case req.Method == http.MethodPost && deletion:
		return "CreateDeletion"
	case req.Method == http.MethodPost:
		return "CreateRetrieval"
	case req.Method == http.MethodDelete:
		return "CancelDeletion"
	case deletion && !create:
		return "CheckDeletion"
	case !create:
		return "CheckRetrieval"
	}
	return req.Method + " " + p
}
