package budget

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/privacykit/mpgdpr/worker/internal/pgtest"
)

// childEnv makes the test binary a worker process of a multi-process test
// (see runProcesses) instead of running tests.
const childEnv = "MPGDPR_BUDGET_CHILD"

// childSpec is what a child process is told to do.
type childSpec struct {
	DB, Server string
	Limits     Limits
	Load       load
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		if err := runChild(spec); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	pgtest.Main(m)
}

func runChild(spec string) error {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, s.DB)
	if err != nil {
		return err
	}
	defer pool.Close()
	b, err := NewPostgres(pool, WithDefaultLimits(s.Limits))
	if err != nil {
		return err
	}
	// The server's 429s are counted there; the child only sends.
	return s.Load.run(ctx, b, s.Server)
}

// runProcesses runs a process of this test binary per load, each sending
// its load through a Postgres budget on db to a, and waits for them all.
func runProcesses(tb testing.TB, db string, a *arrivals, lim Limits, loads ...load) {
	tb.Helper()
	cmds := make([]*exec.Cmd, len(loads))
	for i := range cmds {
		spec, err := json.Marshal(childSpec{DB: db, Server: a.srv.URL, Limits: lim, Load: loads[i]})
		if err != nil {
			tb.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		cmds[i] = cmd
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			tb.Errorf("process %d: %v", i, err)
		}
	}
}
