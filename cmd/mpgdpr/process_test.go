//go:build unix

package main

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

// These tests run the real binary as a separate process, to kill it.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// binary builds the command once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "mpgdpr-bin-*")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "mpgdpr")
		// The go command that runs the tests is on PATH (go test puts
		// its own GOROOT/bin first). GOFLAGS passes through: under
		// make test it holds -race, so this build links from the
		// packages the test build compiled (see the Makefile).
		gocmd, err := exec.LookPath("go")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command(gocmd, "build", "-o", binPath, ".")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = errors.New(err.Error() + ": " + out.String())
		}
	})
	if buildErr != nil {
		t.Fatalf("building the command: %v", buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := workertest.Run(m) // and stops a PostgreSQL cluster started for the tests
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// proc is a running binary.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
	err            error
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startCmd(t, exec.Command(binary(t), args...), env)
}

// startCmd starts cmd (the binary, or a shell that runs it) with PATH, a
// HOME of its own and env, and kills it when the test ends.
func startCmd(t *testing.T, cmd *exec.Cmd, env []string) *proc {
	t.Helper()
	p := &proc{cmd: cmd, done: make(chan struct{})}
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits for the process to end and returns what it printed.
func (p *proc) wait(t *testing.T) result {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the command did not end")
	}
	r := result{code: p.cmd.ProcessState.ExitCode(), stdout: p.stdout.String(), stderr: p.stderr.String()}
	noSecrets(t, "binary output", r.stdout+r.stderr)
	return r
}

func runBinary(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return start(t, env, args...).wait(t)
}

// until polls cond every millisecond for up to 20s.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// holdingProxy forwards to the fake, but holds the answer to the hold-th
// create whose path contains kind after the fake has filed it, until the
// client goes away: the window in which a killed client cannot know its
// request was filed.
func holdingProxy(t *testing.T, srv *mpgdprtest.Server, kind string, hold int32) (base string, held <-chan struct{}) {
	t.Helper()
	target, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	var creates atomic.Int32
	ch := make(chan struct{})
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: target.Scheme, Host: target.Host})
		},
		ModifyResponse: func(resp *http.Response) error {
			req := resp.Request
			if req.Method == http.MethodPost && strings.Contains(req.URL.Path, kind) && creates.Add(1) == hold {
				close(ch)
				select {
				case <-req.Context().Done():
				case <-time.After(30 * time.Second):
				}
				return errors.New("held until the client went away")
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) },
	}
	px := httptest.NewServer(rp)
	t.Cleanup(px.Close)
	return px.URL + mpgdprtest.BasePath, ch
}

// The test: SIGKILL a bulk deletion while a request Mixpanel has
// filed is unanswered, resume with the same command, and check that every
// ID was filed exactly once and every task followed to its end.
func TestKillAndResume(t *testing.T) {
	t.Parallel()
	srv := newFake(t)
	base, held := holdingProxy(t, srv, "data-deletions", 4)
	dir := t.TempDir()
	ids, path := genIDs(t, dir, "user", 1000)
	jp := filepath.Join(dir, "job.journal.jsonl")
	args := append([]string{"delete", "--compliance", "GDPR", "--file", path, "--chunk-size", "100", "--journal", jp,
		"--base-url", base, "--rate", "1000", "--json"}, waitFast...)

	p := start(t, credEnv(), args...)
	select {
	case <-held:
	case <-p.done:
		t.Fatalf("ended before request 4: %v", p.wait(t))
	case <-time.After(30 * time.Second):
		t.Fatal("request 4 never arrived")
	}
	// Request 4 is filed and journaled as sending, with no outcome.
	recs := journalRecords(t, jp)
	if countState(recs, "sending") != 4 || countState(recs, "accepted") != 3 {
		t.Fatalf("journal before the kill: %d sending, %d accepted", countState(recs, "sending"), countState(recs, "accepted"))
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if r := p.wait(t); r.code != -1 {
		t.Fatalf("not killed: %v", r)
	}
	if n := len(srv.Tasks()); n != 4 {
		t.Fatalf("the fake holds %d tasks, want 4", n)
	}
	heldTask := srv.Tasks()[3].ID

	r := runBinary(t, credEnv(), args...)
	if r.code != 0 {
		t.Fatalf("resume: %v", r)
	}
	out := parseJSON(t, r.stdout)
	s := out.summary
	if s == nil || s.IDs != 1000 || s.Filed != 900 || s.Covered != 100 || s.Unknown+s.Unsent != 0 || s.Tasks != 10 || s.Statuses["SUCCESS"] != 10 {
		t.Fatalf("summary: %v", r)
	}
	filedOnce(t, srv, mpgdprtest.Deletion, ids)
	if n := len(srv.Tasks()); n != 10 {
		t.Errorf("the fake holds %d tasks, want 10", n)
	}
	for _, task := range srv.Tasks() {
		if task.Status != mpgdprtest.StatusSuccess {
			t.Errorf("task %s is %s", task.ID, task.Status)
		}
	}
	// The journal tells the story: the in-flight request became unknown,
	// its resubmission drew a 409 naming the held task, which was followed.
	recs = journalRecords(t, jp)
	var conflict map[string]any
	for _, rec := range recs {
		if rec["state"] == "conflict" {
			conflict = rec
		}
	}
	if countState(recs, "resumed") != 1 || countState(recs, "unknown") != 1 || conflict == nil ||
		conflict["task_ids"].([]any)[0] != heldTask || len(conflict["ids"].([]any)) != 100 {
		t.Errorf("journal after resume: %v", recs)
	}
	found := false
	for _, tl := range out.tasks {
		if tl.TaskID == heldTask {
			found = tl.Covering == 100 && tl.Status == "SUCCESS"
		}
	}
	if !found {
		t.Errorf("the held task is not followed: %v", r)
	}
}

// The same for a retrieval: Mixpanel lists no tasks, so the request in
// flight cannot be checked, and filing it again could make a second export.
// Its IDs are reported as unknown (exit 4) and filed again only with
// --resubmit-unknown.
func TestKillAndResumeRetrieval(t *testing.T) {
	t.Parallel()
	srv := newFake(t)
	base, held := holdingProxy(t, srv, "data-retrievals", 2)
	dir := t.TempDir()
	ids, path := genIDs(t, dir, "user", 300)
	jp := filepath.Join(dir, "job.journal.jsonl")
	args := []string{"retrieve", "--compliance", "GDPR", "--file", path, "--chunk-size", "100", "--journal", jp,
		"--base-url", base, "--rate", "1000", "--json"}
	p := start(t, credEnv(), args...)
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("request 2 never arrived")
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait(t)

	r := runBinary(t, credEnv(), args...)
	s := parseJSON(t, r.stdout).summary
	if r.code != exitIncomplete || s == nil || s.Unknown != 100 || len(s.UnknownRequests) != 1 || s.UnknownRequests[0] != 2 || s.Filed != 200 {
		t.Fatalf("resume: %v", r)
	}
	// Request 2 had been filed: nothing was filed twice.
	filedOnce(t, srv, mpgdprtest.Retrieval, ids)
	r = runBinary(t, credEnv(), append(args, "--resubmit-unknown")...)
	if r.code != 0 || len(srv.Tasks()) != 4 {
		t.Fatalf("--resubmit-unknown: %v", r)
	}
}

// SIGKILL at whatever point the job has reached, several times over: the
// resumed job still files every ID exactly once.
func TestKillAnywhereThenResume(t *testing.T) {
	t.Parallel()
	for _, after := range []int{1, 4, 7} {
		srv := newFake(t)
		dir := t.TempDir()
		ids, path := genIDs(t, dir, "user", 500)
		jp := filepath.Join(dir, "job.journal.jsonl")
		args := []string{"delete", "--compliance", "GDPR", "--file", path, "--chunk-size", "50", "--journal", jp,
			"--base-url", srv.URL(), "--rate", "100", "--json"}
		p := start(t, credEnv(), args...)
		until(t, "accepted requests", func() bool {
			b, _ := os.ReadFile(jp)
			return bytes.Count(b, []byte(`"state":"accepted"`)) >= after
		})
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		p.wait(t)
		r := runBinary(t, credEnv(), append(args, waitFast...)...)
		if r.code != 0 {
			t.Fatalf("killed after %d: resume: %v", after, r)
		}
		filedOnce(t, srv, mpgdprtest.Deletion, ids)
	}
}

// SIGINT (Ctrl-C) ends a job with exit 130 and a journal to resume from.
func TestSIGINT(t *testing.T) {
	srv := newFake(t, mpgdprtest.WithSchedule(mpgdprtest.Manual()))
	dir := t.TempDir()
	jp := filepath.Join(dir, "j.jsonl")
	args := append([]string{"delete", "--compliance", "GDPR", "--chunk-size", "1", "--journal", jp, "a", "b", "c"}, fast(srv)...)
	p := start(t, credEnv(), append(args, waitFast...)...)
	until(t, "three tasks", func() bool { return len(srv.Tasks()) == 3 })
	until(t, "the journal", func() bool {
		b, _ := os.ReadFile(jp)
		return bytes.Count(b, []byte(`"state":"accepted"`)) == 3
	})
	_ = p.cmd.Process.Signal(os.Interrupt)
	r := p.wait(t)
	if r.code != exitInterrupted || !strings.Contains(r.stderr, "run the same command again to resume") {
		t.Fatalf("%v", r)
	}
	for range 3 {
		srv.AdvanceAll()
	}
	if r := runBinary(t, credEnv(), append(args, waitFast...)...); r.code != 0 || !strings.Contains(r.stdout, "3 SUCCESS") {
		t.Fatalf("resume: %v", r)
	}
}

// The built binary end to end: exit codes, JSON, and a second process
// refused while the first holds the journal.
func TestBinary(t *testing.T) {
	srv := newFake(t, mpgdprtest.WithSchedule(mpgdprtest.Manual()))
	dir := t.TempDir()
	if r := runBinary(t, nil, "delete", "--compliance", "GDPR", "a"); r.code != exitUsage || !strings.Contains(r.stderr, envToken) {
		t.Fatalf("no token: %v", r)
	}
	if r := runBinary(t, nil, "help"); r.code != 0 || !strings.Contains(r.stdout, "Exit status") {
		t.Fatalf("help: %v", r)
	}
	jp := filepath.Join(dir, "j.jsonl")
	args := append([]string{"delete", "--compliance", "GDPR", "--journal", jp, "a", "b", "--json"}, fast(srv)...)
	first := start(t, credEnv(), append(args, waitFast...)...)
	until(t, "the first run's task", func() bool { return len(srv.Tasks()) == 1 })
	r := runBinary(t, credEnv(), args...)
	if r.code != exitLocal || !strings.Contains(r.stderr, "in use by another process") {
		t.Fatalf("second run on a journal in use: %v", r)
	}
	for range 3 {
		srv.AdvanceAll()
	}
	r = first.wait(t)
	if out := parseJSON(t, r.stdout); r.code != 0 || len(out.tasks) != 1 || out.tasks[0].Status != "SUCCESS" || out.summary.Filed != 2 {
		t.Fatalf("first run: %v", r)
	}
}

// A request is journaled as "sending" only once it has had its turn at the
// rate limiter: a job killed while waiting for its turn has recorded
// nothing for it, and its resumption reports no ID as of unknown outcome
// (issue 12; with WithBeforeChunk the waiting request was in the journal,
// and came back as 100 unknown IDs).
func TestKillWhileWaitingForTurn(t *testing.T) {
	t.Parallel()
	srv := newFake(t)
	dir := t.TempDir()
	ids, path := genIDs(t, dir, "user", 300)
	jp := filepath.Join(dir, "job.journal.jsonl")
	args := []string{"delete", "--compliance", "GDPR", "--file", path, "--chunk-size", "100", "--journal", jp,
		"--base-url", srv.URL(), "--json", "--progress", "never"}
	// One request every 100s: the second waits for its turn until killed.
	p := start(t, credEnv(), append(args, "--rate", "0.01")...)
	until(t, "the first request's task", func() bool {
		b, _ := os.ReadFile(jp)
		return bytes.Contains(b, []byte(`"state":"accepted"`))
	})
	// However long the second request has been waiting, it has not been
	// sent, and the journal does not say it was.
	until(t, "the second request's turn to be awaited", func() bool { return len(srv.Requests()) >= 1 })
	time.Sleep(50 * time.Millisecond)
	recs := journalRecords(t, jp)
	if n := countState(recs, "sending"); n != 1 {
		t.Errorf("journal before the kill: %d sending records, want 1 (the request sent)", n)
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait(t)
	if n := len(srv.Tasks()); n != 1 {
		t.Fatalf("the fake holds %d tasks, want 1", n)
	}
	r := runBinary(t, credEnv(), append(args, "--rate", "1000")...)
	s := parseJSON(t, r.stdout).summary
	if r.code != 0 || s == nil || s.Unknown != 0 || s.Filed != 300 || strings.Contains(r.stderr, "unknown outcome") {
		t.Fatalf("resume: %v", r)
	}
	filedOnce(t, srv, mpgdprtest.Deletion, ids)
	if recs := journalRecords(t, jp); countState(recs, "unknown") != 0 {
		t.Errorf("the resumed journal has unknown requests: %v", recs)
	}
}
