//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

// loadKey is the API key the process tests give `mpgdpr serve`.
const loadKey = "load-test-key-0123456789abcdefghijklmnopqrstuvwxyz"

// writeAPIKeys writes an API key file with one key of every scope.
func writeAPIKeys(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "api-keys")
	if err := os.WriteFile(p, []byte("# name scopes secret\nload file,read,export "+loadKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startLoaded starts `mpgdpr serve` on a free loopback port, with the
// load key, and returns it with its address.
func startLoaded(t *testing.T, config, keys string) (*serveProc, string) {
	t.Helper()
	p := startServe(t, nil, "serve", "--config", config, "--listen", "127.0.0.1:0", "--api-keys", keys)
	if !strings.HasPrefix(p.first, "http://127.0.0.1:") {
		t.Fatalf("mpgdpr serve's first line is %q, want its address; stderr: %s", p.first, p.stderr.String())
	}
	return p, p.first
}

// fileOverHTTP files one deletion; it reports whether the API
// acknowledged it (2xx), and its status code (0: no answer).
func fileOverHTTP(ctx context.Context, hc *http.Client, addr, ref string) (bool, int) {
	body, _ := json.Marshal(map[string]any{"reference": ref, "kind": "deletion", "compliance_type": "GDPR",
		"distinct_ids": []string{"user-" + ref}, "projects": []string{"web"}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, addr+"/v1/requests", bytes.NewReader(body))
	if err != nil {
		return false, 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+loadKey)
	resp, err := hc.Do(req)
	if err != nil {
		return false, 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK, resp.StatusCode
}

// TestServeSIGKILLUnderLoad: `mpgdpr serve` killed with SIGKILL while 8
// clients file requests as fast as it takes them, round after round, on
// SQLite and Postgres. Every request the API acknowledged (2xx) is stored;
// the clients then file again what was not acknowledged (same reference:
// a no-op if it was stored after all), and a worker files every request
// with Mixpanel exactly once: none lost, none duplicated.
func TestServeSIGKILLUnderLoad(t *testing.T) {
	rounds := 4
	if raceEnabled {
		rounds = 3
	}
	workertest.ForEachDriver(t, func(t *testing.T, d workertest.Driver) {
		srv := newFake(t)
		dir := t.TempDir()
		url := "sqlite:worker.db"
		if d == workertest.Postgres {
			url = workertest.DatabaseURL(t, d, dir)
		}
		config := workertest.Config(t, dir, map[string]*mpgdprtest.Server{"web": srv}, workertest.WithDatabase(url), workertest.With("batch_window", `"50ms"`),
			workertest.With("api", `{ rate_limit = 100000.0, rate_burst = 100000 }`))
		keys := writeAPIKeys(t, dir)
		hc := &http.Client{Timeout: 10 * time.Second}
		var acked, tried []string
		var mu sync.Mutex
		for round := range rounds {
			p, addr := startLoaded(t, config, keys)
			ctx, stop := context.WithCancel(context.Background())
			var n atomic.Int64
			var wg sync.WaitGroup
			for c := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ctx.Err() == nil; i++ {
						ref := fmt.Sprintf("K%d-%d-%d", round, c, i)
						ok, _ := fileOverHTTP(ctx, hc, addr, ref)
						mu.Lock()
						tried = append(tried, ref)
						if ok {
							acked = append(acked, ref)
							n.Add(1)
						}
						mu.Unlock()
					}
				}()
			}
			// Kill it mid-load: once it has taken some requests in.
			until(t, "serve to take 50 requests", func() bool { return n.Load() >= 50 })
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
			stop()
			wg.Wait()
		}
		// Every acknowledged request is stored.
		svc := openService(t, config, "")
		for _, ref := range acked {
			if _, err := svc.RequestStatus(context.Background(), ref); err != nil {
				t.Fatalf("%s was acknowledged with 2xx and is not stored: %v", ref, err)
			}
		}
		// The clients file again what was not acknowledged (as a DSR
		// platform retries): 202 if it was lost, 200 if it was stored.
		p, addr := startLoaded(t, config, keys)
		ids := make([]string, 0, len(tried))
		for _, ref := range tried {
			if ok, code := fileOverHTTP(context.Background(), hc, addr, ref); !ok {
				t.Fatalf("filing %s again was not acknowledged: status %d", ref, code)
			}
			ids = append(ids, "user-"+ref)
		}
		if code := p.stop(t); code != exitOK {
			t.Errorf("serve on SIGTERM: exit %d; stderr: %s", code, p.stderr.String())
		}
		t.Logf("%d rounds: %d requests acknowledged before a SIGKILL, %d tried", rounds, len(acked), len(tried))

		// A worker files them all, each ID exactly once.
		w := start(t, nil, "worker", "--config", config, "--status-every", "0")
		// Filing a few hundred requests takes a while under -race on a
		// loaded machine: a longer wait than until's.
		done := 0
		for deadline := time.Now().Add(3 * time.Minute); done != len(tried); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d requests done after 3 minutes", done, len(tried))
			}
			if st, err := svc.Status(context.Background()); err == nil && len(st.Projects) == 1 {
				done = st.Projects[0].Items[worker.StateDone]
			}
		}
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		_ = w.wait(t)
		filedOnce(t, srv, mpgdprtest.Deletion, ids)
	})
}
