package budget_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/privacykit/mpgdpr/worker/budget"
)

// One request through the budget: take a grant right before sending, send
// within its deadline, release it when the answer arrives.
func ExampleNewMemory() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	}))
	defer srv.Close()

	b, err := budget.NewMemory(budget.WithProjectLimits("eu-shop", budget.Limits{Rate: 1, PollShare: 0.5}))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for i := range 2 { // the second waits one second after the first's answer
		g, err := b.Take(ctx, "eu-shop", budget.Poll)
		if err != nil {
			panic(err)
		}
		rctx, cancel := context.WithDeadline(ctx, g.Deadline())
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, srv.URL, nil)
		resp, err := http.DefaultClient.Do(req)
		_ = g.Release(budget.Answer{At: time.Now()}) // answered (or failed): the next may go 1 s later
		cancel()
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println("request", i+1, resp.Status)
	}
	// Output:
	// request 1 200 OK
	// request 2 200 OK
}
