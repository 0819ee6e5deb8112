package budget

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testParams(share float64) params {
	return params{gap: 100 * time.Millisecond, lease: time.Minute, ratio: share / (1 - share)}
}

// TestStateHoldsUntilAnswered: a grant holds the slot until released, and
// the next grant comes one interval after the answer, not after the grant.
func TestStateHoldsUntilAnswered(t *testing.T) {
	p := testParams(0.5)
	var s state
	if v := s.take(t0, Create, false, p, 1); !v.granted {
		t.Fatal("first take refused")
	}
	// Long after one interval, but the answer is not in yet.
	if v := s.take(t0.Add(time.Second), Create, false, p, 2); v.granted || v.wait <= 0 {
		t.Fatalf("take while held: %+v", v)
	}
	answered := t0.Add(1500 * time.Millisecond)
	s.release(answered, 1, p)
	if v := s.take(answered.Add(p.gap-time.Microsecond), Poll, false, p, 3); v.granted || v.wait != time.Microsecond {
		t.Fatalf("take just before answer+gap: %+v", v)
	}
	if v := s.take(answered.Add(p.gap), Poll, false, p, 3); !v.granted {
		t.Fatalf("take at answer+gap refused: %+v", v)
	}
	// A fast answer: the grant's own time plus one interval still holds.
	s.release(answered.Add(p.gap), 3, p)
	if v := s.take(answered.Add(p.gap+p.gap/2), Poll, false, p, 4); v.granted {
		t.Fatal("granted less than an interval after the previous answer")
	}
}

// TestStateLeaseExpires: a holder that never releases is taken as dead at
// its lease end, and the next grant waits one more interval.
func TestStateLeaseExpires(t *testing.T) {
	p := testParams(0.5)
	var s state
	s.take(t0, Create, false, p, 1)
	end := t0.Add(p.lease)
	if v := s.take(end.Add(-time.Millisecond), Create, false, p, 2); v.granted {
		t.Fatal("granted before the lease ended")
	}
	if v := s.take(end, Create, false, p, 2); v.granted || v.wait != p.gap {
		t.Fatalf("at lease end: %+v, want a wait of one interval", v)
	}
	if v := s.take(end.Add(p.gap), Create, false, p, 2); !v.granted {
		t.Fatal("refused one interval after the lease ended")
	}
	// The dead holder's late release does not free the new holder's slot.
	s.release(end.Add(p.gap), 1, p)
	if s.Holder != 2 {
		t.Fatalf("holder %d after a stale release, want 2", s.Holder)
	}
}

// TestStatePollShare: while creates wait, polls get share/(1-share) turns
// per create; without creates, every turn.
func TestStatePollShare(t *testing.T) {
	for _, tc := range []struct {
		share float64
		want  string
	}{
		{0.5, "CPCPCPCP"},
		{0.75, "CPPPCPPP"},
		{0.2, "CCCCPCCC"},
		{0, "CCCCCCCC"},
	} {
		p := testParams(tc.share)
		var s state
		now := t0
		got := ""
		for len(got) < 8 {
			// Both a poll and a create want the slot: the poll asks first.
			var v verdict
			for _, k := range []Kind{Poll, Create} {
				if v = s.take(now, k, true, p, 1); v.granted {
					got += k.String()[:1]
					break
				}
			}
			if !v.granted {
				t.Fatalf("share %v: nobody granted at %v", tc.share, now)
			}
			now = now.Add(p.gap)
			s.release(now.Add(-p.gap), 1, p)
		}
		if got = upper(got); got != tc.want {
			t.Errorf("share %v: order %s, want %s", tc.share, got, tc.want)
		}
	}
	// No create waiting: polls take every turn.
	p := testParams(0)
	var s state
	for i := range 5 {
		now := t0.Add(time.Duration(i) * p.gap)
		if v := s.take(now, Poll, false, p, 1); !v.granted {
			t.Fatalf("poll %d refused with no create waiting", i)
		}
		s.release(now, 1, p)
	}
}

func upper(s string) string {
	b := []byte(s)
	for i := range b {
		b[i] -= 'a' - 'A'
	}
	return string(b)
}
