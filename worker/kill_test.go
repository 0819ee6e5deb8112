package worker

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// buildTestWorker compiles internal/testworker once per test binary.
var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "mpgdpr-testworker-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "testworker")
	out, err := exec.Command("go", "build", "-o", bin, "./internal/testworker").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

type subprocess struct {
	cmd   *exec.Cmd
	ready chan struct{} // closed when the worker has installed its signal handler and started
}

func startWorkerProcess(t *testing.T, config, database string, logf *os.File) *subprocess {
	t.Helper()
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", config, "-db", database)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &subprocess{cmd: cmd, ready: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				close(p.ready)
			}
		}
	}()
	return p
}

func (p *subprocess) kill()          { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() }
func (p *subprocess) term() error    { _ = p.cmd.Process.Signal(syscall.SIGTERM); return p.cmd.Wait() }
func (p *subprocess) pid() int       { return p.cmd.Process.Pid }
func (p *subprocess) String() string { return fmt.Sprint("pid ", p.pid()) }

// TestSIGKILLLoopSQLite kills the worker process at random moments while
// requests stream in, then lets one run to the end: no request is lost, no
// deletion is filed twice, and no retrieval is filed twice (one whose
// create was cut off is reported unknown).
func TestSIGKILLLoopSQLite(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and kills a worker process")
	}
	fakes := twoFakes(t)
	// Slow creates, so that kills often land while one is on the wire.
	for _, f := range fakes {
		f.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateDeletion, Latency: 120 * time.Millisecond, Times: 1000})
		f.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateRetrieval, Latency: 120 * time.Millisecond, Times: 1000})
	}
	e := newTestEnv(t, fakes)
	// Short job timeout: a job whose process died is rescued quickly; the
	// batch window is short so that kills land in every phase.
	config := testConfig(t, e.dir, fakes)
	slowPolls(t, config)
	database := "sqlite:" + filepath.Join(e.dir, "worker.db")
	logf, err := os.Create(filepath.Join(e.dir, "worker.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	const deletions, retrievals = 40, 12
	ctx := context.Background()
	enqueued := make(chan error, 1)
	go func() {
		for i := range deletions + retrievals {
			r := Request{Reference: fmt.Sprintf("K-%d", i), Kind: Deletion, ComplianceType: mpgdpr.GDPR,
				DistinctIDs: []string{fmt.Sprintf("del-%d", i)}, AllProjects: true}
			if i >= deletions {
				r = Request{Reference: fmt.Sprintf("K-%d", i), Kind: Retrieval, ComplianceType: mpgdpr.GDPR,
					DistinctIDs: []string{fmt.Sprintf("ret-%d", i)}, Projects: []string{"eu"}}
			}
			if _, err := e.w.Enqueue(ctx, r); err != nil {
				enqueued <- err
				return
			}
			time.Sleep(15 * time.Millisecond)
		}
		enqueued <- nil
	}()
	for range 8 {
		p := startWorkerProcess(t, config, database, logf)
		time.Sleep(time.Duration(150+rng.IntN(700)) * time.Millisecond)
		p.kill()
	}
	if err := <-enqueued; err != nil {
		t.Fatal(err)
	}
	p := startWorkerProcess(t, config, database, logf)
	select {
	case <-p.ready:
	case <-time.After(2 * time.Minute):
		t.Fatal("the last worker did not start")
	}
	want := 2*deletions + retrievals
	waitFor(t, "every item settled", func() bool {
		total, ok := e.itemsIn(StateDone, StateUnknown)
		return total == want && ok
	})
	if err := p.term(); err != nil {
		t.Errorf("worker exit after SIGTERM: %v", err)
	}
	if t.Failed() {
		b, _ := os.ReadFile(logf.Name())
		t.Logf("worker log:\n%s", b)
	}

	for name, f := range fakes {
		times := filedTimes(f, mpgdprtest.Deletion)
		for i := range deletions {
			if n := times[fmt.Sprintf("del-%d", i)]; n != 1 {
				t.Errorf("%s: del-%d in %d deletion tasks, want exactly 1", name, i, n)
			}
		}
	}
	rtimes := filedTimes(fakes["eu"], mpgdprtest.Retrieval)
	unknown := 0
	for i := deletions; i < deletions+retrievals; i++ {
		ref, id := fmt.Sprintf("K-%d", i), fmt.Sprintf("ret-%d", i)
		it, _ := itemEvents(t, e, ref, "eu")
		switch {
		case rtimes[id] > 1:
			t.Errorf("%s filed %d times", id, rtimes[id])
		case it.State == StateDone && rtimes[id] != 1:
			t.Errorf("%s done but in %d fake tasks", id, rtimes[id])
		case it.State == StateUnknown:
			unknown++
		}
	}
	for i := range deletions {
		for _, project := range []string{"us", "eu"} {
			if it, _ := itemEvents(t, e, fmt.Sprintf("K-%d", i), project); it.State != StateDone {
				t.Errorf("K-%d in %s: %s", i, project, it.State)
			}
		}
	}
	t.Logf("retrievals reported unknown after kills: %d of %d", unknown, retrievals)
}

// TestSIGKILLLoopPostgres runs three worker processes on one Postgres
// database against fakes that enforce the project rate by arrival time,
// kills one at random moments and starts it again, then lets them finish:
// nothing lost, nothing filed twice, and no 429 caused by the workers
// themselves (they share each project's budget).
func TestSIGKILLLoopPostgres(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and kills worker processes")
	}
	const rate = 25
	fakes := twoFakes(t, mpgdprtest.WithRateLimit(rate))
	for _, f := range fakes {
		f.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateDeletion, Latency: 80 * time.Millisecond, Times: 1000})
	}
	e := newPGEnv(t, fakes)
	config := filepath.Join(e.dir, "worker.toml")
	text, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	text = []byte(strings.ReplaceAll(strings.Replace(string(text), `job_timeout = "20s"`, `job_timeout = "4s"`, 1), "rate = 500", fmt.Sprintf("rate = %d", rate)))
	text = []byte(strings.Replace(string(text), `request_lease = "5s"`, `request_lease = "2s"`, 1))
	if err := os.WriteFile(config, text, 0o600); err != nil {
		t.Fatal(err)
	}
	slowPolls(t, config)
	logf, err := os.Create(filepath.Join(e.dir, "worker.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))

	const deletions = 60
	ctx := context.Background()
	enqueued := make(chan error, 1)
	go func() {
		for i := range deletions {
			if _, err := e.svc.Enqueue(ctx, Request{Reference: fmt.Sprintf("P-%d", i), Kind: Deletion, ComplianceType: mpgdpr.GDPR,
				DistinctIDs: []string{fmt.Sprintf("pdel-%d", i)}, AllProjects: true}); err != nil {
				enqueued <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		enqueued <- nil
	}()
	procs := make([]*subprocess, 3)
	for i := range procs {
		procs[i] = startWorkerProcess(t, config, e.url, logf)
	}
	for range 8 {
		time.Sleep(time.Duration(200+rng.IntN(600)) * time.Millisecond)
		i := rng.IntN(len(procs))
		procs[i].kill()
		procs[i] = startWorkerProcess(t, config, e.url, logf)
	}
	if err := <-enqueued; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every item done", func() bool {
		total, ok := e.itemsIn(StateDone)
		return total == 2*deletions && ok
	})
	for _, p := range procs {
		select {
		case <-p.ready:
		case <-time.After(time.Minute):
			t.Error("a worker did not start")
		}
		if err := p.term(); err != nil {
			t.Errorf("worker exit after SIGTERM: %v", err)
		}
	}
	for name, f := range fakes {
		times := filedTimes(f, mpgdprtest.Deletion)
		for i := range deletions {
			if n := times[fmt.Sprintf("pdel-%d", i)]; n != 1 {
				t.Errorf("%s: pdel-%d in %d deletion tasks, want exactly 1", name, i, n)
			}
		}
		n429 := 0
		for _, r := range f.Requests() {
			if r.Status == 429 {
				n429++
			}
		}
		if n429 != 0 {
			t.Errorf("%s: %d answers 429 with three workers sharing the budget", name, n429)
		}
		t.Logf("%s: %d requests, %d creates", name, len(f.Requests()), creates(f, mpgdprtest.OpCreateDeletion))
	}
	if t.Failed() {
		b, _ := os.ReadFile(logf.Name())
		t.Logf("worker log:\n%s", b)
	}
}

// slowPolls keeps a task from finishing (4 polls) within a create's
// injected latency: otherwise a create delayed on the wire from a killed
// worker could be carried out after its resubmission had already succeeded,
// and Mixpanel would rightly hold two tasks (an answer lost, which the rules
// allow), making the test's "exactly one task" depend on timing.
func slowPolls(t *testing.T, config string) {
	t.Helper()
	text, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(text), `poll_min = "10ms"`, `poll_min = "250ms"`, 1)
	s = strings.Replace(s, `poll_max = "40ms"`, `poll_max = "500ms"`, 1)
	if err := os.WriteFile(config, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
