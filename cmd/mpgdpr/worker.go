package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/words"
	"github.com/privacykit/mpgdpr/worker"
)

const workerLong = `Run the durable request worker (package worker, on River) until SIGINT or
SIGTERM: it takes requests enqueued with 'mpgdpr request' (or by any system
inserting River jobs), batches them per project, files them, follows every
task to its end and downloads retrieval exports. The database is SQLite by
default (a file beside the config), or Postgres for several workers:
--database sqlite:PATH | postgres://... (or 'database' in the config).
On SIGTERM running jobs get --grace to finish; a create still in flight is
recorded as of unknown outcome. A stop that ends cleanly exits 0; one that
ran out of --grace exits non-zero. See worker/README.md for the config file.
`

// workerFlags are shared by worker, worker status, worker migrate and request.
type workerFlags struct {
	config   string
	database string
}

func addWorkerFlags(fs *pflag.FlagSet, o *workerFlags) {
	fs.StringVar(&o.config, "config", "", "worker configuration file (TOML), required")
	fs.StringVar(&o.database, "database", "", "sqlite:PATH or postgres://... (default: the config's, else a SQLite file beside it)")
}

// openWorker loads the config, registers its secrets for redaction and
// opens the worker's database (running the migrations).
func (cl *cli) openWorker(ctx context.Context, o *workerFlags, opts ...worker.Option) (worker.Service, func(), error) {
	if o.config == "" {
		return nil, nil, usagef("--config FILE is required")
	}
	cfg, err := worker.LoadConfig(o.config)
	if err != nil {
		return nil, nil, &usageError{err.Error()}
	}
	for i := range cfg.Projects {
		s, err := cfg.Secrets(&cfg.Projects[i])
		if err != nil {
			return nil, nil, &usageError{err.Error()}
		}
		cl.secrets.add(s.OAuthToken)
		cl.secrets.add(s.ProjectToken)
		cl.secrets.add(s.APISecret)
	}
	return worker.Open(ctx, cfg, o.database, append([]worker.Option{worker.WithLogger(cl.logger)}, opts...)...)
}

// openIntake loads the config and opens the worker intake-only
// (worker.WithIntakeOnly): it stores and answers about requests, reads no
// Mixpanel secret (none need be set) and files nothing.
func (cl *cli) openIntake(ctx context.Context, o *workerFlags) (worker.Service, func(), error) {
	if o.config == "" {
		return nil, nil, usagef("--config FILE is required")
	}
	cfg, err := worker.LoadConfig(o.config)
	if err != nil {
		return nil, nil, &usageError{err.Error()}
	}
	return worker.Open(ctx, cfg, o.database, worker.WithLogger(cl.logger), worker.WithIntakeOnly())
}

func newWorkerCmd(cl *cli) *cobra.Command {
	o := &workerFlags{}
	var grace time.Duration
	c := &cobra.Command{
		Use:   "worker --config FILE [--database URL] [--listen ADDR ...]",
		Short: "Run the durable request worker (River, SQLite or Postgres)",
		Long:  workerLong,
		Args:  cobra.NoArgs,
	}
	addWorkerFlags(c.Flags(), o)
	c.Flags().DurationVar(&grace, "grace", 30*time.Second, "on SIGTERM, how long running jobs may take to finish")
	var every time.Duration
	c.Flags().DurationVar(&every, "status-every", time.Minute, "print each project's counts and budget in use to stderr this often (0: never)")
	lf := &listenFlags{}
	addListenFlags(c.Flags(), lf, " beside the worker (see 'mpgdpr serve')")
	c.RunE = cl.exits(func(ctx context.Context, _ *cobra.Command, _ []string) int {
		if every < 0 {
			return cl.fail("worker", exitUsage, usagef("--status-every %s: want 0 or more", every))
		}
		// The worker counts its Mixpanel calls and callbacks in m, which
		// /metrics serves when the API listens.
		m := worker.NewMetrics(nil)
		svc, closeDB, err := cl.openWorker(context.WithoutCancel(ctx), o, worker.WithMetrics(m))
		if err != nil {
			return cl.fail("worker", exitFor(err), err)
		}
		defer closeDB()
		waitAPI := func() error { return nil }
		apiCtx, stopAPI := context.WithCancel(ctx)
		defer stopAPI()
		if lf.listen != "" || svc.Config().API.Listen != "" {
			if waitAPI, err = cl.startAPI(apiCtx, svc, lf, m); err != nil {
				return cl.fail("worker", exitFor(err), err)
			}
		}
		fmt.Fprintf(cl.stderr, "mpgdpr worker: running for %s; SIGTERM or Ctrl-C stops it\n", words.Count(len(svc.Config().Projects), "project"))
		stopStatus := cl.workerStatusLines(ctx, svc, every)
		err = svc.Run(ctx, grace)
		stopStatus()
		stopAPI()
		if apiErr := waitAPI(); apiErr != nil {
			fmt.Fprintf(cl.stderr, "mpgdpr worker: the API: %v\n", apiErr)
		}
		// A requested stop that ends cleanly is a success (systemd and
		// Kubernetes take any other exit status for a failure); say why it
		// stopped either way.
		why := context.Cause(ctx)
		switch {
		case err == nil:
			fmt.Fprintf(cl.stderr, "mpgdpr worker: stopped cleanly (%v)\n", why)
			return exitOK
		case errors.Is(err, worker.ErrStopNotClean):
			fmt.Fprintf(cl.stderr, "mpgdpr worker: stopped (%v), not cleanly: jobs still running after --grace %s were cancelled; the next start takes them up\n", why, grace)
			return exitIncomplete
		}
		return cl.fail("worker", exitLocal, err)
	})
	c.AddCommand(newWorkerStatusCmd(cl), newWorkerMigrateCmd(cl), newWorkerPurgeCmd(cl), newWorkerCheckCmd(cl, nil))
	return c
}

func newWorkerStatusCmd(cl *cli) *cobra.Command {
	o := &workerFlags{}
	var asJSON bool
	c := &cobra.Command{
		Use:   "status --config FILE [--database URL] [--json]",
		Short: "Show queued/filed/open/done items per project and the budget in use",
		Args:  cobra.NoArgs,
	}
	addWorkerFlags(c.Flags(), o)
	c.Flags().BoolVar(&asJSON, "json", false, "one JSON object per project")
	c.RunE = cl.exits(func(ctx context.Context, _ *cobra.Command, _ []string) int {
		svc, closeDB, err := cl.openWorker(ctx, o)
		if err != nil {
			return cl.fail("worker status", exitFor(err), err)
		}
		defer closeDB()
		st, err := svc.Status(ctx)
		if err != nil {
			return cl.fail("worker status", exitLocal, err)
		}
		states := []string{worker.StateQueued, worker.StateBatched, worker.StateFiled, worker.StateOpen, worker.StateDone, worker.StateFailed, worker.StateUnknown, worker.StateCancelled}
		var rows [][]string
		for _, p := range st.Projects {
			if asJSON {
				cl.jsonLine(p)
				continue
			}
			row := []string{p.Name}
			for _, s := range states {
				row = append(row, strconv.Itoa(p.Items[s]))
			}
			row = append(row, strconv.Itoa(p.OpenTasks), fmt.Sprintf("%d+%d / %.0f", p.CreatesLastMinute, p.PollsLastMinute, p.Rate*60))
			rows = append(rows, row)
		}
		if !asJSON {
			cl.table(append([]string{"PROJECT"}, append(upper(states), "OPEN TASKS", "LAST MINUTE (CREATES+POLLS / BUDGET)")...), rows)
		}
		return exitOK
	})
	return c
}

func newWorkerMigrateCmd(cl *cli) *cobra.Command {
	o := &workerFlags{}
	c := &cobra.Command{
		Use:   "migrate --config FILE [--database URL]",
		Short: "Create or update the worker's tables (River's and its own); the worker does it at start too",
		Args:  cobra.NoArgs,
	}
	addWorkerFlags(c.Flags(), o)
	c.RunE = cl.exits(func(ctx context.Context, _ *cobra.Command, _ []string) int {
		_, closeDB, err := cl.openWorker(ctx, o)
		if err != nil {
			return cl.fail("worker migrate", exitFor(err), err)
		}
		closeDB()
		fmt.Fprintln(cl.stdout, "migrations applied")
		return exitOK
	})
	return c
}

func upper(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		b := []byte(s)
		for j := range b {
			if b[j] >= 'a' && b[j] <= 'z' {
				b[j] -= 'a' - 'A'
			}
		}
		out[i] = string(b)
	}
	return out
}

// workerStatusLines says on stderr, every so often, what the worker holds
// and how much of each project's budget it uses, so that a running worker
// is never silent for long (the CLI's convention). The returned func stops
// it and waits, so nothing is written after the command returns.
func (cl *cli) workerStatusLines(ctx context.Context, svc worker.Service, every time.Duration) (stop func()) {
	if every <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			st, err := svc.Status(ctx)
			if err != nil {
				if ctx.Err() == nil {
					fmt.Fprintf(cl.stderr, "mpgdpr worker: status: %v\n", err)
				}
				continue
			}
			for _, p := range st.Projects {
				fmt.Fprintf(cl.stderr, "mpgdpr worker: %s: %d queued, %d batched, %d filed, %d open, %d done, %d failed, %d unknown; %s; last minute %s + %s of %.0f\n",
					p.Name, p.Items[worker.StateQueued], p.Items[worker.StateBatched], p.Items[worker.StateFiled], p.Items[worker.StateOpen],
					p.Items[worker.StateDone], p.Items[worker.StateFailed], p.Items[worker.StateUnknown], words.Count(p.OpenTasks, "open task"),
					words.Count(p.CreatesLastMinute, "create"), words.Count(p.PollsLastMinute, "poll"), p.Rate*60)
			}
		}
	}()
	return func() { cancel(); <-done }
}
