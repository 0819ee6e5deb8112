package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

// startUmask is start with the process's umask 000, so that every file
// and directory it creates gets exactly the mode it asks for.
func startUmask(t *testing.T, args ...string) *proc {
	t.Helper()
	return startCmd(t, exec.Command("/bin/sh", append([]string{"-c", `umask 000 && exec "$0" "$@"`, binary(t)}, args...)...), nil)
}

// running says whether the process has not ended yet.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// openService opens the database of config in this process, as `mpgdpr
// request status` would.
func openService(t *testing.T, config, database string) worker.Service {
	t.Helper()
	cfg, err := worker.LoadConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	svc, closeDB, err := worker.Open(context.Background(), cfg, database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeDB)
	return svc
}

// takenUp waits until every reference's request is stored and a worker
// has taken up each of its items (batched it, at least: intake stores
// them queued).
func takenUp(t *testing.T, svc worker.Service, refs []string) {
	t.Helper()
	for _, ref := range refs {
		until(t, ref+" taken up by a worker", func() bool {
			rs, err := svc.RequestStatus(context.Background(), ref)
			if err != nil || len(rs.Items) == 0 {
				return false
			}
			for _, it := range rs.Items {
				if it.State == worker.StateQueued {
					return false
				}
			}
			return true
		})
	}
}

// Workers and intake commands started at the same moment on a new
// database (systemd starting a worker beside an intake job), round after
// round, on SQLite (one worker: a second is refused by design) and on
// Postgres (two): no process fails on its start, every request an intake
// command acknowledged is stored and taken up by a worker, every worker
// stops cleanly on SIGTERM, and (SQLite) every file and directory made for
// the database is private to its owner although the processes ran with
// umask 000. Before the setup lock, one side failed in 16 tries of 16
// ("table river_migration already exists", "database is locked").
// Cost: about 1 s a round per driver (3 rounds under -race, 8 without).
func TestFirstStartTogether(t *testing.T) {
	rounds := 8
	if raceEnabled {
		rounds = 3
	}
	srv := newFake(t)
	workertest.ForEachDriver(t, func(t *testing.T, d workertest.Driver) {
		for round := range rounds {
			t.Run(fmt.Sprint(round), func(t *testing.T) { firstStartRound(t, d, srv) })
		}
	})
}

func firstStartRound(t *testing.T, d workertest.Driver, srv *mpgdprtest.Server) {
	dir := t.TempDir()
	url, workers := "sqlite:state/worker.db", 1 // state/ made by the processes
	if d == workertest.Postgres {
		url, workers = workertest.DatabaseURL(t, d, dir), 2
	}
	config := workertest.Config(t, dir, map[string]*mpgdprtest.Server{"web": srv}, workertest.WithDatabase(url), workertest.With("batch_window", `"50ms"`))
	var ws, intake []*proc
	var refs []string
	for i := range 4 + workers {
		if i < workers {
			ws = append(ws, startUmask(t, "worker", "--config", config, "--status-every", "0", "--grace", "20s"))
			continue
		}
		ref, kind := fmt.Sprintf("FS-%d", i), "delete"
		if i%2 == 0 {
			kind = "retrieve"
		}
		refs = append(refs, ref)
		intake = append(intake, startUmask(t, "request", kind, "--config", config, "--ref", ref, "--compliance", "GDPR", "--project", "web", "user-"+ref))
	}
	for i, p := range intake {
		if r := p.wait(t); r.code != exitOK || !strings.Contains(r.stdout, refs[i]+" enqueued") {
			t.Errorf("request %s: %v", refs[i], r)
		}
	}
	for _, p := range ws {
		if !p.running() {
			t.Fatalf("a worker failed on its start: %v", p.wait(t))
		}
	}
	// Taken up by a worker: it has started, and made its lock file.
	takenUp(t, openService(t, config, ""), refs)
	if d == workertest.SQLite {
		privateFiles(t, dir, filepath.Join(dir, "state"), "worker.db", "worker.db-wal", "worker.db-shm", "worker.db.setup-lock", "worker.db.worker-lock")
	}
	for _, p := range ws {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range ws {
		if r := p.wait(t); r.code != exitOK || !strings.Contains(r.stderr, "stopped cleanly") {
			t.Errorf("worker on SIGTERM: %v", r)
		}
	}
}

// privateFiles fails t unless every file and directory under dir is
// private to its owner (no group or other bit), dir itself aside, and
// dbDir holds names.
func privateFiles(t *testing.T, dir, dbDir string, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(dbDir, name)); err != nil {
			t.Error(err)
		}
	}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %#o, want no group or other access", p, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// A SQLite database file replaced under a running worker, its -wal and
// -shm left under their names (a restore from a backup, a reset between
// tries): the next intake command stores its request in the new database
// (it failed with a disk I/O error, taking the old -wal and -shm for the
// new file's), and the worker stops, non-zero, saying why (it went on with
// the old file for good, 0 queued, while requests went to the new one).
func TestDatabaseReplaced(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	config := workertest.Config(t, dir, map[string]*mpgdprtest.Server{"web": srv}, workertest.WithDatabase("sqlite:worker.db"), workertest.With("batch_window", `"50ms"`))
	enqueue := func(ref string) result {
		return runBinary(t, nil, "request", "delete", "--config", config, "--ref", ref, "--compliance", "GDPR", "--project", "web", "user-"+ref)
	}
	if r := enqueue("RP-1"); r.code != exitOK {
		t.Fatal(r)
	}
	w := start(t, nil, "worker", "--config", config, "--status-every", "0")
	takenUp(t, openService(t, config, ""), []string{"RP-1"})
	db := filepath.Join(dir, "worker.db")
	if err := os.Rename(db, db+".old"); err != nil {
		t.Fatal(err)
	}
	if r := enqueue("RP-2"); r.code != exitOK {
		t.Fatalf("request on the new database: %v", r)
	}
	r := w.wait(t)
	if r.code == exitOK || !strings.Contains(r.stderr, "database file was removed or replaced") {
		t.Errorf("worker: %v", r)
	}
	if _, err := openService(t, config, "").RequestStatus(context.Background(), "RP-2"); err != nil {
		t.Errorf("RP-2 in the new database: %v", err)
	}
}
