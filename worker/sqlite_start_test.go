package worker

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
)

// One worker per SQLite database: a second one (another process would do
// the same) is refused while the first runs, and may start once it stopped.
// SQLite only: Postgres takes several workers.
func TestSecondSQLiteWorkerRefused(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, twoFakes(t))
	e.start()
	db, err := OpenSQLiteFile(filepath.Join(e.dir, "worker.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	w2, err := NewSQLite(ctx, db, e.cfg, WithRiverConfig(testRiverConfig), WithClientOptions(mpgdpr.WithRetryPolicy(mpgdpr.NoRetries())))
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Start(ctx); err == nil || !strings.Contains(err.Error(), "another worker is running on this SQLite database") {
		t.Fatalf("second worker started: %v", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.svc.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	if err := w2.Start(ctx); err != nil {
		t.Fatalf("after the first stopped: %v", err)
	}
	if err := w2.Stop(sctx); err != nil {
		t.Fatal(err)
	}
}
