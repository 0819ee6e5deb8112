//go:build unix

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

const serveKey = "serve-key-Hq3Wm8Zt2Lp6Xc9Vb4Nj7Rk1Ds5Fg0"

// serveProc is a running `mpgdpr serve`, `worker --listen` or `fake`:
// its first stdout line (its address), and the rest of what it prints
// once it has ended.
type serveProc struct {
	cmd    *exec.Cmd
	first  string
	rest   bytes.Buffer
	stderr syncBuffer
	done   chan struct{}
}

func startServe(t *testing.T, env []string, args ...string) *serveProc {
	t.Helper()
	p := &serveProc{cmd: exec.Command(binary(t), args...), done: make(chan struct{})}
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(out)
		line, _ := r.ReadString('\n')
		lines <- line
		_, _ = io.Copy(&p.rest, r)
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	select {
	case p.first = <-lines:
	case <-time.After(60 * time.Second):
		t.Fatalf("no first line; stderr: %s", p.stderr.String())
	}
	if p.first == "" {
		<-p.done
		t.Fatalf("%s ended (%v) before its first line; stderr: %s", args[0], p.cmd.ProcessState, p.stderr.String())
	}
	p.first = strings.TrimSpace(p.first)
	return p
}

// stop sends SIGTERM and waits for the end.
func (p *serveProc) stop(t *testing.T) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the command did not stop")
	}
	return p.cmd.ProcessState.ExitCode()
}

func httpDo(t *testing.T, method, url, key string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// TestServeProcess runs `mpgdpr serve` as a process, its config's Mixpanel
// secrets in environment variables the process does not get: intake-only,
// it must not need them. It prints its URL first, takes a request over
// HTTP, and stops cleanly on SIGTERM; nothing it prints or answers holds
// a key or a distinct ID.
func TestServeProcess(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	config := workertest.Config(t, dir, map[string]*mpgdprtest.Server{"web": srv}, workertest.WithDatabase("sqlite:worker.db"), workertest.WithSecretsInEnv("SERVETEST"))
	var env []string // no Mixpanel secret: startCmd passes PATH and HOME alone
	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte("# the intake system\nintake file,read "+serveKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const person = "person-Tr5-serve@example.com"

	p := startServe(t, env, "serve", "--config", config, "--listen", "127.0.0.1:0", "--api-keys", keys)
	if !strings.HasPrefix(p.first, "http://127.0.0.1:") {
		t.Fatalf("first line %q, want the URL; stderr: %s", p.first, p.stderr.String())
	}
	code, body := httpDo(t, "POST", p.first+"/v1/requests", serveKey, map[string]any{
		"reference": "S-1", "kind": "deletion", "compliance_type": "GDPR", "distinct_ids": []string{person}, "projects": []string{"web"},
	})
	if code != http.StatusAccepted {
		t.Fatalf("enqueue: %d %s", code, body)
	}
	code, status := httpDo(t, "GET", p.first+"/v1/requests/S-1", serveKey, nil)
	if code != http.StatusOK || !strings.Contains(string(status), `"reference":"S-1"`) {
		t.Errorf("status: %d %s", code, status)
	}
	if code, _ := httpDo(t, "GET", p.first+"/v1/requests/S-1", "", nil); code != http.StatusUnauthorized {
		t.Errorf("without a key: %d", code)
	}
	if c := p.stop(t); c != exitOK {
		t.Errorf("exit %d after SIGTERM; stderr: %s", c, p.stderr.String())
	}
	out := p.first + "\n" + p.rest.String() + p.stderr.String() + string(body) + string(status)
	noSecrets(t, "serve's output", out)
	for _, s := range []string{serveKey, person} {
		if strings.Contains(out, s) {
			t.Errorf("serve's output or answers hold %q", s)
		}
	}
	// The request is in the database for a worker to take.
	cfg, err := worker.LoadConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		t.Setenv(name, value)
	}
	svc, closeDB, err := worker.Open(t.Context(), cfg, "", worker.WithIntakeOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB()
	if rs, err := svc.RequestStatus(t.Context(), "S-1"); err != nil || rs.Kind != worker.Deletion {
		t.Errorf("the stored request: %+v, %v", rs, err)
	}
}

func TestServeRefusesPlainHTTPBeyondLoopback(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte("intake file "+serveKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := workertest.Config(t, dir, map[string]*mpgdprtest.Server{"web": newFake(t)}, workertest.WithDatabase("sqlite:worker.db"))
	r := runCmd(t, nil, "", "serve", "--config", config, "--listen", "0.0.0.0:0", "--api-keys", keys)
	if r.code != exitUsage || !strings.Contains(r.stderr, "plain HTTP beyond loopback") {
		t.Errorf("plain HTTP on 0.0.0.0: %v", r)
	}
	r = runCmd(t, nil, "", "serve", "--config", config, "--listen", "127.0.0.1:0")
	if r.code != exitUsage || !strings.Contains(r.stderr, "no API key") {
		t.Errorf("without keys: %v", r)
	}
	bad := filepath.Join(dir, "bad")
	_ = os.WriteFile(bad, []byte("intake file tooshort-9Xq\n"), 0o600)
	r = runCmd(t, nil, "", "serve", "--config", config, "--listen", "127.0.0.1:0", "--api-keys", bad)
	if r.code != exitUsage || !strings.Contains(r.stderr, "shorter than 32") {
		t.Errorf("a short key: %v", r)
	}
}

// TestWorkerListen runs the worker with the API beside it: the URL is the
// first line, a request enqueued over HTTP is filed with the fake
// Mixpanel, and SIGTERM stops both cleanly.
func TestWorkerListen(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	config := workertest.Config(t, dir, map[string]*mpgdprtest.Server{"web": srv}, workertest.WithDatabase("sqlite:worker.db"), workertest.With("batch_window", `"50ms"`))
	const readKey = "read-key-Uy6Tr4Ee2Ww9Qq1Aa3Ss5Dd7Ff8Gg"
	p := startServe(t, []string{"MPGDPR_API_KEYS=intake file,read " + serveKey + "\npoller read " + readKey}, "worker", "--config", config, "--status-every", "0", "--listen", "127.0.0.1:0")
	if !strings.HasPrefix(p.first, "http://127.0.0.1:") {
		t.Fatalf("first line %q, want the URL; stderr: %s", p.first, p.stderr.String())
	}
	code, body := httpDo(t, "POST", p.first+"/v1/requests", serveKey, map[string]any{
		"reference": "W-1", "kind": "deletion", "compliance_type": "GDPR", "distinct_ids": []string{"person-W1-listen"}, "projects": []string{"web"},
	})
	if code != http.StatusAccepted {
		t.Fatalf("enqueue: %d %s", code, body)
	}
	until(t, "the request filed", func() bool {
		_, st := httpDo(t, "GET", p.first+"/v1/requests/W-1", readKey, nil)
		return strings.Contains(string(st), `"task_id"`)
	})
	// A retrieval's finished task shows the API's download path, never
	// the export's place on the server.
	code, body = httpDo(t, "POST", p.first+"/v1/requests", serveKey, map[string]any{
		"reference": "W-2", "kind": "retrieval", "compliance_type": "GDPR", "distinct_ids": []string{"person-W2-listen"}, "projects": []string{"web"},
	})
	if code != http.StatusAccepted {
		t.Fatalf("enqueue: %d %s", code, body)
	}
	var st []byte
	until(t, "the export downloaded", func() bool {
		_, st = httpDo(t, "GET", p.first+"/v1/requests/W-2", readKey, nil)
		return strings.Contains(string(st), `"export"`)
	})
	if !strings.Contains(string(st), `"url":"/v1/requests/W-2/exports/web/`) || strings.Contains(string(st), dir) {
		t.Errorf("the retrieval's status: %s", st)
	}
	if c := p.stop(t); c != exitOK {
		t.Errorf("exit %d after SIGTERM; stderr: %s", c, p.stderr.String())
	}
	noSecrets(t, "the worker's output", p.first+p.rest.String()+p.stderr.String())
	if strings.Contains(p.stderr.String(), serveKey) || strings.Contains(p.stderr.String(), readKey) {
		t.Error("the worker printed the API key")
	}
}

// TestServeFromConfig serves from the config's [api] section alone: the
// listen address, a key file relative to the config, its rate limit. A
// key written in the section is refused without being quoted.
func TestServeFromConfig(t *testing.T) {
	dir := t.TempDir()
	config := workertest.Config(t, dir, map[string]*mpgdprtest.Server{"web": newFake(t)}, workertest.WithDatabase("sqlite:worker.db"))
	if err := os.WriteFile(filepath.Join(dir, "keys"), []byte("reader read "+serveKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	write := func(section string) {
		if err := os.WriteFile(config, append(append([]byte{}, base...), section...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("\n[api]\nlisten = \"127.0.0.1:0\"\nkey_files = [\"keys\"]\nrate_limit = 0.01\nrate_burst = 1\n")
	p := startServe(t, nil, "serve", "--config", config)
	if !strings.HasPrefix(p.first, "http://127.0.0.1:") {
		t.Fatalf("first line %q; stderr: %s", p.first, p.stderr.String())
	}
	if code, body := httpDo(t, "GET", p.first+"/v1/requests/none", serveKey, nil); code != http.StatusNotFound {
		t.Errorf("with the config's key: %d %s", code, body)
	}
	if code, _ := httpDo(t, "GET", p.first+"/v1/requests/none", serveKey, nil); code != http.StatusTooManyRequests {
		t.Errorf("over the config's rate: %d, want 429", code)
	}
	p.stop(t)

	write("\n[api]\nlisten = \"127.0.0.1:0\"\napi_key = \"" + serveKey + "\"\n")
	r := runCmd(t, nil, "", "serve", "--config", config)
	if r.code != exitUsage || !strings.Contains(r.stderr, "unknown keys: api.api_key") || strings.Contains(r.stderr, serveKey) {
		t.Errorf("a key in the config: %v", r)
	}
}
