package mpgdpr

import (
	"context"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"golang.org/x/time/rate"
)

// pace waits for the caller's turn to send. The turn, nil if the limiter
// needs none, must be ended (turn.end) once the answer's first byte arrives
// or the attempt fails.
//
// A limiter with a burst above 1 is a plain token bucket. A burst-1 limiter
// (Mixpanel's 1 request/second) is enforced to the letter by a strict
// server: two requests arriving closer than 1/r draw a 429. Token instants
// alone do not prevent that: a request delayed on its way in is followed
// too closely by the next one, sent on time. So each send also waits one
// interval from the previous answer's first byte, less a credit. The server
// timed the previous request at least the answer's way back before that
// byte, and the next request reaches the server at least its own way in
// after it is sent; the credit is half the fastest round trip seen so far on
// this limiter (connection obtained to first byte, so dialling never
// counts). A delayed request still delays the next one by as much, and only
// two legs together faster than half the best round trip ever seen could
// arrive early. Before creditAfter answers, with a transport that does not
// call the trace hooks, and for good after a 429 under this limiter, there
// is no credit: the rule is then pure causality, which no network can
// break. Without the credit a bulk job loses a round trip plus the server's
// time every interval (10-30 % of Mixpanel's ceiling from far away); the
// credit gives back half the best round trip. BENCHMARKS.md has numbers.
//
// The turn is held until it ends, so requests sharing a burst-1 limiter
// are sent one at a time, across every client sharing it. A deadline too
// close to wait for a token is reported as context.DeadlineExceeded.
func (c *Client) pace(ctx context.Context) (*turn, error) {
	l := c.limiter
	if l == nil {
		return nil, ctx.Err()
	}
	lim := l.Limit()
	if l.Burst() != 1 || lim <= 0 || lim == rate.Inf {
		// A burst allows requests closer than 1/r: the token bucket is the
		// whole rule, and a late wake-up only costs time.
		if err := l.Wait(ctx); err != nil {
			return nil, waitError(ctx)
		}
		return nil, nil
	}
	p := pacerFor(l)
	gap := time.Duration(float64(time.Second) / float64(lim))
	select {
	case p.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	giveBack := func() { <-p.turn }
	now := time.Now()
	res := l.ReserveN(now, 1)
	if !res.OK() {
		giveBack()
		return nil, waitError(ctx)
	}
	at := now.Add(res.DelayFrom(now))
	if next := p.last.Add(gap - p.credit(gap)); next.After(at) {
		at = next
	}
	if dl, ok := ctx.Deadline(); ok && dl.Before(at) {
		res.CancelAt(now)
		giveBack()
		return nil, waitError(ctx)
	}
	if err := sleepUntil(ctx, at); err != nil {
		res.Cancel()
		giveBack()
		return nil, err
	}
	return &turn{p: p}, nil
}

// turn is one request's place in a burst-1 limiter's send order.
type turn struct {
	p     *pacer
	ended bool
}

// cancel gives the turn back unused: nothing was sent, so the next
// request's wait does not count from now (the limiter's token is spent
// all the same: x/time/rate cannot return a token already acted on). It is
// a no-op on a nil or ended turn.
func (t *turn) cancel() {
	if t == nil || t.ended {
		return
	}
	t.ended = true
	<-t.p.turn
}

// end records the attempt's outcome, the answer's status (0 if none came),
// when its first byte came and its round trip (zero if not measured), and
// lets the next request have its turn. It is a no-op on a nil or ended turn.
func (t *turn) end(status int, firstByte time.Time, rtt time.Duration) {
	if t == nil || t.ended {
		return
	}
	t.ended = true
	if firstByte.IsZero() {
		firstByte = time.Now()
	}
	t.p.last = firstByte
	t.p.observe(status, rtt)
	<-t.p.turn
}

// waitError is the error for a limiter wait that cannot end in time.
func waitError(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return errorf("%w: the rate limiter's next slot is past the deadline", context.DeadlineExceeded)
}

// spinBefore is how long before a burst-1 send sleepUntil stops sleeping
// on a timer and yields in a loop instead. Go's timers wake up to about
// 1 ms late on Linux (the poller's timeout has millisecond resolution); at
// 50 requests/s that alone cost 3-5 % of the rate. The spin costs at most
// this much CPU per request: 0.15 % of a core at Mixpanel's 1 request/s.
const spinBefore = 1500 * time.Microsecond

// sleepUntil returns at t, within microseconds, or with ctx's error if ctx
// ends first.
func sleepUntil(ctx context.Context, t time.Time) error {
	if err := sleep(ctx, time.Until(t)-spinBefore); err != nil {
		return err
	}
	for time.Until(t) > 0 {
		runtime.Gosched()
	}
	return ctx.Err()
}

// pacer is the send-order state of one burst-1 limiter, shared by every
// client using that limiter. Fields other than turn are guarded by turn.
type pacer struct {
	turn    chan struct{} // capacity 1: whoever put a value in may send next
	last    time.Time     // when the previous turn's answer began to arrive
	bestRTT time.Duration // fastest round trip answered so far
	samples int           // answers whose round trip was measured
	strict  bool          // a 429 was seen: no more credit
}

// creditAfter is how many measured answers a pacer needs before it gives
// credit. A server's first answers are often its slowest (caches still
// cold), and a minimum over one or two would overstate the fastest round
// trip: in the benchmark, the first answer took three times the later ones.
const creditAfter = 3

// credit is how much earlier than one interval after the previous answer
// the next request may go: half the best round trip, at most half an
// interval, and none once the server has answered 429.
func (p *pacer) credit(gap time.Duration) time.Duration {
	if p.strict || p.samples < creditAfter {
		return 0
	}
	return min(p.bestRTT/2, gap/2)
}

// observe records an attempt's outcome: the round trip of an answer, or a
// 429, after which the pacer never gives credit again. Whatever caused it
// (another client of the project, a server stricter than assumed), a bulk
// job then runs at the slower, provable spacing rather than risk another.
func (p *pacer) observe(status int, rtt time.Duration) {
	switch {
	case status == http.StatusTooManyRequests:
		p.strict = true
	case status != 0 && rtt > 0:
		if p.samples == 0 || rtt < p.bestRTT {
			p.bestRTT = rtt
		}
		p.samples++
	}
}

// pacers maps a limiter to its pacer. Keys are weak so that a limiter no
// client uses any more is collected, and its entry removed.
var pacers sync.Map // weak.Pointer[rate.Limiter] → *pacer

func pacerFor(l *rate.Limiter) *pacer {
	k := weak.Make(l)
	if p, ok := pacers.Load(k); ok {
		return p.(*pacer)
	}
	p, loaded := pacers.LoadOrStore(k, &pacer{turn: make(chan struct{}, 1)})
	if !loaded {
		runtime.AddCleanup(l, func(k weak.Pointer[rate.Limiter]) { pacers.Delete(k) }, k)
	}
	return p.(*pacer)
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
