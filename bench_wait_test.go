package mpgdpr_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// waitScale shrinks the default poll policy and the task durations alike, so
// that an hour-long task is waited for in 3.6 s of real time. Only the
// ratio of task duration to poll intervals matters to the count.
const waitScale = 1000

// BenchmarkWaitPolls reports the requests WaitDeletion spends on one task
// with the default poll policy (first poll at once, then 5 s doubling to
// 10 min, each wait jittered into [half, all] of it), on a task that takes
// the named time, against the fake. Policy and durations are divided by
// waitScale; 8 tasks wait concurrently and polls/task is their mean.
// fixed-5s-polls is what polling every DefaultPollStart would spend;
// done/duration is when the last waiter returned, over the task's duration
// (the price of polling less: the end is noticed later).
// Run it with -benchtime=1x.
func BenchmarkWaitPolls(b *testing.B) {
	for _, d := range []time.Duration{30 * time.Second, time.Minute, 10 * time.Minute, time.Hour} {
		b.Run("task="+d.String(), func(b *testing.B) { benchWait(b, d) })
	}
}

func benchWait(b *testing.B, d time.Duration) {
	const tasks = 8
	var mean, most, done float64
	for b.Loop() {
		fake := mpgdprtest.NewServer(mpgdprtest.WithSchedule(mpgdprtest.Timed(d/waitScale, 0, 0)))
		c, err := mpgdpr.New(fake.OAuthToken(), fake.ProjectToken(), mpgdpr.WithBaseURL(fake.URL()), mpgdpr.WithRateLimiter(nil))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		ids := make([]string, tasks)
		for i := range ids {
			if ids[i], err = c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{fmt.Sprintf("wait-%d", i)}, ComplianceType: mpgdpr.GDPR}); err != nil {
				b.Fatal(err)
			}
		}
		start := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, tasks)
		for i, id := range ids {
			wg.Go(func() {
				t, err := c.WaitDeletion(ctx, id, mpgdpr.WithPollInterval(mpgdpr.DefaultPollStart/waitScale, mpgdpr.DefaultPollMax/waitScale))
				if err == nil && !t.Status.Succeeded() {
					err = fmt.Errorf("ended %s", t.Status)
				}
				errs[i] = err
			})
		}
		wg.Wait()
		done = float64(time.Since(start)) * waitScale / float64(d)
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		polls := map[string]int{}
		for _, r := range fake.Requests() {
			if r.Op == mpgdprtest.OpCheckDeletion {
				polls[r.Path[strings.LastIndex(r.Path, "/")+1:]]++
			}
		}
		sum := 0
		most = 0
		for _, id := range ids {
			sum += polls[id]
			most = max(most, float64(polls[id]))
		}
		mean = float64(sum) / tasks
		fake.Close()
	}
	b.ReportMetric(mean, "polls/task")
	b.ReportMetric(most, "max-polls/task")
	b.ReportMetric(float64(d/mpgdpr.DefaultPollStart)+1, "fixed-5s-polls")
	b.ReportMetric(done, "done/duration")
}
