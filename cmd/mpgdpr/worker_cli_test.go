package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// The worker commands end to end: two requests enqueued from the command
// line for two projects (two fakes), the worker run until they are done,
// then stopped as by SIGTERM.
func TestWorkerAndRequestCommands(t *testing.T) {
	dir := t.TempDir()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "batch_window = \"200ms\"\npoll_min = \"10ms\"\npoll_max = \"40ms\"\nrequest_lease = \"5s\"\njob_timeout = \"20s\"\nexport_dir = %q\n", filepath.Join(dir, "exports"))
	for _, name := range []string{"us", "eu"} {
		f := mpgdprtest.NewServer(mpgdprtest.WithAPISecret("secret-" + name))
		defer f.Close()
		env := "MPGDPR_CLI_TEST_" + strings.ToUpper(name)
		t.Setenv(env+"_OAUTH", f.OAuthToken())
		t.Setenv(env+"_PROJECT", f.ProjectToken())
		t.Setenv(env+"_SECRET", f.APISecret())
		fmt.Fprintf(&cfg, "[[project]]\nname = %q\nbase_url = %q\nrate = 200\noauth_token_env = %q\nproject_token_env = %q\napi_secret_env = %q\n",
			name, f.URL(), env+"_OAUTH", env+"_PROJECT", env+"_SECRET")
	}
	config := filepath.Join(dir, "worker.toml")
	if err := os.WriteFile(config, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
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

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() {
		done <- runCtx(ctx, t, nil, "", "worker", "--config", config, "--database", db, "--grace", "5s", "--status-every", "20ms")
	}()
	deadline := time.Now().Add(90 * time.Second)
	for {
		r = runCmd(t, nil, "", "worker", "status", "--config", config, "--database", db, "--json")
		if r.code == exitOK && strings.Count(r.stdout, `"done":1`)+strings.Count(r.stdout, `"done":2`) == 2 &&
			strings.Contains(r.stdout, `"name":"eu","items":{"batched":0,"done":2`) {
			break
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("not done: %s", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	w := <-done
	if w.code != exitInterrupted {
		t.Errorf("worker: %s", w)
	}
	// A running worker is never silent for long: its status lines.
	if !strings.Contains(w.stderr, "mpgdpr worker: eu: ") || !strings.Contains(w.stderr, " done, ") || !strings.Contains(w.stderr, "creates + ") {
		t.Errorf("worker printed no status line: %s", w.stderr)
	}
	r = runCmd(t, nil, "", "request", "status", "--config", config, "--database", db, "--events", "DSR-2")
	if r.code != exitOK || !strings.Contains(r.stdout, "done") || !strings.Contains(r.stdout, "exported") {
		t.Fatal(r)
	}
}
