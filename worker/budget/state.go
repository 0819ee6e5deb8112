package budget

import "time"

// state is one project's budget, as the Memory budget keeps it in memory
// and the Postgres budget in a row of mpgdpr_budget. Times are the
// keeper's clock: monotonic time in memory, the database's clock_timestamp()
// in Postgres, so that processes whose clocks differ agree.
type state struct {
	NextAt    time.Time // no grant before this
	Holder    int64     // the grant in flight, 0 if none
	HeldUntil time.Time // its lease end
	Tokens    float64   // polls that may go while creates wait
}

// params are one project's numbers.
type params struct {
	gap   time.Duration // 1/rate plus the margin
	lease time.Duration
	ratio float64 // polls per create while creates wait: share/(1-share)
}

// heldRecheck is how often a waiter looks again while the slot is held
// past the earliest time it could be released; only a request slower than
// one interval makes that happen.
func (p params) heldRecheck() time.Duration {
	return min(max(p.gap/20, 2*time.Millisecond), 100*time.Millisecond)
}

// verdict is the outcome of one try.
type verdict struct {
	granted bool
	wait    time.Duration // if not granted: when to try again at the latest
}

// take tries to grant one request of kind at now, to holder (non-zero).
// createsWaiting says whether a create, anywhere, is waiting for the
// project; it matters for polls only.
func (s *state) take(now time.Time, kind Kind, createsWaiting bool, p params, holder int64) verdict {
	if s.Holder != 0 {
		if now.Before(s.HeldUntil) {
			// One request at a time: the next may only go one interval
			// after this one's answer. NextAt is at least the grant's
			// time plus one interval, the earliest that can be.
			return verdict{wait: max(s.NextAt.Sub(now), p.heldRecheck())}
		}
		// The holder neither released nor kept its lease: it is taken
		// as dead. It had to send by HeldUntil, so one interval after
		// that its request has arrived.
		s.NextAt = later(s.NextAt, s.HeldUntil.Add(p.gap))
		s.Holder, s.HeldUntil = 0, time.Time{}
	}
	if now.Before(s.NextAt) {
		return verdict{wait: s.NextAt.Sub(now)}
	}
	switch kind {
	case Poll:
		if createsWaiting {
			if s.Tokens < 1 {
				// The creates' turn: look again in an interval,
				// when a create will have gone and earned polls a
				// token.
				return verdict{wait: p.gap}
			}
			s.Tokens--
		}
	case Create:
		s.Tokens = min(s.Tokens+p.ratio, max(1, p.ratio))
	}
	s.Holder = holder
	s.HeldUntil = now.Add(p.lease)
	s.NextAt = now.Add(p.gap)
	return verdict{granted: true}
}

// release ends holder's grant, whose answer came at answered: the next
// request may go one interval later. A release after the lease ended
// (another holder has the slot) still pushes NextAt: the answer is real.
func (s *state) release(answered time.Time, holder int64, p params) {
	s.NextAt = later(s.NextAt, answered.Add(p.gap))
	if s.Holder == holder {
		s.Holder, s.HeldUntil = 0, time.Time{}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
