package worker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/riverqueue/river"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A hostile server echoes the credentials in its refusals: nothing the
// worker writes (its tables, River's, its log) holds them.
func TestNoSecretInTheDatabaseOrLog(t *testing.T) {
	t.Parallel()
	fakes := twoFakes(t)
	us := fakes["us"]
	echo := fmt.Sprintf(`{"status":"error","error":"refused: token %s for %s, secret %s"}`, us.OAuthToken(), us.ProjectToken(), us.APISecret())
	us.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateDeletion, Status: 400, Body: echo})
	us.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateRetrieval, Status: 503, Body: echo, RetryAfter: "1"})
	us.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCheckRetrieval, Status: 500, Body: echo})

	dir := t.TempDir()
	cfg, err := LoadConfig(testConfig(t, dir, fakes, ""))
	if err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dir, "worker.db")
	db, err := OpenSQLiteFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := NewSQLite(context.Background(), db, cfg, WithLogger(logger), WithRiverConfig(func(c *river.Config) {
		testRiverConfig(c)
		c.Logger = logger
	}), WithClientOptions(mpgdpr.WithRetryPolicy(mpgdpr.NoRetries())))
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, dir: dir, cfg: cfg, fakes: fakes, db: db, w: w, svc: w}
	ctx := context.Background()
	if _, err := w.Enqueue(ctx, Request{Reference: "H-1", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"ivy"}, Projects: []string{"us"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Enqueue(ctx, Request{Reference: "H-2", Kind: Retrieval, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"jo"}, Projects: []string{"us"}}); err != nil {
		t.Fatal(err)
	}
	e.start()
	waitFor(t, "both settled", func() bool { total, ok := e.itemsIn(StateFailed, StateDone); return total == 2 && ok })
	if us.FaultsLeft() != 0 {
		t.Fatal("not every hostile answer was served")
	}
	_ = w.Stop(ctx)
	_ = db.Close()
	var blob bytes.Buffer
	for _, f := range []string{dbPath, dbPath + "-wal"} {
		if b, err := os.ReadFile(f); err == nil {
			blob.Write(b)
		}
	}
	blob.WriteString(logs.String())
	for _, s := range []string{us.OAuthToken(), us.ProjectToken(), us.APISecret()} {
		if strings.Contains(blob.String(), s) {
			t.Errorf("a credential (%d bytes) is in the database or the log", len(s))
		}
	}
	if !strings.Contains(blob.String(), "refused: token") {
		t.Error("the hostile message never reached the record: the test proves nothing")
	}
}
