package budget

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// arrivals is a server that enforces a rate per project by arrival time,
// as Mixpanel and mpgdprtest do: a request arriving less than 1/rate after
// the project's previous one gets a 429. It records every request.
type arrivals struct {
	srv  *httptest.Server
	rate float64
	// latency is how long the server takes to answer an accepted
	// request, after stamping it: a stand-in for Mixpanel's round trip.
	latency time.Duration

	mu    sync.Mutex
	last  map[string]time.Time
	log   map[string][]Kind // kinds in arrival order, by project
	times map[string][]time.Time
	too   map[string]int // 429s by project
	total int
}

func newArrivals(t testing.TB, rate float64) *arrivals {
	a := &arrivals{rate: rate, last: map[string]time.Time{}, log: map[string][]Kind{}, times: map[string][]time.Time{}, too: map[string]int{}}
	gap := time.Duration(float64(time.Second) / rate)
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// /project/kind
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		if len(parts) != 2 {
			http.Error(w, "bad path", http.StatusNotFound)
			return
		}
		project, kind := parts[0], Poll
		if parts[1] == "create" {
			kind = Create
		}
		a.mu.Lock()
		now := time.Now() // under the lock: arrivals are ordered as stamped
		prev, seen := a.last[project]
		a.last[project] = now
		a.total++
		tooSoon := seen && now.Sub(prev) < gap
		if tooSoon {
			a.too[project]++
		} else {
			a.log[project] = append(a.log[project], kind)
			a.times[project] = append(a.times[project], now)
		}
		a.mu.Unlock()
		if tooSoon {
			http.Error(w, "rate limit exceeded", http.StatusTooManyRequests)
			return
		}
		if a.latency > 0 {
			time.Sleep(a.latency)
		}
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *arrivals) tooSoon() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]int{}
	for k, v := range a.too {
		out[k] = v
	}
	return out
}

// rate is the project's accepted requests per second, first to last.
func (a *arrivals) rateOf(project string) float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	ts := a.times[project]
	if len(ts) < 2 {
		return 0
	}
	return float64(len(ts)-1) / ts[len(ts)-1].Sub(ts[0]).Seconds()
}

func (a *arrivals) kinds(project string) []Kind {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Kind(nil), a.log[project]...)
}

// send is what the worker does for one request: take the budget, send,
// release at the answer. It returns the answer's status.
func send(ctx context.Context, b Budget, hc *http.Client, base, project string, kind Kind) (int, error) {
	g, err := b.Take(ctx, project, kind)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithDeadline(ctx, g.Deadline())
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, base+"/"+project+"/"+kind.String(), nil)
	resp, err := hc.Do(req)
	// Released right when the answer's headers are in: the server stamped
	// the request before it answered, so "now" is after that stamp.
	if rerr := g.Release(Answer{At: time.Now()}); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// maxPollsBetweenCreates checks the poll share in an arrival log: while
// creates wait (between the first and the last create), at most max polls
// arrive between two creates. It returns the longest run.
func maxPollsBetweenCreates(kinds []Kind) int {
	first, last := -1, -1
	for i, k := range kinds {
		if k == Create {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	longest, run := 0, 0
	for i := first + 1; first >= 0 && i <= last; i++ {
		if kinds[i] == Poll {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest
}

// flow is one project's share of a load: creators goroutines filing
// creates each, pollers goroutines polling polls each.
type flow struct {
	Project           string
	Creators, Creates int
	Pollers, Polls    int
	// Together: the creates all wait before the first is granted (and
	// before the pollers start), so that creates wait without a break
	// from the first create's arrival to the last's, which the share
	// check needs. The slot is held meanwhile by a grant that sends
	// nothing.
	Together bool
}

// load is what one process sends, all at once.
type load []flow

// total is how many creates and polls of project loads send together.
func total(project string, loads ...load) (creates, polls int) {
	for _, l := range loads {
		for _, f := range l {
			if f.Project == project {
				creates += f.Creators * f.Creates
				polls += f.Pollers * f.Polls
			}
		}
	}
	return creates, polls
}

// run sends l through b to the server at base, and returns the first
// error.
func (l load) run(ctx context.Context, b Budget, base string) error {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer hc.CloseIdleConnections()
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	spawn := func(project string, kind Kind, goroutines, each int) {
		for range goroutines {
			wg.Go(func() {
				for range each {
					if _, err := send(ctx, b, hc, base, project, kind); err != nil {
						fail(err)
						return
					}
				}
			})
		}
	}
	for _, f := range l {
		if !f.Together {
			spawn(f.Project, Create, f.Creators, f.Creates)
			spawn(f.Project, Poll, f.Pollers, f.Polls)
			continue
		}
		blocker, err := b.Take(ctx, f.Project, Poll)
		if err != nil {
			return err
		}
		spawn(f.Project, Create, f.Creators, f.Creates)
		wc := b.(interface{ waitingCreates(string) int })
		for wc.waitingCreates(f.Project) < f.Creators && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		if err := blocker.Release(Answer{At: time.Now()}); err != nil {
			return err
		}
		spawn(f.Project, Poll, f.Pollers, f.Polls)
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}
