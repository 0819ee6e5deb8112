// Command testworker runs a worker until SIGTERM or SIGINT, for the
// worker's crash tests (which kill it with SIGKILL at random moments).
//
//	testworker -config FILE -db sqlite:PATH|postgres://...
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
	flag.Parse()
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
