package budget

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkProcesses: three worker processes share one Postgres budget
// for one project at 20 requests/s, each with two goroutines filing
// creates and two polling; a server answers 429 to requests arriving
// closer than 1/rate. Reports the achieved rate relative to the limit
// (arrivals first to last) and the 429s (target 0). latency= is how long
// the server takes to answer, which the budget pays once per request (see
// the package documentation): the ceiling is 1/(1 + rate*(latency+margin)).
// Run with -benchtime=1x: each op is the whole run (60 requests).
func BenchmarkProcesses(b *testing.B) {
	const rate = 20
	pool := testPool(b)
	url := pool.Config().ConnString()
	l := load{{Project: "p", Creators: 2, Creates: 5, Pollers: 2, Polls: 5}}
	for _, latency := range []time.Duration{0, 10 * time.Millisecond} {
		b.Run(fmt.Sprintf("latency=%v", latency), func(b *testing.B) {
			var ratio float64
			too := 0
			for range b.N {
				a := newArrivals(b, rate)
				a.latency = latency
				runProcesses(b, url, a, Limits{Rate: rate, PollShare: 0.5}, l, l, l)
				ratio += a.rateOf("p") / rate
				too += a.tooSoon()["p"]
			}
			b.ReportMetric(ratio/float64(b.N), "rate/limit")
			b.ReportMetric(float64(too)/float64(b.N), "429s")
		})
	}
}

// BenchmarkGoroutines is the same load in one process on the Memory
// budget: what the Postgres round trips cost.
func BenchmarkGoroutines(b *testing.B) {
	const rate = 20
	l := load{{Project: "p", Creators: 6, Creates: 5, Pollers: 6, Polls: 5}}
	var ratio float64
	too := 0
	for range b.N {
		a := newArrivals(b, rate)
		m, err := NewMemory(WithDefaultLimits(Limits{Rate: rate, PollShare: 0.5}))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = l.run(ctx, m, a.srv.URL)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		ratio += a.rateOf("p") / rate
		too += a.tooSoon()["p"]
	}
	b.ReportMetric(ratio/float64(b.N), "rate/limit")
	b.ReportMetric(float64(too)/float64(b.N), "429s")
}
