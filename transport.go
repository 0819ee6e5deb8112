package mpgdpr

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync/atomic"
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
			return fmt.Errorf("mpgdpr: %s: the retry policy's MaxElapsed (%v) ran out: %w; the attempt before: %w", op, pol.MaxElapsed, err, lastCause)
		}
		return fmt.Errorf("mpgdpr: %s: the retry policy's MaxElapsed (%v) ran out: %w", op, pol.MaxElapsed, err)
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
		var retryAfter time.Duration
		var reason string
		status := 0
		switch {
		case err != nil:
			if refusedUnsent(err) {
				return nil, c.scrub(err) // refused before sending: neither unknown nor worth a retry
			}
			if !idempotent && sent {
				// Not the attempt before's cause: a 429 of an earlier try
				// must not make this one look refused.
				return nil, &OutcomeUnknownError{Op: op, Err: outOfBudget(c.scrub(err), false)}
			}
			if ctx.Err() != nil || unretryable(err) {
				return nil, outOfBudget(c.scrub(err), true) // a cancellation keeps its cause: errors.Is works
			}
			reason = c.secrets.String(c.scrub(err).Error())
		case retryableStatus(resp.StatusCode, resp.Header, idempotent):
			retryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
			reason = c.secrets.String(resp.Status) // the reason phrase is the server's text
			status = resp.StatusCode
		default:
			return c.final(op, resp, idempotent)
		}
		wait := pol.wait(attempt, retryAfter, c.rand)
		// Subtracting keeps budgets of any size from overflowing.
		if !pol.attemptsLeft(attempt) || wait > pol.MaxElapsed-time.Since(start) || pastDeadline(ctx, wait) {
			if err != nil {
				return nil, fmt.Errorf("mpgdpr: %s: giving up after %d attempts: %w", op, attempt, c.scrub(err))
			}
			return c.final(op, resp, idempotent) // the last 429/5xx becomes an *Error
		}
		if resp != nil {
			_ = c.buffer(resp, maxErrorBody)
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
		c.logger.LogAttrs(ctx, slog.LevelWarn, "mpgdpr: retrying", attrs...)
		if err := sleep(ctx, wait); err != nil {
			if e := outOfBudget(err, true); e != err {
				return nil, e
			}
			return nil, fmt.Errorf("mpgdpr: %s: %w while waiting to retry", op, err)
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

// replayTurn paces a request net/http is about to write within an attempt
// that already sent one (a replay, or a followed redirect). With a burst-1 limiter the attempt still
// holds its turn (t); the replay goes one interval after now, when the
// previous write is known to have failed (so it arrived, if at all, before
// now), and after a token: pure causality, no credit. Another limiter
// just gives a token. If the wait cannot end (the context ended), the
// connection is closed before anything is written on it, so the replay
// fails instead of going out unpaced.
func (c *Client) replayTurn(ctx context.Context, t *turn, conn net.Conn) {
	l := c.limiter
	var err error
	if t != nil {
		now := time.Now()
		at := now.Add(time.Duration(float64(time.Second) / float64(l.Limit())))
		if res := l.ReserveN(now, 1); res.OK() {
			at = maxTime(at, now.Add(res.DelayFrom(now)))
		}
		err = sleepUntil(ctx, at)
	} else {
		err = l.Wait(ctx)
	}
	if err != nil && conn != nil {
		_ = conn.Close()
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// attemptTrace records when an attempt obtained its (latest) connection
// and when the answer's first byte came, in nanoseconds since start (0:
// not yet), and paces replays (replay, nil if unpaced). The hooks may run
// on the transport's goroutines, even after Do returned.
type attemptTrace struct {
	start           time.Time
	conns           atomic.Int32
	conn, firstByte atomic.Int64
	replay          func(net.Conn)
	trace           httptrace.ClientTrace
}

func newAttemptTrace() *attemptTrace {
	a := &attemptTrace{start: time.Now()}
	a.trace.GotConn = a.gotConn
	a.trace.GotFirstResponseByte = a.gotFirstByte
	return a
}

func (a *attemptTrace) since() int64 { return max(1, int64(time.Since(a.start))) }

func (a *attemptTrace) gotConn(info httptrace.GotConnInfo) {
	if a.conns.Add(1) > 1 && a.replay != nil {
		a.replay(info.Conn) // before the time is taken: the wait is not round trip
	}
	a.conn.Store(a.since())
}

func (a *attemptTrace) gotFirstByte() { a.firstByte.Store(a.since()) }

func (a *attemptTrace) connected() bool { return a.conn.Load() != 0 }

// answered reports when the answer's first byte came and the round trip
// from obtaining the connection to then: the network both ways plus the
// server's time, without dialling. Both are zero if a hook did not run (a
// transport other than net/http's may never call them).
func (a *attemptTrace) answered() (firstByte time.Time, rtt time.Duration) {
	c, f := a.conn.Load(), a.firstByte.Load()
	if c == 0 || f <= c {
		return time.Time{}, 0
	}
	return a.start.Add(time.Duration(f)), time.Duration(f - c)
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

// buffer replaces resp.Body by at most limit bytes of it, in memory, with
// every secret redacted (redact.Set.Body), and closes the network body: a hostile
// server can neither make the client read more nor get a token echoed back
// into an error, a decoded value or a link.
func (c *Client) buffer(resp *http.Response, limit int64) error {
	b, err := readAtMost(resp.Body, limit, resp.ContentLength)
	_ = resp.Body.Close()
	b, cleaned := c.secrets.Body(b)
	mb := &memBody{b: b, cleaned: cleaned}
	mb.r.Reset(b)
	resp.Body = mb
	resp.ContentLength = int64(len(b)) // what is left to read now
	// Set Content-Length only when it changes: formatting it and replacing
	// the header costs two allocations per call.
	var num [20]byte
	if v := resp.Header["Content-Length"]; len(v) != 1 || v[0] != string(strconv.AppendInt(num[:0], int64(len(b)), 10)) {
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	}
	return err
}

// readAtMost reads r up to EOF or limit bytes, like
// io.ReadAll(io.LimitReader(r, limit)), into one buffer sized from the
// announced length (hint, -1 if unknown) when there is one.
func readAtMost(r io.Reader, limit, hint int64) ([]byte, error) {
	size := int64(512)
	if hint >= 0 {
		size = hint + 1 // room to see EOF without growing
	}
	b := make([]byte, 0, min(size, limit))
	for int64(len(b)) < limit {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // let append pick the growth
		}
		room := b[len(b):min(int64(cap(b)), limit)]
		n, err := r.Read(room)
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// memBody is a response body the pipeline has already read into memory.
// cleaned says a secret was found in it and replaced: a task id or link
// holding REDACTED then came from a secret (see Client.tainted).
type memBody struct {
	r       bytes.Reader
	b       []byte
	cleaned bool
}

func (m *memBody) Read(p []byte) (int, error) { return m.r.Read(p) }
func (m *memBody) Close() error               { return nil }

// take returns what is left unread and marks it read, without a copy.
func (m *memBody) take() []byte {
	rest := m.b[len(m.b)-m.r.Len():]
	m.r.Reset(nil)
	return rest
}

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
	if _, ok := resp.Body.(*memBody); ok {
		return // in memory already: nothing to drain, nothing to close
	}
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
