package mpgdprtest_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// A deletion through the fake: each status check advances the task one
// step, and every request and answer was held to the merged document.
func ExampleNewServer() {
	fake := mpgdprtest.NewServer()
	defer fake.Close()

	client, err := mpgdpr.New(fake.OAuthToken(), fake.ProjectToken(),
		mpgdpr.WithBaseURL(fake.URL()), mpgdpr.WithRateLimiter(nil))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	id, err := client.CreateDeletion(ctx, mpgdpr.DeletionRequest{
		DistinctIDs: []string{"user-1"}, ComplianceType: mpgdpr.GDPR,
	})
	if err != nil {
		log.Fatal(err)
	}
	for {
		task, err := client.CheckDeletion(ctx, id)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(task.Status)
		if task.Status.Terminal() {
			break
		}
	}
	fmt.Println("contract violations:", len(fake.Violations()))
	// Output:
	// PENDING
	// STAGING
	// STARTED
	// SUCCESS
	// contract violations: 0
}

// Two 503s, then the real answer: the client's retries get through.
func ExampleServer_InjectFault() {
	fake := mpgdprtest.NewServer()
	defer fake.Close()
	fake.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateRetrieval, Status: 503, RetryAfter: "0", Times: 2})

	client, _ := mpgdpr.New(fake.OAuthToken(), fake.ProjectToken(),
		mpgdpr.WithBaseURL(fake.URL()), mpgdpr.WithRateLimiter(nil),
		mpgdpr.WithRetryPolicy(mpgdpr.RetryPolicy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond}))
	_, err := client.CreateRetrieval(context.Background(), mpgdpr.RetrievalRequest{
		DistinctIDs: []string{"user-1"}, ComplianceType: mpgdpr.GDPR,
	})
	fmt.Println("error:", err)
	for _, r := range fake.Requests() {
		fmt.Println(r.Op, r.Status, r.Fault)
	}
	// Output:
	// error: <nil>
	// createRetrieval 503 status
	// createRetrieval 503 status
	// createRetrieval 200
}
