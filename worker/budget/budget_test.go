package budget

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/privacykit/mpgdpr/worker/internal/pgtest"
)

// testRate keeps the tests short: 20 requests/s, one every 50 ms.
const testRate = 20

var testLimits = Limits{Rate: testRate, PollShare: 0.5}

// implementations runs f on each Budget implementation.
func implementations(t *testing.T, f func(t *testing.T, newBudget func(...Option) Budget)) {
	t.Run("memory", func(t *testing.T) {
		f(t, func(opts ...Option) Budget {
			b, err := NewMemory(opts...)
			if err != nil {
				t.Fatal(err)
			}
			return b
		})
	})
	t.Run("postgres", func(t *testing.T) {
		pool := testPool(t)
		f(t, func(opts ...Option) Budget {
			b, err := NewPostgres(pool, opts...)
			if err != nil {
				t.Fatal(err)
			}
			return b
		})
	})
}

// testPool is a pool on a fresh, migrated database.
func testPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := pgtest.URL(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return pool
}

// TestGoroutinesNoTooSoon: many goroutines, creates and polls for two
// projects, against a server that answers 429 to any two requests of a
// project closer than 1/rate: none, and between two creates at most one
// poll (share 0.5).
func TestGoroutinesNoTooSoon(t *testing.T) {
	implementations(t, func(t *testing.T, newBudget func(...Option) Budget) {
		a := newArrivals(t, testRate)
		b := newBudget(WithDefaultLimits(testLimits))
		l := load{
			{Project: "eu", Creators: 8, Creates: 1, Pollers: 4, Polls: 6, Together: true},
			{Project: "us", Creators: 8, Creates: 1, Pollers: 4, Polls: 6, Together: true},
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := l.run(ctx, b, a.srv.URL); err != nil {
			t.Fatal(err)
		}
		checkArrivals(t, a, []string{"eu", "us"}, []string{"eu", "us"}, l)
	})
}

// checkArrivals checks a's log after loads ran: every request arrived,
// none too soon, and in the projects of share, polls kept to their share
// (0.5: one between two creates) while creates waited.
func checkArrivals(t testing.TB, a *arrivals, projects, share []string, loads ...load) {
	t.Helper()
	if too := a.tooSoon(); len(too) != 0 {
		t.Errorf("429s (requests arriving closer than 1/rate) by project: %v", too)
	}
	for _, p := range projects {
		kinds := a.kinds(p)
		creates, polls := 0, 0
		for _, k := range kinds {
			if k == Create {
				creates++
			} else {
				polls++
			}
		}
		if wc, wp := total(p, loads...); creates != wc || polls != wp {
			t.Errorf("%s: %d creates and %d polls arrived, want %d and %d", p, creates, polls, wc, wp)
		}
	}
	for _, p := range share {
		if run := maxPollsBetweenCreates(a.kinds(p)); run > 1 {
			t.Errorf("%s: %d polls in a row while creates waited (share 0.5 allows 1): %v", p, run, a.kinds(p))
		}
	}
}

// TestCancelWhileWaiting: Take returns ctx's error when ctx ends while the
// slot is held by a grant that is never released.
func TestCancelWhileWaiting(t *testing.T) {
	implementations(t, func(t *testing.T, newBudget func(...Option) Budget) {
		b := newBudget(WithDefaultLimits(testLimits), WithLease(time.Hour))
		g, err := b.Take(context.Background(), "p", Create)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Release(Answer{})
		for _, k := range []Kind{Create, Poll} {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				_, err := b.Take(ctx, "p", k)
				done <- err
			}()
			time.Sleep(3 * testParams(0).gap) // let it wait a few rounds
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("%v: Take returned %v, want context.Canceled", k, err)
				}
			case <-time.After(20 * time.Second): // a hang, not a speed check
				t.Fatalf("%v: Take did not return after its context was canceled", k)
			}
		}
		// A deadline in the past: refused at once, nothing held.
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		if _, err := b.Take(ctx, "q", Create); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("expired context: %v", err)
		}
	})
}

// TestLeaseTakesOver: a holder that never releases blocks its project only
// until its lease ends; other projects are not blocked at all.
func TestLeaseTakesOver(t *testing.T) {
	implementations(t, func(t *testing.T, newBudget func(...Option) Budget) {
		b := newBudget(WithDefaultLimits(testLimits), WithLease(300*time.Millisecond))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		dead, err := b.Take(ctx, "p", Create) // never released
		if err != nil {
			t.Fatal(err)
		}
		if dl := dead.Deadline(); dl.IsZero() {
			t.Error("grant without a deadline")
		}
		other, err := b.Take(ctx, "other", Poll)
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Release(Answer{}); err != nil {
			t.Fatal(err)
		}
		next, err := b.Take(ctx, "p", Poll)
		if err != nil {
			t.Fatal(err)
		}
		if err := next.Release(Answer{At: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := next.Release(Answer{}); err != nil {
			t.Errorf("second Release: %v", err)
		}
	})
}

// TestInvalid: bad arguments and limits are refused before any wait.
func TestInvalid(t *testing.T) {
	b, err := NewMemory()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := b.Take(ctx, "", Create); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty project: %v", err)
	}
	if _, err := b.Take(ctx, "p", Kind(0)); !errors.Is(err, ErrInvalid) {
		t.Errorf("kind 0: %v", err)
	}
	for _, l := range []Limits{{Rate: 0}, {Rate: -1}, {Rate: 1, PollShare: 1}, {Rate: 1, PollShare: -0.1}} {
		if _, err := NewMemory(WithDefaultLimits(l)); err == nil {
			t.Errorf("limits %+v accepted", l)
		}
		if _, err := NewMemory(WithProjectLimits("p", l)); err == nil {
			t.Errorf("project limits %+v accepted", l)
		}
	}
	if _, err := NewPostgres(nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil pool: %v", err)
	}
}

// TestProcessesNoTooSoon: three processes share one Postgres budget, with
// creates and polls for two projects: no request arrives too soon. In eu,
// one process files the creates, all waiting together from the start, and
// all three poll: there, polls keep to their share while creates wait. (In
// us every process creates, one create after another: a process
// descheduled between two of its creates stops waiting for a moment, so the
// order there proves nothing about the share.)
func TestProcessesNoTooSoon(t *testing.T) {
	url := pgtest.URL(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	a := newArrivals(t, testRate)
	creator := load{
		{Project: "eu", Creators: 8, Creates: 1, Pollers: 2, Polls: 4, Together: true},
		{Project: "us", Creators: 2, Creates: 2, Pollers: 1, Polls: 3},
	}
	poller := load{
		{Project: "eu", Pollers: 2, Polls: 4},
		{Project: "us", Creators: 2, Creates: 2, Pollers: 1, Polls: 3},
	}
	runProcesses(t, url, a, testLimits, creator, poller, poller)
	checkArrivals(t, a, []string{"eu", "us"}, []string{"eu"}, creator, poller, poller)
}

// TestMigrateIdempotent: Migrate from several connections at once on a
// fresh database, and again, is fine.
func TestMigrateIdempotent(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- Migrate(ctx, pool) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if err := Migrate(ctx, pool); err != nil {
		t.Error(err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename IN ('mpgdpr_budget', 'mpgdpr_budget_waiter')").Scan(&n); err != nil || n != 2 {
		t.Errorf("tables: %d, %v", n, err)
	}
}

// TestLateSendDoesNotBunch: a holder that sends late (descheduled between
// Take and its send, here for one and a half intervals) does not bring the next
// request close to its own: the next is granted only one interval after
// the late one's answer. A budget of send times alone would fail this.
func TestLateSendDoesNotBunch(t *testing.T) {
	implementations(t, func(t *testing.T, newBudget func(...Option) Budget) {
		a := newArrivals(t, testRate)
		b := newBudget(WithDefaultLimits(testLimits))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		hc := &http.Client{}
		defer hc.CloseIdleConnections()
		for range 3 {
			g, err := b.Take(ctx, "p", Create)
			if err != nil {
				t.Fatal(err)
			}
			next := make(chan error, 1)
			go func() { _, err := send(ctx, b, hc, a.srv.URL, "p", Poll); next <- err }()
			time.Sleep(3 * time.Second / testRate / 2) // the late sender
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.srv.URL+"/p/create", nil)
			resp, err := hc.Do(req)
			if rerr := g.Release(Answer{At: time.Now()}); rerr != nil {
				t.Fatal(rerr)
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if err := <-next; err != nil {
				t.Fatal(err)
			}
		}
		if too := a.tooSoon(); len(too) != 0 {
			t.Errorf("429s: %v", too)
		}
		if got := len(a.kinds("p")); got != 6 {
			t.Errorf("%d requests arrived, want 6", got)
		}
	})
}

// TestPostgresComesBack: while the database is down, Take waits (it does
// not fail); once the database is back, it grants.
func TestPostgresComesBack(t *testing.T) {
	c := pgtest.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	b, err := NewPostgres(pool, WithDefaultLimits(testLimits))
	if err != nil {
		t.Fatal(err)
	}
	g, err := b.Take(ctx, "p", Create)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Release(Answer{}); err != nil {
		t.Fatal(err)
	}
	c.Down()
	type result struct {
		g   *Grant
		err error
	}
	done := make(chan result, 1)
	go func() {
		g, err := b.Take(ctx, "p", Poll)
		done <- result{g, err}
	}()
	time.Sleep(500 * time.Millisecond) // a few failed tries
	select {
	case r := <-done:
		t.Fatalf("Take returned while the database was down: %v", r.err)
	default:
	}
	if err := c.Up(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("Take after the database came back: %v", r.err)
	}
	if err := r.g.Release(Answer{}); err != nil {
		t.Fatal(err)
	}
}
