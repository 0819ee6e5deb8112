package worker

import (
	"context"
	"fmt"
	"testing"

	"github.com/privacykit/mpgdpr"
)

// BenchmarkEnqueue is one Enqueue (a transaction: the request row, its
// event and its River job) on each database, with no worker running.
func BenchmarkEnqueue(b *testing.B) {
	for name, newEnv := range map[string]envMaker{"sqlite": newTestEnv, "postgres": newPGEnv} {
		b.Run(name, func(b *testing.B) {
			e := newEnv(b, twoFakes(b))
			ctx := context.Background()
			b.ResetTimer()
			for i := range b.N {
				if _, err := e.svc.Enqueue(ctx, Request{Reference: fmt.Sprintf("E-%d", i), Kind: Deletion, ComplianceType: mpgdpr.GDPR,
					DistinctIDs: []string{fmt.Sprintf("e-%d", i)}, AllProjects: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
