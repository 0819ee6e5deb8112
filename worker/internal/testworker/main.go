// Command testworker runs a worker until SIGTERM or SIGINT, for the
// worker's crash tests (which kill it with SIGKILL at random moments);
// with -purge it purges every ended request instead, once, and exits.
//
//	testworker -config FILE -db sqlite:PATH|postgres://... [-purge]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/workerdb"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

func main() {
	config := flag.String("config", "", "configuration file")
	database := flag.String("db", "", "sqlite:PATH or a postgres:// URL")
	purge := flag.Bool("purge", false, "purge every ended request (worker.PurgeOlderThan(0)) and exit")
	flag.Parse()
	run := run
	if *purge {
		run = runPurge
	}
	if err := run(*config, *database); err != nil {
		fmt.Fprintln(os.Stderr, "testworker:", err)
		os.Exit(1)
	}
}

func run(config, database string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cfg, err := worker.LoadConfig(config)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := []worker.Option{worker.WithLogger(log), worker.WithRiverConfig(workertest.RiverConfig)}
	loc, err := cfg.ResolveDatabase(database)
	if err != nil {
		return err
	}
	if loc.Driver == workerdb.SQLite {
		db, err := worker.OpenSQLiteFile(loc.Path)
		if err != nil {
			return err
		}
		defer db.Close()
		w, err := worker.NewSQLite(ctx, db, cfg, opts...)
		if err != nil {
			return err
		}
		fmt.Println("ready")
		return w.Run(ctx, 10*time.Second)
	}
	pool, err := pgxpool.New(ctx, loc.URL())
	if err != nil {
		return err
	}
	defer pool.Close()
	w, err := worker.NewPostgres(ctx, pool, cfg, opts...)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	return w.Run(ctx, 10*time.Second)
}

// runPurge purges every ended request and its exports, then exits.
func runPurge(config, database string) error {
	ctx := context.Background()
	cfg, err := worker.LoadConfig(config)
	if err != nil {
		return err
	}
	svc, closeDB, err := worker.Open(ctx, cfg, database)
	if err != nil {
		return err
	}
	defer closeDB()
	fmt.Println("ready")
	res, err := svc.Purge(ctx, worker.PurgeOlderThan(0), worker.PurgeExportsOlderThan(0))
	if err != nil {
		return err
	}
	fmt.Printf("purged %d\n", res.Requests)
	return nil
}
