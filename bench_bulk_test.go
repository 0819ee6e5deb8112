package mpgdpr_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// BenchmarkBulkPacing submits chunks through DeleteAll against the fake
// enforcing a fast limit (burst 1, like Mixpanel's 1 request/s but scaled up
// so a run takes seconds) and reports how close the client runs to it:
// rate/limit is (requests-1) / (last arrival - first arrival) ÷ limit, by
// the server's clock; 429s must stay 0; ms/req-over is the time per request
// beyond the limit's interval; ms/req-rtt is the round trip of one create to
// the fake without a limit, for comparison. The case is 200 chunks
// at 50/s; the same 200 at 10/s, and 20 at Mixpanel's own 1/s, show that
// the shortfall is a fixed time per request, not a fraction of the
// interval. Run it with -benchtime=1x.
func BenchmarkBulkPacing(b *testing.B) {
	b.Run("limit=50/chunks=200", func(b *testing.B) { benchPacing(b, 50, 200) })
	b.Run("limit=10/chunks=200", func(b *testing.B) { benchPacing(b, 10, 200) })
	b.Run("limit=1/chunks=20", func(b *testing.B) { benchPacing(b, 1, 20) })
}

func benchPacing(b *testing.B, limit float64, chunks int) {
	const chunk = 10
	ids := make([]string, chunks*chunk)
	for i := range ids {
		ids[i] = fmt.Sprintf("bulk-user-%05d", i)
	}
	var ratio, tooMany, over float64
	for b.Loop() {
		fake := mpgdprtest.NewServer(mpgdprtest.WithRateLimit(limit))
		c, err := mpgdpr.New(fake.OAuthToken(), fake.ProjectToken(),
			mpgdpr.WithBaseURL(fake.URL()), mpgdpr.WithRateLimit(rate.Limit(limit), 1))
		if err != nil {
			b.Fatal(err)
		}
		res, err := c.DeleteAll(context.Background(), ids, mpgdpr.GDPR, mpgdpr.WithChunkSize(chunk))
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Tasks) != chunks {
			b.Fatalf("%d tasks, want %d", len(res.Tasks), chunks)
		}
		reqs := fake.Requests()
		tooMany = 0
		for _, r := range reqs {
			if r.Status == http.StatusTooManyRequests {
				tooMany++
			}
		}
		span := reqs[len(reqs)-1].Time.Sub(reqs[0].Time).Seconds()
		perReq := span / float64(len(reqs)-1)
		ratio = 1 / perReq / limit
		over = (perReq - 1/limit) * 1000
		fake.Close()
	}
	b.ReportMetric(ratio, "rate/limit")
	b.ReportMetric(fakeRoundTrip(b)*1000, "ms/req-rtt")
	b.ReportMetric(tooMany, "429s")
	b.ReportMetric(over, "ms/req-over")
}

// fakeRoundTrip is the mean time, in seconds, of one create against the
// fake (which validates every request and answer against the API document)
// with no rate limit anywhere.
func fakeRoundTrip(b *testing.B) float64 {
	fake := mpgdprtest.NewServer()
	defer fake.Close()
	c, err := mpgdpr.New(fake.OAuthToken(), fake.ProjectToken(), mpgdpr.WithBaseURL(fake.URL()), mpgdpr.WithRateLimiter(nil))
	if err != nil {
		b.Fatal(err)
	}
	const n = 50
	start := time.Now()
	for i := range n {
		if _, err := c.CreateDeletion(context.Background(), mpgdpr.DeletionRequest{DistinctIDs: []string{fmt.Sprintf("rtt-%d", i)}, ComplianceType: mpgdpr.GDPR}); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start).Seconds() / n
}
