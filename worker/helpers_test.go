package worker

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker/internal/pgtest"
	"github.com/privacykit/mpgdpr/worker/workertest"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// testEnv is a worker on a fresh database (SQLite or Postgres) with one
// fake per project.
type testEnv struct {
	t      testing.TB
	driver workertest.Driver
	dir    string
	cfg    *Config
	fakes  map[string]*mpgdprtest.Server
	db     *sql.DB          // SQLite only
	w      *Worker[*sql.Tx] // SQLite only
	pw     *Worker[pgx.Tx]  // Postgres only
	pool   *pgxpool.Pool    // Postgres only
	svc    Service
	q      database // the worker's database, either driver ('?' placeholders)
	url    string   // the database, as testworker takes it
}

// envMaker makes a testEnv on one driver.
type envMaker func(t testing.TB, fakes map[string]*mpgdprtest.Server) *testEnv

// testConfig writes a configuration for the fakes (workertest.Config).
func testConfig(t testing.TB, dir string, fakes map[string]*mpgdprtest.Server) string {
	t.Helper()
	return workertest.Config(t, dir, fakes)
}

// testRiverConfig is workertest.RiverConfig.
var testRiverConfig = workertest.RiverConfig

// testOptions are the worker options of every testEnv: River fetching
// fast, and one attempt per call (the worker's own retries are tested).
func testOptions(more ...Option) []Option {
	return append([]Option{WithRiverConfig(testRiverConfig), WithClientOptions(mpgdpr.WithRetryPolicy(mpgdpr.NoRetries()))}, more...)
}

// newDriverEnv makes a worker on a fresh database of driver d.
func newDriverEnv(t testing.TB, d workertest.Driver, fakes map[string]*mpgdprtest.Server, opts ...Option) *testEnv {
	t.Helper()
	return newConfiguredEnv(t, d, fakes, nil, opts...)
}

// newConfiguredEnv is newDriverEnv with settings of the configuration
// file (workertest.With).
func newConfiguredEnv(t testing.TB, d workertest.Driver, fakes map[string]*mpgdprtest.Server, settings []workertest.Option, opts ...Option) *testEnv {
	t.Helper()
	dir := t.TempDir()
	cfg, err := LoadConfig(workertest.Config(t, dir, fakes, settings...))
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, driver: d, dir: dir, cfg: cfg, fakes: fakes, url: workertest.DatabaseURL(t, d, dir)}
	ctx := context.Background()
	if d == workertest.SQLite {
		if e.db, err = OpenSQLiteFile(strings.TrimPrefix(e.url, "sqlite:")); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.db.Close() })
	} else {
		if e.pool, err = pgxpool.New(ctx, e.url); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.pool.Close)
	}
	e.newWorker(opts...)
	return e
}

// newWorker makes (another) worker on the env's database, as a restart
// does, and makes it the env's worker.
func (e *testEnv) newWorker(opts ...Option) {
	e.t.Helper()
	ctx := context.Background()
	if e.driver == workertest.SQLite {
		w, err := NewSQLite(ctx, e.db, e.cfg, testOptions(opts...)...)
		if err != nil {
			e.t.Fatal(err)
		}
		e.w, e.svc, e.q = w, w, w.db
		return
	}
	w, err := NewPostgres(ctx, e.pool, e.cfg, testOptions(opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.pw, e.svc, e.q = w, w, w.db
}

func newTestEnv(t testing.TB, fakes map[string]*mpgdprtest.Server) *testEnv {
	t.Helper()
	return newDriverEnv(t, workertest.SQLite, fakes)
}

// newPGEnv is newTestEnv on a fresh Postgres database (pgtest).
func newPGEnv(t testing.TB, fakes map[string]*mpgdprtest.Server) *testEnv {
	t.Helper()
	return newDriverEnv(t, workertest.Postgres, fakes)
}

// forEachDriver runs f as one parallel subtest per database the worker
// supports, SQLite and Postgres (workertest.ForEachDriver: skipped where no
// PostgreSQL can be had, failed in CI).
func forEachDriver(t *testing.T, f func(t *testing.T, newEnv envMaker)) {
	t.Helper()
	workertest.ForEachDriver(t, func(t *testing.T, d workertest.Driver) {
		f(t, func(t testing.TB, fakes map[string]*mpgdprtest.Server) *testEnv { return newDriverEnv(t, d, fakes) })
	})
}

// count runs a COUNT(*) query on the env's database.
func (e *testEnv) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.q.queryRow(context.Background(), query, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// river returns the worker's River client's Insert and JobGet, whichever
// the driver.
func (e *testEnv) insertJob(ctx context.Context, args river.JobArgs) (*rivertype.JobInsertResult, error) {
	if e.w != nil {
		return e.w.River().Insert(ctx, args, nil)
	}
	return e.pw.River().Insert(ctx, args, nil)
}

func (e *testEnv) jobGet(ctx context.Context, id int64) (*rivertype.JobRow, error) {
	if e.w != nil {
		return e.w.River().JobGet(ctx, id)
	}
	return e.pw.River().JobGet(ctx, id)
}

// migrate runs the migrations again on the env's database.
func (e *testEnv) migrate(ctx context.Context) ([]string, error) {
	if e.db != nil {
		return MigrateSQLite(ctx, e.db)
	}
	return MigratePostgres(ctx, e.pool)
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
