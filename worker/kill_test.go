package worker

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
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
	if testing.Short() {
		t.Skip("builds and kills a worker process")
	}
	fakes := twoFakes(t)
	// Slow creates, so that kills often land while one is on the wire.
	for _, f := range fakes {
		f.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateDeletion, Latency: 120 * time.Millisecond, Times: 1000})
		f.InjectFault(mpgdprtest.Fault{Op: mpgdprtest.OpCreateRetrieval, Latency: 120 * time.Millisecond, Times: 1000})
	}
	e := newTestEnv(t, fakes, "")
	// Short job timeout: a job whose process died is rescued quickly; the
	// batch window is short so that kills land in every phase.
	config := testConfig(t, e.dir, fakes, "")
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
