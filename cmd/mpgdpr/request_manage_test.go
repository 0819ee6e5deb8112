package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

func TestRequestCancelListCheckOptions(t *testing.T) {
	ran := false
	var co *requestCancelOpts
	execute(t, newRequestCancelCmd(testCLI(), func(_ context.Context, o *requestCancelOpts) int { co, ran = o, true; return exitOK }), &ran,
		"--config", "w.toml", "--json", "REF-1")
	if co.wf.config != "w.toml" || co.ref != "REF-1" || !co.jsonOut {
		t.Errorf("cancel: %+v", co)
	}
	ran = false
	var lo *requestListOpts
	execute(t, newRequestListCmd(testCLI(), func(_ context.Context, o *requestListOpts) int { lo, ran = o, true; return exitOK }), &ran,
		"--config", "w.toml", "--state", "active", "--limit", "7", "--after", "CUR")
	if lo.wf.config != "w.toml" || lo.state != "active" || lo.limit != 7 || lo.after != "CUR" || lo.jsonOut {
		t.Errorf("list: %+v", lo)
	}
	ran = false
	var ko *workerCheckOpts
	execute(t, newWorkerCheckCmd(testCLI(), func(_ context.Context, o *workerCheckOpts) int { ko, ran = o, true; return exitOK }), &ran,
		"--config", "w.toml", "--url", "http://127.0.0.1:8080")
	if ko.wf.config != "w.toml" || ko.url != "http://127.0.0.1:8080" || ko.timeout <= 0 {
		t.Errorf("check: %+v", ko)
	}
}

// The request commands and worker check open the worker intake-only: they
// need no Mixpanel credential (the config's secret variables are unset).
func TestRequestCommandsWithoutCredentials(t *testing.T) {
	workertest.ForEachDriver(t, func(t *testing.T, d workertest.Driver) {
		dir := t.TempDir()
		db := workertest.DatabaseURL(t, d, dir)
		prefix := "MPGDPR_TEST_NEVER_SET_" + strings.ToUpper(string(d))
		config := filepath.Join(dir, "worker.toml")
		toml := fmt.Sprintf(`database = %q
batch_window = "1h"
[[project]]
name = "web"
base_url = "http://127.0.0.1:9/unused"
oauth_token_env = "%s_OAUTH"
project_token_env = "%s_PROJECT"
api_secret_env = "%s_SECRET"
`, db, prefix, prefix, prefix)
		if err := os.WriteFile(config, []byte(toml), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, set := os.LookupEnv(prefix + "_OAUTH"); set {
			t.Fatal("the variable is set")
		}
		want := func(r result, code int, texts ...string) {
			t.Helper()
			if r.code != code {
				t.Fatalf("want exit %d: %s", code, r)
			}
			for _, s := range texts {
				if !strings.Contains(r.stdout+r.stderr, s) {
					t.Errorf("want %q: %s", s, r)
				}
			}
		}
		for _, ref := range []string{"Q-1", "Q-2", "Q-3"} {
			want(runCmd(t, nil, "", "request", "delete", "--config", config, "--ref", ref, "--compliance", "GDPR", "--project", "web", "person-"+ref), exitOK, ref+" enqueued")
		}
		want(runCmd(t, nil, "", "request", "retrieve", "--config", config, "--ref", "R-1", "--compliance", "GDPR", "--project", "web", "someone"), exitOK, "R-1 enqueued")
		want(runCmd(t, nil, "", "request", "status", "--config", config, "Q-1"), exitOK, "Q-1: received GDPR deletion", "(on_time)", "queued", "not yet taken in")

		r := runCmd(t, nil, "", "request", "list", "--config", config, "--limit", "2", "--json")
		want(r, exitOK)
		var page worker.RequestPage
		if err := json.Unmarshal([]byte(r.stdout), &page); err != nil || len(page.Requests) != 2 || page.Next == "" || page.Requests[0].Reference != "Q-1" {
			t.Fatalf("page %+v %v: %s", page, err, r)
		}
		want(runCmd(t, nil, "", "request", "list", "--config", config, "--limit", "2", "--after", page.Next), exitOK, "Q-3", "R-1", "received")
		want(runCmd(t, nil, "", "request", "list", "--config", config, "--limit", "2"), exitOK, "Q-1", "more: --after "+page.Next)
		want(runCmd(t, nil, "", "request", "list", "--config", config, "--state", "nope"), exitUsage, "state")
		want(runCmd(t, nil, "", "request", "list", "--config", config, "--after", "garbage"), exitUsage, "after")

		want(runCmd(t, nil, "", "request", "cancel", "--config", config, "Q-2"), exitOK, "pending")
		want(runCmd(t, nil, "", "request", "cancel", "--config", config, "R-1"), exitUsage, "cannot be cancelled")
		want(runCmd(t, nil, "", "request", "cancel", "--config", config, "NOPE"), exitUsage, `no request "NOPE"`)

		want(runCmd(t, nil, "", "worker", "check", "--config", config), exitOK, "ready")
		ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/readyz" {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			w.WriteHeader(http.StatusOK)
		}))
		defer ready.Close()
		notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
		defer notReady.Close()
		want(runCmd(t, nil, "", "worker", "check", "--config", config, "--url", ready.URL), exitOK, "ready")
		want(runCmd(t, nil, "", "worker", "check", "--config", config, "--url", notReady.URL), exitLocal, "503")
		want(runCmd(t, nil, "", "worker", "check", "--config", config, "--url", "ftp://x"), exitUsage, "--url")
		// The full worker needs the credentials the intake did not.
		want(runCmd(t, nil, "", "worker", "migrate", "--config", config), exitUsage, prefix+"_OAUTH")
	})
}
