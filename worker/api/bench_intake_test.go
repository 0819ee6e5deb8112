package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/api"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

// benchClients is how many clients file at once.
var benchClients = envInt("BENCH_CLIENTS", 8)

// benchKey is the benchmark's API key.
const benchKey = "bench-key-Hq2Wn5Rt8Yb1Mc4Xv7Zs0Kd3Jf6Lg9Pa"

// BenchmarkIntake files deletions over HTTP, through the whole API
// (auth, rate limit, kin-openapi validation, problems) into an
// intake-only worker, from 8 concurrent clients on loopback, on SQLite
// and on Postgres. Besides ns/op it reports accepted requests per second
// (req/s), the 50th and 99th percentile latency of one request (p50-ms,
// p99-ms) and the live heap after the run (heap-MiB; flat when a larger
// -benchtime gives the same). Targets (issue 25, BENCHMARKS.md): 1,000
// req/s on Postgres and 300 on SQLite on 2 cores, p99 under 100 ms.
//
//	go test -run '^$' -bench BenchmarkIntake -benchtime 5000x ./api
func BenchmarkIntake(b *testing.B) {
	for _, d := range workertest.Drivers {
		b.Run(string(d), func(b *testing.B) { benchIntake(b, d) })
	}
}

func benchIntake(b *testing.B, d workertest.Driver) {
	dir := b.TempDir()
	url := workertest.DatabaseURL(b, d, dir)
	fake := mpgdprtest.NewServer()
	b.Cleanup(fake.Close)
	config := workertest.Config(b, dir, map[string]*mpgdprtest.Server{"web": fake}, workertest.WithDatabase(url))
	cfg, err := worker.LoadConfig(config)
	if err != nil {
		b.Fatal(err)
	}
	svc, closeDB, err := worker.Open(context.Background(), cfg, "", worker.WithIntakeOnly())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(closeDB)
	keys, err := api.ParseKeys(bytes.NewReader([]byte("bench file,read "+benchKey+"\n")), "bench")
	if err != nil {
		b.Fatal(err)
	}
	s, err := api.New(svc, api.WithKeys(keys...), api.WithRateLimit(1e6, 1e6))
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	b.Cleanup(ts.Close)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	clients := benchClients

	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	var failed atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				body, _ := json.Marshal(map[string]any{"reference": fmt.Sprintf("B-%s-%d", b.Name(), i), "kind": "deletion",
					"compliance_type": "GDPR", "distinct_ids": []string{fmt.Sprintf("bench-person-%d", i)}, "projects": []string{"web"}})
				req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/requests", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+benchKey)
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				lat[c] = append(lat[c], time.Since(t0))
				if resp.StatusCode != http.StatusAccepted {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests not accepted", n, b.N)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(p*float64(len(all))))]) / float64(time.Millisecond)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
}

// envInt is the integer in the environment variable name, or def.
func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(name), &n); err != nil || n <= 0 {
		return def
	}
	return n
}
