package mpgdpr

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"time"
)

// pipeline is the HttpRequestDoer the generated client sends through: every
// request, the raw client's too, is paced by the rate limiter, retried where
// that is safe, and has its body bounded and cleaned of secrets here, and
// nowhere else.
type pipeline struct{ c *Client }

// Do sends req, retrying what is safe to retry. On a final 429/5xx it
// returns that response for the caller to turn into an *Error. A create
// (POST) that may have reached the server and then failed is never re-sent:
// Do returns an *OutcomeUnknownError instead. That covers a transport failure
// once a connection was made (reset, timeout, cancellation), a 2xx whose
// body could not be read, and any answer CreateRefused does not count as a
// refusal, such as a 5xx other than a 503 with Retry-After (the create may
// have been carried out before the failure).
//
// Before anything is sent, the request is checked as it will leave
// (checkOutgoing): bound for the configured API only, with headers net/http
// can send. Every attempt, and every replay net/http makes inside one, takes
// its turn at the rate limiter, and the whole call is bounded by the
// policy's MaxElapsed.
//
// Each response body Do returns is already in memory: at most 64 KiB of an
// error body and 8 MiB (+1 byte, to detect more) of a success body are read,
// and every occurrence of the client's secrets in it, raw or escaped, is
// replaced by REDACTED (redact.Set.Body), so no later error text or decoded value
// can echo a token a hostile server sent.
func (p pipeline) Do(req *http.Request) (*http.Response, error) {
	c := p.c
	ctx := req.Context()
	op := c.secrets.String(opName(req))
	if err := c.checkOutgoing(req); err != nil {
		return nil, err
	}
	idempotent := req.Method != http.MethodPost
	pol := c.retry
	// A body that cannot be produced again cannot be retried.
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		pol.MaxAttempts = 1
	}
	start := time.Now()
	// MaxElapsed bounds the whole call: the limiter's waits and every
	// attempt in flight too, not only the waits between attempts. Every
	// body Do returns is in memory already, so cancelling at return is safe.
	parent, budget := ctx, start.Add(pol.MaxElapsed)
	pdl, hasDeadline := parent.Deadline()
	budgetFirst := !hasDeadline || budget.Before(pdl)
	if budgetFirst { // else the caller's deadline ends the call first anyway
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, budget)
		defer cancel()
	}
	// lastCause is why the previous attempt failed (a 429's *Error, a
	// reset): when the budget then runs out, the error wraps it too, so
	// that errors.Is(err, ErrRateLimited) still says what happened.
	var lastCause error
	outOfBudget := func(err error, withLast bool) error {
		if !budgetFirst || parent.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if withLast && lastCause != nil {
			return errorf("%s: the retry policy's MaxElapsed (%v) ran out: %w; the attempt before: %w", op, pol.MaxElapsed, err, lastCause)
		}
		return errorf("%s: the retry policy's MaxElapsed (%v) ran out: %w", op, pol.MaxElapsed, err)
	}
	for attempt := 1; ; attempt++ {
		turn, err := c.pace(ctx)
		if err != nil {
			return nil, outOfBudget(err, true)
		}
		if attempt == 1 {
			if f := beforeSendHook(ctx); f != nil {
				if err := f(); err != nil {
					turn.cancel() // nothing was sent: the next request need not wait for this one
					return nil, &beforeSendError{err}
				}
			}
		}
		resp, sent, err := c.attempt(ctx, req, attempt, idempotent, turn)
		res := attemptResult{idempotent: idempotent, sent: sent, err: err, ctxDone: ctx.Err() != nil}
		if resp != nil {
			res.status, res.header = resp.StatusCode, resp.Header
		}
		var retryAfter time.Duration
		var reason string
		status := 0
		switch d, _ := shouldRetry(res); {
		case d == refused:
			return nil, c.scrub(err) // neither unknown nor worth a retry
		case d == unknown:
			// Not the attempt before's cause: a 429 of an earlier try
			// must not make this one look refused.
			return nil, &OutcomeUnknownError{Op: op, Err: outOfBudget(c.scrub(err), false)}
		case d == fail:
			return nil, outOfBudget(c.scrub(err), true) // a cancellation keeps its cause: errors.Is works
		case d == deliver:
			return c.final(op, resp, idempotent)
		case err != nil:
			reason = c.secrets.String(c.scrub(err).Error())
		default:
			retryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
			reason = c.secrets.String(resp.Status) // the reason phrase is the server's text
			status = resp.StatusCode
		}
		wait := pol.wait(attempt, retryAfter, c.rand)
		// Subtracting keeps budgets of any size from overflowing.
		if !pol.attemptsLeft(attempt) || wait > pol.MaxElapsed-time.Since(start) || pastDeadline(ctx, wait) {
			if err != nil {
				return nil, errorf("%s: giving up after %d attempts: %w", op, attempt, c.scrub(err))
			}
			return c.final(op, resp, idempotent) // the last 429/5xx becomes an *Error
		}
		if resp != nil {
			// As much as draining reads (drainClose): a retried answer's
			// message, kept for an error should the budget run out.
			_ = c.buffer(resp, 4<<10)
			lastCause = newError(op, resp, c.secrets.Deep)
		} else {
			lastCause = c.scrub(err)
		}
		attrs := []slog.Attr{
			slog.String("op", op),
			slog.Int("attempt", attempt),
			slog.Duration("wait", wait),
			slog.String("reason", reason),
		}
		if status != 0 {
			attrs = append(attrs, slog.Int("status", status))
		}
		c.logger.LogAttrs(ctx, slog.LevelWarn, RetryLogMessage, attrs...)
		if err := sleep(ctx, wait); err != nil {
			if e := outOfBudget(err, true); e != err {
				return nil, e
			}
			return nil, errorf("%s: %w while waiting to retry", op, err)
		}
	}
}

// attempt sends req once. sent is false only when the request provably did
// not reach the server: the dial failed, or (with the standard transport,
// whose trace hooks are reliable) no connection was obtained at all. A
// create (not idempotent) needs sent, and a paced request (a limiter is
// set) needs its round trip and its replays paced, so those carry the
// trace. The turn at the rate limiter ends once the answer's headers have
// arrived or the attempt failed.
//
// net/http replays a request on a new connection when a kept-alive one
// drops after the request was written (a GET, or any request of which
// nothing was written), and the http.Client follows a redirect to the API
// host: requests on the wire that took no turn. The GotConn hook runs
// before each write, so it takes a turn for every connection after the
// first of the attempt (replayTurn).
//
// The first attempt sends req itself, or a shallow copy carrying the trace
// and the call's context: net/http does not modify a request it is given,
// and the body is read only once. A retry sends a clone with a fresh body
// from GetBody, since the transport may still hold the previous attempt's
// body.
func (c *Client) attempt(ctx context.Context, req *http.Request, n int, idempotent bool, turn *turn) (resp *http.Response, sent bool, err error) {
	var st *attemptTrace
	if !idempotent || c.limiter != nil {
		st = newAttemptTrace()
		if c.limiter != nil {
			st.replay = func(conn net.Conn) { c.replayTurn(ctx, turn, conn) }
		}
		ctx = httptrace.WithClientTrace(ctx, &st.trace)
	}
	r := req
	switch {
	case n > 1:
		if r, err = cloneRequest(ctx, req); err != nil {
			turn.end(0, time.Time{}, 0)
			return nil, false, err
		}
	case ctx != req.Context():
		r = req.WithContext(ctx)
	}
	resp, err = c.send.Do(r)
	if turn != nil {
		status := 0
		if err == nil {
			status = resp.StatusCode
		}
		firstByte, rtt := st.answered()
		turn.end(status, firstByte, rtt)
	}
	if err != nil {
		if neverSent(err) {
			return nil, false, err
		}
		return nil, !(c.stdTransport && st != nil && !st.connected()), err
	}
	if resp.StatusCode/100 == 2 {
		// Read a success body here, where a failure can still be retried
		// (for a check) or reported as an unknown outcome (for a create).
		if err := c.buffer(resp, maxSuccessBody+1); err != nil {
			return nil, true, err
		}
	}
	return resp, true, nil
}

// final prepares the response Do returns: an error body is read (bounded)
// and cleaned; an answer to a create that CreateRefused does not count as
// a refusal is an unknown outcome.
func (c *Client) final(op string, resp *http.Response, idempotent bool) (*http.Response, error) {
	if resp.StatusCode/100 != 2 {
		_ = c.buffer(resp, maxErrorBody) // a partial error body is still worth showing
	}
	if !idempotent && resp.StatusCode/100 != 2 && !CreateRefused(resp.StatusCode, resp.Header) {
		e := newError(op, resp, c.secrets.Deep)
		drainClose(resp)
		return nil, &OutcomeUnknownError{Op: op, Err: e}
	}
	return resp, nil
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

// isStdTransport reports whether rt is net/http's own transport, whose
// GotConn trace hook tells reliably whether a connection was made.
func isStdTransport(rt http.RoundTripper) bool {
	if rt == nil {
		return true
	}
	_, ok := rt.(*http.Transport)
	return ok
}

// redirectError marks a redirect the client refused: trying again would
// only be refused again.
type redirectError struct{ err error }

func (e *redirectError) Error() string { return e.err.Error() }
func (e *redirectError) Unwrap() error { return e.err }

// markRedirects returns a copy of the client's http.Client whose redirect
// refusals are recognisable as such.
func (c *Client) markRedirects() *http.Client {
	hc := *c.http
	check := c.http.CheckRedirect
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if check == nil {
			return nil
		}
		err := check(req, via)
		if err == nil || errors.Is(err, http.ErrUseLastResponse) {
			return err
		}
		return &redirectError{err}
	}
	return &hc
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
