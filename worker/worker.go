package worker

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/worker/budget"
	"github.com/privacykit/mpgdpr/worker/evidence"
	"github.com/privacykit/mpgdpr/worker/workerdb"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	_ "modernc.org/sqlite" // the pure-Go SQLite, registered as "sqlite"
)

// Worker files and follows data-subject requests with River, on SQLite
// (TTx = *sql.Tx) or Postgres (TTx = pgx.Tx). Every process sharing one
// Postgres database runs its own Worker; they share the work and, through
// a shared Budget, each project's request rate.
type Worker[TTx any] struct {
	cfg     *Config
	db      database
	driver  riverdriver.Driver[TTx]
	river   *river.Client[TTx]
	clients map[string]*mpgdpr.Client
	secrets map[string]Secrets
	ids     *evidence.IDHasher // the ID key (Config.IDHasher)
	budget  budget.Budget
	sink    Sink
	log     *slog.Logger
	// intakeOnly (WithIntakeOnly): no secrets, no clients, an insert-only
	// River client; Start and Run return ErrIntakeOnly.
	intakeOnly bool
	cb         *callbackRuntime // nil: this worker delivers no callback notice
	metrics    *Metrics         // nil: none

	mu      sync.Mutex
	started bool
	lock    *os.File // SQLite: held while started
	// SQLite, while started: the file watch (sqlite_start.go) says on
	// replaced that the database file was replaced; closing stopWatch
	// ends it.
	replaced  <-chan error
	stopWatch chan struct{}
}

// Option configures a Worker.
type Option func(*options)

type options struct {
	logger     *slog.Logger
	budget     budget.Budget
	sink       Sink
	httpClient *http.Client
	river      func(*river.Config)
	clientOpts []mpgdpr.Option
	intakeOnly bool
	metrics    *Metrics
}

// WithLogger logs through l (default: slog.Default()). Nothing logged holds
// a secret or a distinct ID.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithBudget paces each project's requests with b instead of the default:
// budget.Memory on SQLite (one process), budget.Postgres on Postgres (shared
// by every worker process on the database).
func WithBudget(b budget.Budget) Option { return func(o *options) { o.budget = b } }

// WithSink hands every checked export to s as well as keeping it in the
// export directory.
func WithSink(s Sink) Option { return func(o *options) { o.sink = s } }

// WithHTTPClient sends API calls with hc (see mpgdpr.WithHTTPClient).
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.httpClient = hc } }

// WithClientOptions adds options to every project's mpgdpr.Client (after the
// worker's own, so they win), e.g. for tests.
func WithClientOptions(opts ...mpgdpr.Option) Option {
	return func(o *options) { o.clientOpts = append(o.clientOpts, opts...) }
}

// WithIntakeOnly makes a worker that files nothing: it reads no Mixpanel
// secret and makes no Mixpanel client; it stores requests, answers about
// them and records cancellations for a full worker to carry out, and its
// Start and Run return ErrIntakeOnly. It is what `mpgdpr serve` and the
// intake commands run, so that they hold no Mixpanel credential.
func WithIntakeOnly() Option { return func(o *options) { o.intakeOnly = true } }

// WithRiverConfig lets f adjust River's configuration before the client is
// made (fetch intervals, extra queues, hooks). Changing the worker's queues
// or workers breaks it.
func WithRiverConfig(f func(*river.Config)) Option { return func(o *options) { o.river = f } }

// NewSQLite makes a worker on a SQLite database (see OpenSQLiteFile) and
// runs the migrations. The database must not be closed while the worker runs.
func NewSQLite(ctx context.Context, db *sql.DB, cfg *Config, opts ...Option) (*Worker[*sql.Tx], error) {
	return newWorker[*sql.Tx](ctx, sqlDatabase{db}, riversqlite.New(db), cfg, opts, func() (budget.Budget, error) {
		return budget.NewMemory(budgetOptions(cfg)...)
	})
}

// NewPostgres makes a worker on a Postgres pool and runs the migrations.
// Unless WithBudget says otherwise, every project's requests are paced by a
// budget.Postgres in the same database, shared by all worker processes.
func NewPostgres(ctx context.Context, pool *pgxpool.Pool, cfg *Config, opts ...Option) (*Worker[pgx.Tx], error) {
	return newWorker[pgx.Tx](ctx, pgxDatabase{pool}, riverpgxv5.New(pool), cfg, opts, func() (budget.Budget, error) {
		if err := budget.Migrate(ctx, pool); err != nil {
			return nil, err
		}
		return budget.NewPostgres(pool, budgetOptions(cfg)...)
	})
}

// Migrate brings River's tables and the worker's own up to date on a
// SQLite database, idempotently; NewSQLite does it too.
func MigrateSQLite(ctx context.Context, db *sql.DB) ([]string, error) {
	return migrate[*sql.Tx](ctx, sqlDatabase{db}, riversqlite.New(db))
}

// MigratePostgres is MigrateSQLite for Postgres.
func MigratePostgres(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	return migrate[pgx.Tx](ctx, pgxDatabase{pool}, riverpgxv5.New(pool))
}

func newWorker[TTx any](ctx context.Context, db database, driver riverdriver.Driver[TTx], cfg *Config, opts []Option, defaultBudget func() (budget.Budget, error)) (*Worker[TTx], error) {
	if cfg == nil {
		return nil, errors.New("worker: no configuration")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	w := &Worker[TTx]{
		cfg: cfg, db: db, driver: driver,
		clients: map[string]*mpgdpr.Client{}, secrets: map[string]Secrets{},
		budget: o.budget, sink: o.sink, log: o.logger, intakeOnly: o.intakeOnly, metrics: o.metrics,
	}
	ids, err := cfg.IDHasher(true)
	if err != nil {
		return nil, err
	}
	if w.cb, err = newCallbackRuntime(cfg, o.intakeOnly); err != nil {
		return nil, err
	}
	o.metrics.attach(w)
	w.ids = ids
	if o.intakeOnly {
		return w.finishIntakeOnly(ctx, o)
	}
	for i := range cfg.Projects {
		p := &cfg.Projects[i]
		s, err := cfg.Secrets(p)
		if err != nil {
			return nil, err
		}
		retr, del := p.limits()
		copts := []mpgdpr.Option{
			mpgdpr.WithMaxIDsPerRequest(retr, del),
			// The budget paces every call; each call is one attempt, so
			// that every request on the wire took its turn, and a create
			// refused for pacing is filed again only by the worker.
			mpgdpr.WithRateLimiter(nil),
			mpgdpr.WithRetryPolicy(mpgdpr.NoRetries()),
			mpgdpr.WithLogger(o.logger),
		}
		if p.BaseURL != "" {
			copts = append(copts, mpgdpr.WithBaseURL(p.BaseURL))
		} else {
			r, _ := mpgdpr.ParseRegion(p.Region)
			copts = append(copts, mpgdpr.WithRegion(r))
		}
		if s.APISecret != "" {
			copts = append(copts, mpgdpr.WithAPISecret(s.APISecret))
		}
		if hc := o.metrics.httpClient(o.httpClient, p.Name); hc != nil {
			copts = append(copts, mpgdpr.WithHTTPClient(hc))
		}
		copts = append(copts, o.clientOpts...)
		c, err := mpgdpr.New(s.OAuthToken, s.ProjectToken, copts...)
		if err != nil {
			return nil, fmt.Errorf("worker: project %q: %w", p.Name, err)
		}
		w.clients[p.Name] = c
		w.secrets[p.Name] = s
	}
	if _, err := migrate(ctx, db, driver); err != nil {
		return nil, err
	}
	if w.budget == nil {
		b, err := defaultBudget()
		if err != nil {
			return nil, fmt.Errorf("worker: budget: %w", err)
		}
		w.budget = b
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &intakeWorker[TTx]{w: w})
	river.AddWorker(workers, &scanWorker[TTx]{w: w})
	river.AddWorker(workers, &fileWorker[TTx]{w: w})
	river.AddWorker(workers, &pollWorker[TTx]{w: w})
	river.AddWorker(workers, &sweepWorker[TTx]{w: w})
	river.AddWorker(workers, &purgeWorker[TTx]{w: w})
	river.AddWorker(workers, &cancelWorker[TTx]{w: w})
	river.AddWorker(workers, &callbackWorker[TTx]{w: w})
	timeout := time.Duration(cfg.JobTimeout)
	sweepEvery := min(max(time.Duration(cfg.BatchWindow), time.Second), time.Minute)
	rc := &river.Config{
		Queues: map[string]river.QueueConfig{
			queueIntake:   {MaxWorkers: 4},
			queueFile:     {MaxWorkers: 2*len(cfg.Projects) + 2},
			queuePoll:     {MaxWorkers: 4*len(cfg.Projects) + 4},
			queueCallback: {MaxWorkers: 4},
		},
		Workers:              workers,
		JobTimeout:           timeout,
		RescueStuckJobsAfter: timeout + max(timeout/2, time.Second),
		MaxAttempts:          maxAttempts,
		Logger:               o.logger,
		// Finished jobs hold references only; kept briefly all the same.
		CompletedJobRetentionPeriod: time.Duration(cfg.RiverCompletedRetention),
		CancelledJobRetentionPeriod: time.Duration(cfg.RiverCancelledRetention),
		DiscardedJobRetentionPeriod: time.Duration(cfg.RiverDiscardedRetention),
		PeriodicJobs: []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(sweepEvery),
			func() (river.JobArgs, *river.InsertOpts) { return sweepArgs{}, nil },
			&river.PeriodicJobOpts{ID: "mpgdpr_sweep", RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(purgeEvery),
				func() (river.JobArgs, *river.InsertOpts) { return purgeArgs{}, nil },
				&river.PeriodicJobOpts{ID: "mpgdpr_purge", RunOnStart: true})},
	}
	if o.river != nil {
		o.river(rc)
	}
	rcl, err := river.NewClient(driver, rc)
	if err != nil {
		return nil, fmt.Errorf("worker: river client: %w", err)
	}
	w.river = rcl
	return w, nil
}

// finishIntakeOnly makes the rest of an intake-only worker: the migrations,
// and an insert-only River client (no Queues, Workers or periodic jobs, as
// River's documentation describes one), which can enqueue jobs but never
// works them. No secret is read, no Mixpanel client made, no budget needed.
func (w *Worker[TTx]) finishIntakeOnly(ctx context.Context, o options) (*Worker[TTx], error) {
	if _, err := migrate(ctx, w.db, w.driver); err != nil {
		return nil, err
	}
	rc := &river.Config{Logger: o.logger, MaxAttempts: maxAttempts}
	if o.river != nil {
		o.river(rc)
	}
	// Whatever the caller's adjustment added, this client must not work jobs.
	rc.Queues, rc.Workers, rc.PeriodicJobs = nil, nil, nil
	rcl, err := river.NewClient(w.driver, rc)
	if err != nil {
		return nil, fmt.Errorf("worker: river client: %w", err)
	}
	w.river = rcl
	return w, nil
}

// Start starts working jobs in the background; Stop ends it.
func (w *Worker[TTx]) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.intakeOnly {
		return ErrIntakeOnly
	}
	if w.started {
		return errors.New("worker: already started")
	}
	if w.db.dialect() == dialectSQLite {
		if err := w.startSQLite(ctx); err != nil {
			return err
		}
	}
	if err := w.river.Start(ctx); err != nil {
		w.unlock()
		return fmt.Errorf("worker: start: %w", err)
	}
	w.started = true
	return nil
}

// Stop stops fetching jobs and waits for those running to finish; when ctx
// ends first, their contexts are cancelled: a create then in flight is
// recorded as of unknown outcome, and everything else is left to be taken
// up by the next start; Stop then returns ErrStopNotClean.
func (w *Worker[TTx]) Stop(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.started {
		return nil
	}
	w.started = false
	defer w.unlock()
	err := w.river.Stop(ctx)
	if err != nil && ctx.Err() != nil {
		// Soft stop ran out of time: cancel what still runs and wait.
		if err := w.river.StopAndCancel(context.WithoutCancel(ctx)); err != nil {
			return errors.Join(ErrStopNotClean, err)
		}
		return ErrStopNotClean
	}
	return err
}

// ErrStopNotClean is what Stop and Run return when the running jobs did not
// finish in time and were cancelled: a create then on the wire is recorded
// as of unknown outcome and settled at the next start, so nothing is lost,
// but the stop was not clean (a supervisor should know).
var ErrStopNotClean = errors.New("worker: running jobs did not finish in time and were cancelled")

func (w *Worker[TTx]) unlock() {
	if w.lock != nil {
		_ = w.lock.Close()
		w.lock = nil
	}
	if w.stopWatch != nil {
		close(w.stopWatch)
		w.stopWatch, w.replaced = nil, nil
	}
}

// Run starts the worker and works until ctx ends (e.g. on SIGTERM through
// signal.NotifyContext), then stops it, giving running jobs grace to finish:
// nil is a clean stop, ErrStopNotClean one that ran out of grace. On
// SQLite it also stops, and returns ErrDatabaseReplaced, when the database
// file is removed or replaced under it.
func (w *Worker[TTx]) Run(ctx context.Context, grace time.Duration) error {
	if err := w.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	w.mu.Lock()
	replaced := w.replaced // nil on Postgres: never ready
	w.mu.Unlock()
	var why error
	select {
	case <-ctx.Done():
	case why = <-replaced:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	err := w.Stop(sctx)
	if why != nil {
		return errors.Join(why, err)
	}
	return err
}

// River returns the River client, e.g. for River UI or subscriptions.
func (w *Worker[TTx]) River() *river.Client[TTx] { return w.river }

// Config returns the configuration the worker runs with.
func (w *Worker[TTx]) Config() *Config { return w.cfg }

// Enqueue stores a request and its River job in one transaction. The same
// request enqueued again (same reference, same content) is reported as a
// Duplicate and adds nothing; another request under a used reference is
// ErrConflictingRequest. Nothing is sent to Mixpanel here.
func (w *Worker[TTx]) Enqueue(ctx context.Context, r Request) (*EnqueueResult, error) {
	var res *EnqueueResult
	err := inTx(ctx, w.db, func(tx dbTx) error {
		var err error
		res, err = w.enqueue(ctx, tx, r)
		return err
	})
	return res, err
}

// EnqueueTx is Enqueue on the caller's own transaction (a *sql.Tx on
// SQLite, a pgx.Tx on Postgres, of the worker's database): the request is
// stored if and only if the transaction commits, so an application can
// delete an account and enqueue its erasure atomically.
func (w *Worker[TTx]) EnqueueTx(ctx context.Context, tx TTx, r Request) (*EnqueueResult, error) {
	t, err := w.db.wrap(tx)
	if err != nil {
		return nil, err
	}
	return w.enqueue(ctx, t, r)
}

func (w *Worker[TTx]) enqueue(ctx context.Context, tx dbTx, r Request) (*EnqueueResult, error) {
	n, err := w.cfg.checkRequest(r.args())
	if err != nil {
		return nil, err
	}
	inserted, err := insertRequest(ctx, tx, w.ids, n, time.Now())
	if err != nil {
		return nil, err
	}
	if !inserted {
		// The stored request's answer: its state and deadline as they are.
		return w.enqueueResult(ctx, tx, n.Reference, true)
	}
	// The job carries the reference alone: the request, IDs included, is
	// in mpgdpr_request, which purge covers; River's table never holds an ID.
	if _, err := w.river.InsertTx(ctx, tx.raw().(TTx), RequestArgs{Reference: n.Reference}, nil); err != nil {
		return nil, fmt.Errorf("worker: enqueue: %w", err)
	}
	res, err := w.enqueueResult(ctx, tx, n.Reference, false)
	if err != nil {
		return nil, err
	}
	// The chained events last: from the first, every other intake waits
	// for this transaction to commit (chain.go).
	if err := recordRequest(ctx, tx, w.ids, n); err != nil {
		return nil, err
	}
	if err := addEvent(ctx, tx, event{Reference: n.Reference, Event: workerdb.EventEnqueued, Detail: fmt.Sprintf("%s %s for %d IDs in %d projects", n.RequestKind, n.ComplianceType, len(n.DistinctIDs), len(n.Projects))}); err != nil {
		return nil, err
	}
	return res, nil
}
