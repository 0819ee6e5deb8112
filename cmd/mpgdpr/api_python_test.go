//go:build unix

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

// TestAPIFromPython runs testdata/api_client.py, a DSR platform written
// with Python's standard library alone (urllib, hmac, http.server), against
// `mpgdpr worker --listen` filing with a fake Mixpanel: it files a
// retrieval and a deletion over HTTP, follows them to the end, receives
// and verifies each one's signed callback, and downloads the export.
func TestAPIFromPython(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("python3"); err != nil && os.Getenv("CI") != "" {
		t.Fatal("no python3: make deps installs it")
	}
	python := lookTool(t, "python3")
	srv := newFake(t)
	dir := t.TempDir()
	callbackKey := "callback-key-Pz8Lq2Wm5Xn7Rt1Vb3Kd6Jf9Hg4Sa0Ce"
	if err := os.WriteFile(filepath.Join(dir, "callback.key"), []byte(callbackKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := strings.TrimPrefix(freePort(t), "127.0.0.1:")
	config := workertest.Config(t, dir, map[string]*mpgdprtest.Server{"web": srv}, workertest.WithDatabase("sqlite:worker.db"),
		workertest.With("batch_window", `"50ms"`),
		workertest.With("callbacks", fmt.Sprintf(`{ key_file = "callback.key", allow = ["http://127.0.0.1:%s"], retry_min = "100ms", retry_max = "1s" }`, port)))
	p := startServe(t, []string{"MPGDPR_API_KEYS=platform file,read,export " + serveKey}, "worker", "--config", config, "--status-every", "0", "--listen", "127.0.0.1:0")
	if !strings.HasPrefix(p.first, "http://127.0.0.1:") {
		t.Fatalf("first line %q, want the URL; stderr: %s", p.first, p.stderr.String())
	}
	cmd := exec.Command(python, filepath.Join("testdata", "api_client.py"))
	cmd.Env = append(os.Environ(), "API_URL="+p.first, "API_KEY="+serveKey, "CALLBACK_KEY="+callbackKey, "CALLBACK_PORT="+port)
	b, err := cmd.CombinedOutput()
	t.Logf("python3 testdata/api_client.py:\n%s", b)
	if err != nil {
		t.Fatalf("the Python DSR platform failed: %v; worker stderr:\n%s", err, p.stderr.String())
	}
	if c := p.stop(t); c != exitOK {
		t.Errorf("worker: exit %d on SIGTERM; stderr: %s", c, p.stderr.String())
	}
	out := p.first + p.rest.String() + p.stderr.String()
	noSecrets(t, "the worker's output", out)
	for _, s := range []string{serveKey, callbackKey, "py-person-1", "py-person-2"} {
		if strings.Contains(out, s) {
			t.Errorf("the worker's output holds %.12s…", s)
		}
	}
}
