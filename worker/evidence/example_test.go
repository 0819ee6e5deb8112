package evidence_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/privacykit/mpgdpr/worker/evidence"
)

// A report of two requests in JSON Lines, evaluated as of 1 March 2026: one
// completed in time, one received on 31 January and still open after its
// deadline (28 February).
func ExampleGenerate() {
	received := time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC)
	src := evidence.SliceSource{
		{Reference: "DSR-1", Project: "web", Kind: "deletion", ComplianceType: "GDPR", DistinctIDs: []string{"alice"}, IDs: 1,
			ReceivedAt: received, CompletedAt: received.Add(50 * time.Hour), SourceState: "done"},
		{Reference: "DSR-2", Project: "web", Kind: "deletion", ComplianceType: "GDPR", DistinctIDs: []string{"bob"}, IDs: 1,
			ReceivedAt: received, SourceState: "open"},
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	n, err := evidence.Generate(context.Background(), src, evidence.NewPolicy(), evidence.Filter{}, now, evidence.NewCSVWriter(os.Stdout, nil))
	if err != nil {
		fmt.Println(err)
	}
	for _, r := range src { // Generate evaluated each record in place

		fmt.Println(r.Reference, r.Deadline.Due.Format("2006-01-02"), r.Deadline.State)
	}
	fmt.Println(n, "requests")
	// Output:
	// reference,project,kind,compliance_type,ids,distinct_ids,ids_hashed,received_at,first_filed_at,task_ids,conflict_task_ids,last_status,last_status_at,completed_at,days_to_complete,regulation,deadline,deadline_state,extended,extension_reason,extension_notice_at,deadline_note,export_bytes,export_sha256,resubmissions,notes,source_state,chain_hash
	// DSR-1,web,deletion,GDPR,1,"[""alice""]",false,2026-01-31T09:00:00Z,,,,,,2026-02-02T11:00:00Z,2.08,GDPR,2026-02-28,met,false,,,,,,0,,done,
	// DSR-2,web,deletion,GDPR,1,"[""bob""]",false,2026-01-31T09:00:00Z,,,,,,,,GDPR,2026-02-28,overdue,false,,,,,,0,,open,
	// DSR-1 2026-02-28 met
	// DSR-2 2026-02-28 overdue
	// 2 requests
}

// Naming people by a keyed hash: the same key always gives the same hash.
func ExampleIDHasher() {
	h, err := evidence.NewIDHasher([]byte("a key kept as secret as the IDs"))
	if err != nil {
		fmt.Println(err)
		return
	}
	again, _ := evidence.NewIDHasher([]byte("a key kept as secret as the IDs"))
	fmt.Println(h.Hash("alice") == again.Hash("alice"), h.Hash("alice") == h.Hash("bob"), len(h.Hash("alice")))
	// Output: true false 64
}
