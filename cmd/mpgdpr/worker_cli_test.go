package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

// The worker commands end to end: two requests enqueued from the command
// line for two projects (two fakes), the worker run until they are done,
// then stopped as by SIGTERM.
func TestWorkerAndRequestCommands(t *testing.T) {
	dir := t.TempDir()
	fakes := map[string]*mpgdprtest.Server{}
	for _, name := range []string{"us", "eu"} {
		f := mpgdprtest.NewServer(mpgdprtest.WithAPISecret("secret-" + name))
		defer f.Close()
		fakes[name] = f
	}
	config := workertest.Config(t, dir, fakes, workertest.With("batch_window", `"200ms"`))
	db := "sqlite:" + filepath.Join(dir, "w.db")

	r := runCmd(t, nil, "", "request", "delete", "--config", config, "--database", db, "--ref", "DSR-1", "--compliance", "GDPR", "--all-projects", "user-1")
	if r.code != exitOK || !strings.Contains(r.stdout, "DSR-1 enqueued") {
		t.Fatal(r)
	}
	r = runCmd(t, nil, "", "request", "delete", "--config", config, "--database", db, "--ref", "DSR-1", "--compliance", "GDPR", "--all-projects", "user-1")
	if r.code != exitOK || !strings.Contains(r.stdout, "already enqueued") {
		t.Fatal(r)
	}
	r = runCmd(t, nil, "", "request", "delete", "--config", config, "--database", db, "--ref", "DSR-1", "--compliance", "GDPR", "--all-projects", "user-2")
	if r.code != exitUsage || !strings.Contains(r.stderr, "different request") || strings.Contains(r.stderr, "user-2") {
		t.Fatal(r)
	}
	r = runCmd(t, nil, "user-3\n", "request", "retrieve", "--config", config, "--database", db, "--ref", "DSR-2", "--compliance", "CCPA", "--disclosure", "Data", "--project", "eu", "--file", "-")
	if r.code != exitOK {
		t.Fatal(r)
	}
	r = runCmd(t, nil, "a\u200bb\n", "request", "retrieve", "--config", config, "--database", db, "--ref", "DSR-3", "--compliance", "GDPR", "--project", "eu", "--file", "-")
	if r.code != exitUsage || !strings.Contains(r.stderr, "U+200B") {
		t.Fatal(r)
	}

	w := workerUntil(t, func(status string) bool {
		return strings.Count(status, `"done":1`)+strings.Count(status, `"done":2`) == 2 &&
			strings.Contains(status, `"name":"eu","items":{"batched":0,"done":2`)
	}, "--config", config, "--database", db, "--status-every", "20ms")
	if w.code != exitOK || !strings.Contains(w.stderr, "mpgdpr worker: stopped cleanly") {
		t.Errorf("worker: %s", w)
	}
	// A running worker is never silent for long: its status lines.
	if !strings.Contains(w.stderr, "mpgdpr worker: eu: ") || !strings.Contains(w.stderr, " done, ") || !strings.Contains(w.stderr, "; last minute ") {
		t.Errorf("worker printed no status line: %s", w.stderr)
	}
	r = runCmd(t, nil, "", "request", "status", "--config", config, "--database", db, "--events", "DSR-2")
	if r.code != exitOK || !strings.Contains(r.stdout, "done") || !strings.Contains(r.stdout, "exported") {
		t.Fatal(r)
	}
}

// workerUntil runs `mpgdpr worker ARGS --grace 5s` until `worker status
// --json` (with the same --config and --database) says done(status), then
// stops it as SIGTERM would and returns what it printed.
func workerUntil(t *testing.T, done func(status string) bool, args ...string) result {
	t.Helper()
	var statusArgs []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--config" || args[i] == "--database" {
			statusArgs = append(statusArgs, args[i], args[i+1])
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	ended := make(chan result, 1)
	go func() {
		ended <- runCtx(ctx, t, nil, "", append(append([]string{"worker"}, args...), "--grace", "5s")...)
	}()
	deadline := time.Now().Add(90 * time.Second)
	for {
		r := runCmd(t, nil, "", append([]string{"worker", "status", "--json"}, statusArgs...)...)
		if r.code == exitOK && done(r.stdout) {
			break
		}
		if time.Now().After(deadline) {
			stop()
			<-ended
			t.Fatalf("not done: %s", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return <-ended
}

// The built worker on SIGTERM: a clean stop exits 0 and says so (systemd
// and Kubernetes take any other status for a failure; it once exited 130);
// a stop that runs out of --grace with a create on the wire exits non-zero
// and says it was not clean.
func TestWorkerSIGTERM(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	config := workertest.Config(t, dir, map[string]*mpgdprtest.Server{"web": srv}, workertest.WithDatabase("sqlite:worker.db"), workertest.With("batch_window", `"50ms"`))
	enqueue := func(ref string) {
		t.Helper()
		if r := runCmd(t, nil, "", "request", "delete", "--config", config, "--ref", ref, "--compliance", "GDPR", "--project", "web", "user-"+ref); r.code != exitOK {
			t.Fatal(r)
		}
	}
	creates := func(state string) int {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "worker.db")+"?mode=ro&_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		_ = db.QueryRow(`SELECT COUNT(*) FROM mpgdpr_create WHERE state = ?`, state).Scan(&n)
		return n
	}

	enqueue("T-1")
	p := start(t, credEnv(), "worker", "--config", config, "--status-every", "0", "--grace", "10s")
	until(t, "the create answered", func() bool { return creates("filed") == 1 })
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	r := p.wait(t)
	if r.code != exitOK || !strings.Contains(r.stderr, "mpgdpr worker: stopped cleanly (terminated signal received)") {
		t.Errorf("clean stop: %v", r)
	}

	// The next create hangs past --grace (then is dropped unprocessed).
	srv.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateDeletion, Latency: 5 * time.Second, Reset: mpgdprtest.ResetBeforeBody})
	enqueue("T-2")
	p = start(t, credEnv(), "worker", "--config", config, "--status-every", "0", "--grace", "50ms")
	until(t, "a create on the wire", func() bool { return creates("sending") == 1 })
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	r = p.wait(t)
	if r.code == exitOK || !strings.Contains(r.stderr, "mpgdpr worker: stopped (terminated signal received), not cleanly") {
		t.Errorf("stop past --grace: %v", r)
	}
	if n := creates("unknown"); n != 1 {
		t.Errorf("%d creates of unknown outcome, want the one cancelled", n)
	}
}
