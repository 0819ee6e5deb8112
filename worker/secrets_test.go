package worker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker/workertest"
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
	workertest.ForEachDriver(t, func(t *testing.T, d workertest.Driver) {
		fakes := twoFakes(t)
		us := fakes["us"]
		echo := fmt.Sprintf(`{"status":"error","error":"refused: token %s for %s, secret %s"}`, us.OAuthToken(), us.ProjectToken(), us.APISecret())
		us.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateDeletion, Status: 400, Body: echo})
		us.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateRetrieval, Status: 503, Body: echo, RetryAfter: "1"})
		us.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCheckRetrieval, Status: 500, Body: echo})

		var logs lockedBuffer
		logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		e := newDriverEnv(t, d, fakes, WithLogger(logger), WithRiverConfig(func(c *river.Config) {
			testRiverConfig(c)
			c.Logger = logger
		}))
		ctx := context.Background()
		if _, err := e.svc.Enqueue(ctx, Request{Reference: "H-1", Kind: Deletion, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"ivy"}, Projects: []string{"us"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Enqueue(ctx, Request{Reference: "H-2", Kind: Retrieval, ComplianceType: mpgdpr.GDPR, DistinctIDs: []string{"jo"}, Projects: []string{"us"}}); err != nil {
			t.Fatal(err)
		}
		e.start()
		waitFor(t, "both settled", func() bool { total, ok := e.itemsIn(StateFailed, StateDone); return total == 2 && ok })
		if us.FaultsLeft() != 0 {
			t.Fatal("not every hostile answer was served")
		}
		_ = e.svc.Stop(ctx)
		var blob bytes.Buffer
		blob.WriteString(e.dumpTables(ctx))
		if d == workertest.SQLite {
			// The files too: freed pages and the WAL keep what a row no
			// longer shows.
			_ = e.db.Close()
			path := strings.TrimPrefix(e.url, "sqlite:")
			for _, f := range []string{path, path + "-wal"} {
				if b, err := os.ReadFile(f); err == nil {
					blob.Write(b)
				}
			}
		}
		blob.WriteString(logs.String())
		workertest.NoSecrets(t, "the database or the log", blob.String(), workertest.Secrets(fakes)...)
		if !strings.Contains(blob.String(), "refused: token") {
			t.Error("the hostile message never reached the record: the test proves nothing")
		}
	})
}

// dumpTables returns every row of every table of the env's database as
// text, whichever the driver.
func (e *testEnv) dumpTables(ctx context.Context) string {
	e.t.Helper()
	var b strings.Builder
	var tables []string
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if e.pool != nil {
		q = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`
	}
	rows, err := e.q.query(ctx, q)
	if err != nil {
		e.t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			e.t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	for _, table := range tables {
		if e.pool != nil {
			r, err := e.pool.Query(ctx, "SELECT * FROM "+pgx.Identifier{table}.Sanitize())
			if err != nil {
				e.t.Fatal(err)
			}
			for r.Next() {
				vals, err := r.Values()
				if err != nil {
					e.t.Fatal(err)
				}
				fmt.Fprintf(&b, "%s %v\n", table, vals)
			}
			r.Close()
			continue
		}
		r, err := e.db.QueryContext(ctx, `SELECT * FROM "`+table+`"`)
		if err != nil {
			e.t.Fatal(err)
		}
		cols, _ := r.Columns()
		for r.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := r.Scan(ptrs...); err != nil {
				e.t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %v\n", table, vals)
		}
		r.Close()
	}
	if len(tables) < 5 || !strings.Contains(b.String(), "mpgdpr_event") {
		e.t.Fatalf("tables %v: the dump proves nothing", tables)
	}
	return b.String()
}
