package mpgdpr_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/privacykit/mpgdpr"
)

// One code path for both kinds of task: file it, check it, wait for it,
// with the kind as a value (as a worker reads it from its queue) instead of
// a retrieval-or-deletion branch at every call.
func ExampleClient_Check() {
	fake, c := fakeClient()
	defer fake.Close()
	ctx := context.Background()
	for _, kind := range []mpgdpr.Kind{mpgdpr.Retrieval, mpgdpr.Deletion} {
		id, err := c.Create(ctx, kind, []string{"user-1"}, mpgdpr.GDPR, "")
		if err != nil {
			log.Fatal(err)
		}
		t, err := c.Check(ctx, kind, id)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(kind, "filed:", t.Status)
		t, err = c.Wait(ctx, kind, id, mpgdpr.WithPollInterval(time.Millisecond, 10*time.Millisecond))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(kind, "ended:", t.Status, "- may be resubmitted after an unknown outcome:", kind.Resubmittable())
	}
	// Output:
	// retrieval filed: PENDING
	// retrieval ended: SUCCESS - may be resubmitted after an unknown outcome: false
	// deletion filed: PENDING
	// deletion ended: SUCCESS - may be resubmitted after an unknown outcome: true
}

// A caller that files creates itself (a durable worker journaling each one)
// applies the same rule as DeleteAll: SplitCreate says, for each ID a
// create carried, whether it was filed, is covered by a running deletion,
// may have been filed, or was not filed.
func ExampleSplitCreate() {
	fake, c := fakeClient()
	defer fake.Close()
	ctx := context.Background()
	if _, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"user-2"}, ComplianceType: mpgdpr.GDPR}); err != nil {
		log.Fatal(err)
	}

	ids := []string{"user-1", "user-2", "user-3"}
	unknownInARow := 0
	for len(ids) > 0 {
		taskID, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: ids, ComplianceType: mpgdpr.GDPR})
		o := mpgdpr.SplitCreate(ids, taskID, err)
		switch {
		case errors.Is(o.Err, mpgdpr.ErrOutcomeUnknown) && mpgdpr.Deletion.Resubmittable():
			if unknownInARow++; unknownInARow >= mpgdpr.MaxUnknownInARow {
				log.Fatalf("%d unknown outcomes in a row: %v", unknownInARow, err)
			}
			continue // send o.Unknown again: a filed one draws a 409 naming its task
		case o.Err != nil:
			log.Fatal(o.Err) // refused: o.Unfiled were not filed
		}
		unknownInARow = 0
		if len(o.Filed) > 0 {
			fmt.Println("filed:", o.Filed)
		}
		if len(o.Conflicting) > 0 {
			fmt.Println("already being deleted:", o.Conflicting, "by", len(o.ConflictTasks), "task")
		}
		ids = o.Unfiled // the rest of a 409: send at once
	}
	// Output:
	// already being deleted: [user-2] by 1 task
	// filed: [user-1 user-3]
}
