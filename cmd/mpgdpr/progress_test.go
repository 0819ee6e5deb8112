package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// The progress line at a given moment: a rate only over a second or more,
// counts per task status, and an estimate of the filing left from the rate
// limit.
func TestProgressLineContent(t *testing.T) {
	cl := newCLI(nil, io.Discard, io.Discard, nil)
	p := cl.newProgress("never", "delete", 2)
	t0 := p.started
	p.requests.Store(3)
	p.chunksTotal.Store(10)
	p.chunksDone.Store(4)
	if got := p.line(t0.Add(5 * time.Millisecond)); !strings.Contains(got, "· 3 requests ·") || strings.Contains(got, "req/s") {
		t.Errorf("an instant in: %q", got)
	}
	p.tasksTotal.Store(4)
	p.setStatus("t1", "PENDING")
	p.setStatus("t2", "SUCCESS")
	p.setStatus("t3", "SUCCESS")
	p.setStatus("t1", "STARTED")
	got := p.line(t0.Add(2 * time.Second))
	for _, want := range []string{"delete: requests filed 4/10", "tasks ended 2/4 (1 STARTED, 2 SUCCESS)", "1.5 req/s", "filing ETA 3s", "· 2s"} {
		if !strings.Contains(got, want) {
			t.Errorf("line lacks %q: %q", want, got)
		}
	}
	p.exportsTotal.Store(3)
	p.exportsDone.Store(1)
	if got := p.line(t0.Add(2 * time.Second)); !strings.Contains(got, "exports saved 1/3") {
		t.Errorf("exports: %q", got)
	}
	p.setWait("retrying CreateDeletion in {left} (attempt 3/8): 503 Service Unavailable", t0.Add(20*time.Second))
	if got := p.line(t0.Add(4 * time.Second)); !strings.Contains(got, "retrying CreateDeletion in 16s (attempt 3/8): 503 Service Unavailable") {
		t.Errorf("a retry: %q", got)
	}
	if got := p.line(t0.Add(21 * time.Second)); strings.Contains(got, "retrying") {
		t.Errorf("a retry that is over: %q", got)
	}
	// status files nothing: no "requests filed 0/0".
	s := cl.newProgress("never", "status", 1)
	if got := s.line(s.started.Add(time.Second)); strings.Contains(got, "filed") || strings.Contains(got, "ETA") {
		t.Errorf("status: %q", got)
	}
}

// A wait of more than MPGDPR_NOTE_AFTER is said even without --verbose and
// without a progress line: a retry, with its reason, and a request waiting
// for its turn at the rate limit.
func TestLongWaitsAreSaid(t *testing.T) {
	t.Parallel() // each waits out a Retry-After of 1s
	srv := newFake(t)
	srv.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCheckDeletion, Status: http.StatusServiceUnavailable, RetryAfter: "1"})
	env := credEnv(envNoteAfter + "=100ms")
	r := runCmd(t, env, "", append([]string{"status", "deletion", "no-such-task"}, fast(srv)...)...)
	if !strings.Contains(r.stderr, "mpgdpr: retrying CheckDeletion in 1s (attempt 2/8): 503 Service Unavailable") {
		t.Errorf("retry not said: %v", r)
	}
	dir := t.TempDir()
	r = runCmd(t, env, "", "delete", "--compliance", "GDPR", "--chunk-size", "1", "--journal", filepath.Join(dir, "j"),
		"--base-url", srv.URL(), "--rate", "0.5", "--progress", "never", "a", "b")
	if r.code != 0 || !strings.Contains(r.stderr, "the next request (1 ID) waits for its turn at the rate limit (--rate 0.5: one request every 2s)") {
		t.Errorf("pacing not said: %v", r)
	}
	// Under the threshold, nothing is said.
	r = runCmd(t, credEnv(), "", "delete", "--compliance", "GDPR", "--chunk-size", "1", "--journal", filepath.Join(dir, "k"),
		"--base-url", srv.URL(), "--rate", "1000", "--progress", "never", "c", "d")
	if r.code != 0 || strings.Contains(r.stderr, "waits for its turn") {
		t.Errorf("a short wait said: %v", r)
	}
	if r := runCmd(t, credEnv(envNoteAfter+"=soon"), "", "status", "deletion", "x"); r.code != exitUsage {
		t.Errorf("bad %s: %v", envNoteAfter, r)
	}
}

// --verbose and MPGDPR_LOG log the library's retries and the command's
// checks to stderr, redacted; the retry is then said once, by the log.
func TestVerboseLogging(t *testing.T) {
	t.Parallel() // each waits out a Retry-After of 1s
	srv := newFake(t)
	dir := t.TempDir()
	run := func(env []string, name string, extra ...string) result {
		t.Helper()
		srv.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateDeletion, Status: http.StatusTooManyRequests, RetryAfter: "1",
			Body: `{"status":"error","error":"slow down ` + sentinelOAuth + `"}`})
		args := append([]string{"delete", "--compliance", "GDPR", "--journal", filepath.Join(dir, name), name}, fast(srv)...)
		return runCmd(t, env, "", append(append(args, waitFast...), extra...)...)
	}
	r := run(credEnv(envNoteAfter+"=0"), "v1", "-v")
	for _, want := range []string{`level=WARN msg="mpgdpr: retrying" op=CreateDeletion attempt=1 wait=1s`, "status=429", `level=DEBUG msg=checked kind=deletion`, `msg="task ended"`, `msg=sending`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("--verbose lacks %q: %v", want, r)
		}
	}
	if strings.Contains(r.stderr, "mpgdpr: retrying CreateDeletion in") {
		t.Errorf("the retry is said twice: %v", r)
	}
	r = run(credEnv(envLog+"=warn", envNoteAfter+"=0"), "v2")
	if !strings.Contains(r.stderr, `msg="mpgdpr: retrying"`) || strings.Contains(r.stderr, "msg=checked") || strings.Contains(r.stderr, "level=INFO") {
		t.Errorf("MPGDPR_LOG=warn: %v", r)
	}
	if r := runCmd(t, credEnv(envLog+"=loud"), "", "status", "deletion", "x"); r.code != exitUsage || !strings.Contains(r.stderr, "MPGDPR_LOG") {
		t.Errorf("MPGDPR_LOG=loud: %v", r)
	}
}
