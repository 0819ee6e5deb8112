package mpgdprtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"strings"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// The control API drives the fake over HTTP, as a test in another
// language (or `mpgdpr fake`'s users) would: here a manual schedule is
// advanced and a fault injected with plain HTTP requests.
func ExampleWithControlAPI() {
	fake, err := mpgdprtest.Start(mpgdprtest.WithControlAPI(), mpgdprtest.WithSchedule(mpgdprtest.Manual()))
	if err != nil {
		log.Fatal(err)
	}
	defer fake.Close()
	client, err := mpgdpr.New(fake.OAuthToken(), fake.ProjectToken(),
		mpgdpr.WithBaseURL(fake.URL()), mpgdpr.WithRateLimiter(nil), mpgdpr.WithRetryPolicy(mpgdpr.NoRetries()))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	id, err := client.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"user-1"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		log.Fatal(err)
	}

	post := func(path, body string) *http.Response {
		resp, err := http.Post(fake.ControlURL()+path, "application/json", strings.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		return resp
	}
	var task struct{ Status string }
	resp := post("/tasks/"+id+"/advance", "")
	_ = json.NewDecoder(resp.Body).Decode(&task)
	resp.Body.Close()
	fmt.Println("advanced to", task.Status)

	post("/faults", `{"op":"checkDeletion","status":503}`).Body.Close()
	_, err = client.CheckDeletion(ctx, id)
	fmt.Println("injected:", err != nil)
	t, _ := client.CheckDeletion(ctx, id)
	fmt.Println("then:", t.Status)

	resp, _ = http.Get(fake.ControlURL() + "/violations")
	resp.Body.Close()
	fmt.Println("GET /_fake/violations:", resp.StatusCode)
	// Output:
	// advanced to STAGING
	// injected: true
	// then: STAGING
	// GET /_fake/violations: 200
}
