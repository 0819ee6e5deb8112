package worker

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker/internal/pgtest"
	"github.com/riverqueue/river"
)

// testEnv is a worker on a fresh SQLite file with one fake per project.
type testEnv struct {
	t     testing.TB
	dir   string
	cfg   *Config
	fakes map[string]*mpgdprtest.Server
	db    *sql.DB          // SQLite only
	w     *Worker[*sql.Tx] // SQLite only
	pw    *Worker[pgx.Tx]  // Postgres only
	pool  *pgxpool.Pool    // Postgres only
	svc   Service
	url   string // the database, as testworker takes it
}

// testConfig writes a configuration for the fakes (name -> fake) with fast
// windows and polls, secrets in files beside it (not environment variables,
// which would keep the tests from running in parallel; config_test covers
// secrets from the environment).
func testConfig(t testing.TB, dir string, fakes map[string]*mpgdprtest.Server, extra string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "export_dir = %q\nbatch_window = \"300ms\"\npoll_min = \"10ms\"\npoll_max = \"40ms\"\njob_timeout = \"20s\"\nrequest_lease = \"5s\"\n%s\n", filepath.Join(dir, "exports"), extra)
	for _, name := range sortedKeys(fakes) {
		f := fakes[name]
		files := map[string]string{"oauth": f.OAuthToken(), "project": f.ProjectToken(), "secret": f.APISecret()}
		for k, v := range files {
			if err := os.WriteFile(filepath.Join(dir, name+"."+k), []byte(v+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		fmt.Fprintf(&b, "[[project]]\nname = %q\nbase_url = %q\nrate = 500\noauth_token_file = %q\nproject_token_file = %q\napi_secret_file = %q\n",
			name, f.URL(), filepath.Join(dir, name+".oauth"), filepath.Join(dir, name+".project"), filepath.Join(dir, name+".secret"))
	}
	path := filepath.Join(dir, "worker.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func sortedKeys[V any](m map[string]V) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys
}

func testRiverConfig(c *river.Config) {
	c.FetchPollInterval = 20 * time.Millisecond
	c.FetchCooldown = 5 * time.Millisecond
	c.TestOnly = true
	c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newTestEnv(t testing.TB, fakes map[string]*mpgdprtest.Server, extra string) *testEnv {
	t.Helper()
	dir := t.TempDir()
	cfg, err := LoadConfig(testConfig(t, dir, fakes, extra))
	if err != nil {
		t.Fatal(err)
	}
	db, err := OpenSQLiteFile(filepath.Join(dir, "worker.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	w, err := NewSQLite(context.Background(), db, cfg, WithRiverConfig(testRiverConfig),
		WithClientOptions(mpgdpr.WithRetryPolicy(mpgdpr.NoRetries())))
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, dir: dir, cfg: cfg, fakes: fakes, db: db, w: w, svc: w, url: "sqlite:" + filepath.Join(dir, "worker.db")}
}

// newPGEnv is newTestEnv on a fresh Postgres database (pgtest).
func newPGEnv(t testing.TB, fakes map[string]*mpgdprtest.Server, extra string) *testEnv {
	t.Helper()
	url := pgtest.URL(t)
	dir := t.TempDir()
	cfg, err := LoadConfig(testConfig(t, dir, fakes, extra))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	w, err := NewPostgres(context.Background(), pool, cfg, WithRiverConfig(testRiverConfig),
		WithClientOptions(mpgdpr.WithRetryPolicy(mpgdpr.NoRetries())))
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, dir: dir, cfg: cfg, fakes: fakes, svc: w, pw: w, pool: pool, url: url}
}

// forEachDriver runs f as one parallel subtest per database the worker
// supports, SQLite and Postgres (skipped where no PostgreSQL can be had,
// failed in CI), as River's driver test suite runs on every driver.
func forEachDriver(t *testing.T, f func(t *testing.T, newEnv envMaker)) {
	t.Helper()
	for _, d := range []struct {
		name   string
		newEnv envMaker
	}{{"sqlite", newTestEnv}, {"postgres", newPGEnv}} {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			f(t, d.newEnv)
		})
	}
}

func (e *testEnv) start() {
	e.t.Helper()
	if err := e.svc.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.svc.Stop(ctx)
	})
}

// waitFor polls cond until it holds; the deadline only stops a hung test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// allItems reports whether every item of every project is in one of states,
// and how many items there are.
func (e *testEnv) itemsIn(states ...string) (n int, all bool) {
	st, err := e.svc.Status(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	total, in := 0, 0
	for _, p := range st.Projects {
		for s, c := range p.Items {
			total += c
			for _, want := range states {
				if s == want {
					in += c
				}
			}
		}
	}
	return total, total == in
}

// filedTimes counts, per fake, how many tasks of kind cover each ID.
func filedTimes(f *mpgdprtest.Server, kind mpgdprtest.Kind) map[string]int {
	m := map[string]int{}
	for _, task := range f.Tasks() {
		if task.Kind != kind {
			continue
		}
		for _, id := range task.DistinctIDs {
			m[id]++
		}
	}
	return m
}

func creates(f *mpgdprtest.Server, op string) int {
	n := 0
	for _, r := range f.Requests() {
		if r.Op == op {
			n++
		}
	}
	return n
}

func TestMain(m *testing.M) { pgtest.Main(m) }
