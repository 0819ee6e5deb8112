package mpgdpr_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// fakeClient starts the fake Mixpanel and a client for it. Against the
// real service, use mpgdpr.New(oauthToken, projectToken, ...) with your
// region and leave the rate limiter at its default.
func fakeClient() (*mpgdprtest.Server, *mpgdpr.Client) {
	fake := mpgdprtest.NewServer(mpgdprtest.WithAPISecret("api-secret"))
	c, err := mpgdpr.New(fake.OAuthToken(), fake.ProjectToken(),
		mpgdpr.WithBaseURL(fake.URL()), mpgdpr.WithRateLimiter(nil))
	if err != nil {
		log.Fatal(err)
	}
	return fake, c
}

// Erase any number of people: the IDs are checked, de-duplicated and sent
// in requests of at most 1999 (here 2). One of them already has a deletion
// running, so Mixpanel answers 409 for it; the rest of that request is
// resubmitted, and every ID is accounted for.
func ExampleClient_DeleteAll() {
	fake, c := fakeClient()
	defer fake.Close()
	ctx := context.Background()
	running, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"user-3"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		log.Fatal(err)
	}

	ids := []string{"user-1", "user-2", "user-3", "user-4", "user-5", "user-1"}
	res, err := c.DeleteAll(ctx, ids, mpgdpr.GDPR,
		mpgdpr.WithChunkSize(2),
		mpgdpr.WithOnChunk(func(t mpgdpr.BatchTask) error {
			// Journal t.TaskID durably here, before the next request.
			fmt.Println("request", t.Seq, "filed for", t.DistinctIDs)
			return nil
		}))
	if err != nil {
		// res still accounts for every ID: res.Unknown may have been
		// filed (check before resending), res.Unsent were not.
		log.Fatal(err)
	}
	for _, cf := range res.Conflicts {
		fmt.Println("already being deleted:", cf.DistinctIDs, "by the earlier task:", cf.TaskIDs[0] == running)
	}
	fmt.Println("tasks:", len(res.Tasks), "unknown:", len(res.Unknown), "unsent:", len(res.Unsent), "repeated:", res.Duplicates)
	// Output:
	// request 1 filed for [user-1 user-2]
	// request 3 filed for [user-4]
	// request 4 filed for [user-5]
	// already being deleted: [user-3] by the earlier task: true
	// tasks: 3 unknown: 0 unsent: 0 repeated: [user-1]
}

// Ask for everything held about any number of people; each task yields an
// export of its own (see ExampleClient_DownloadExport).
func ExampleClient_RetrieveAll() {
	fake, c := fakeClient()
	defer fake.Close()
	ctx := context.Background()
	ids := []string{"user-1", "user-2", "user-3"}
	res, err := c.RetrieveAll(ctx, ids, mpgdpr.CCPA, mpgdpr.DisclosureData, mpgdpr.WithChunkSize(2))
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range res.Tasks {
		task, err := c.WaitRetrieval(ctx, t.TaskID, mpgdpr.WithPollInterval(time.Millisecond, 10*time.Millisecond))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(t.DistinctIDs, task.Status, task.DownloadURL != "")
	}
	// Output:
	// [user-1 user-2] SUCCESS true
	// [user-3] SUCCESS true
}

// Wait for a deletion to finish. Mixpanel can take up to 30 days: keep the
// tracking id, and bound the wait with a context.
func ExampleClient_WaitDeletion() {
	fake, c := fakeClient()
	defer fake.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"user-1"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		log.Fatal(err)
	}
	task, err := c.WaitDeletion(ctx, id,
		mpgdpr.WithPollInterval(time.Millisecond, 10*time.Millisecond), // the default starts at 5 s
		mpgdpr.WithOnPoll(func(t *mpgdpr.Task) { fmt.Println("polled:", t.Status) }))
	if err != nil {
		// On ctx's end: the last task seen, and an error matching ctx.Err().
		log.Fatal(err)
	}
	fmt.Println("erased:", task.Status.Succeeded())
	// Output:
	// polled: PENDING
	// polled: STAGING
	// polled: STARTED
	// polled: SUCCESS
	// erased: true
}

// Wait for a retrieval, then fetch its export from the link.
func ExampleClient_WaitRetrieval() {
	fake, c := fakeClient()
	defer fake.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: []string{"user-1"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		log.Fatal(err)
	}
	task, err := c.WaitRetrieval(ctx, id, mpgdpr.WithPollInterval(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	if !task.Status.Succeeded() {
		log.Fatalf("retrieval ended %s", task.Status)
	}
	// A nil error means a complete zip archive arrived.
	n, err := c.DownloadExport(ctx, task, io.Discard) // or DownloadExportFile
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(task.Status, "export received:", n > 0)
	// Output:
	// SUCCESS export received: true
}
