// Command pgtest-cluster runs a command beside a throwaway PostgreSQL
// cluster (see pgtest.Start), with MPGDPR_TEST_POSTGRES_URL naming it, and
// stops and removes the cluster afterwards, also when the command fails or
// SIGINT/SIGTERM arrives (passed on to the command first). It exits with
// the command's status.
//
//	pgtest-cluster [--] command [arg...]
//
// If MPGDPR_TEST_POSTGRES_URL is already set, the command runs with it
// unchanged. If no cluster can be started, the command runs without it
// (its Postgres tests then skip) and a warning is printed, except in CI
// (CI set), where that is an error: Postgres tests must not skip there.
// scripts/pgtest-cluster builds and runs it, installing PostgreSQL first
// where it is missing.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/privacykit/mpgdpr/worker/internal/pgtest"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: pgtest-cluster [--] command [arg...]")
		return 2
	}
	// Signals are caught from now on, so that an interrupt during the
	// start still removes the cluster.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	env := os.Environ()
	if os.Getenv(pgtest.EnvURL) == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		go func() {
			select {
			case <-sigs:
				cancel()
			case <-ctx.Done():
			}
		}()
		c, err := pgtest.Start(ctx)
		interrupted := ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded)
		cancel()
		switch {
		case interrupted:
			_ = c.Stop()
			fmt.Fprintln(os.Stderr, "pgtest-cluster: interrupted")
			return 130
		case err != nil && os.Getenv("CI") != "":
			fmt.Fprintf(os.Stderr, "pgtest-cluster: PostgreSQL is required in CI: %v\n", err)
			return 1
		case err != nil:
			fmt.Fprintf(os.Stderr, "pgtest-cluster: warning: no PostgreSQL, its tests will skip: %v\n", err)
		default:
			defer func() {
				if err := c.Stop(); err != nil {
					fmt.Fprintln(os.Stderr, "pgtest-cluster:", err)
				}
			}()
			env = append(env, pgtest.EnvURL+"="+c.URL())
			fmt.Fprintf(os.Stderr, "pgtest-cluster: PostgreSQL at %s\n", c.URL())
		}
	}

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest-cluster:", err)
		return 127
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case err := <-waited:
			var exit *exec.ExitError
			switch {
			case err == nil:
				return 0
			case errors.As(err, &exit):
				if st, ok := exit.Sys().(syscall.WaitStatus); ok && st.Signaled() {
					return 128 + int(st.Signal())
				}
				return exit.ExitCode()
			default:
				fmt.Fprintln(os.Stderr, "pgtest-cluster:", err)
				return 1
			}
		}
	}
}
