package mpgdpr

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestMaxElapsedAfter429s: when MaxElapsed runs out after 429s, the error
// still says the call was rate limited (errors.Is ErrRateLimited, errors.As
// *Error with the 429), as well as that the budget ran out. Before, it
// matched only context.DeadlineExceeded. Two ways to run out: the limiter's
// next turn is past the budget, or the next attempt hangs until it ends.
func TestMaxElapsedAfter429s(t *testing.T) {
	outer, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(time.Minute, cancel) // only keeps a regression from hanging
	pol := RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, MaxElapsed: 300 * time.Millisecond}
	var n atomic.Int32
	throttleThenHang := func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			jsonReply(http.StatusTooManyRequests, `{"status":"error","error":"slow down"}`)(w, r)
			return
		}
		<-r.Context().Done()
	}
	for name, opts := range map[string][]Option{
		"limiter":   {WithRateLimiter(rate.NewLimiter(rate.Every(time.Hour), 2))},
		"in flight": nil,
	} {
		t.Run(name, func(t *testing.T) {
			n.Store(0)
			c, _ := faultClient(t, newRecorder(t, throttleThenHang), pol, opts...)
			err := checkDel(c, outer)
			var apiErr *Error
			if !errors.Is(err, ErrRateLimited) || !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests {
				t.Errorf("the 429 is lost: %v", err)
			}
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "MaxElapsed") || outer.Err() != nil {
				t.Errorf("the budget's end is lost: %v", err)
			}
		})
	}
	// A create whose last attempt may have been received is an unknown
	// outcome, and must not look like a refusal (a 429 of an earlier try).
	n.Store(1)
	c, _ := faultClient(t, newRecorder(t, throttleThenHang), pol)
	err := createDel(c, outer)
	var apiErr *Error
	if !errors.Is(err, ErrOutcomeUnknown) || errors.As(err, &apiErr) {
		t.Errorf("create cut in flight after a 429: %v", err)
	}
}
