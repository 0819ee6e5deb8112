//go:build unix

package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a throwaway PostgreSQL server: a data directory made by
// initdb in a temporary directory, a postgres process listening on
// 127.0.0.1 at a free port (its unix socket in the same directory), fsync
// off. Stop ends the process and removes the directory.
type Cluster struct {
	dir  string // temporary directory: data/, the socket, the logs
	url  string // admin URL: user postgres, database postgres
	port int
	bin  string
	cred *syscall.Credential // whom postgres runs as; nil: this process's user
	cmd  *exec.Cmd
	done chan struct{} // closed when the postgres process has exited
}

// dirPrefix names every temporary directory a Cluster makes, so that
// sweepStale can find the ones a killed process left behind.
const dirPrefix = "mpgdpr-pgtest-"

// URL is the cluster's admin connection URL (superuser postgres, database
// postgres, trust authentication, loopback only).
func (c *Cluster) URL() string { return c.url }

// Start makes and starts a cluster. It needs PostgreSQL's server binaries
// (initdb, postgres): from $MPGDPR_PG_BINDIR, else the newest
// /usr/lib/postgresql/*/bin (Debian's layout), else PATH. Run as root, it
// runs them as the user postgres (initdb refuses root), which the Debian
// package creates. The postgres process is killed if the calling process
// dies without calling Stop.
func Start(ctx context.Context) (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	base := baseDir(cred != nil)
	sweepStale(base)
	dir, err := os.MkdirTemp(base, dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("pgtest: temporary directory: %w", err)
	}
	c := &Cluster{dir: dir, bin: bin, cred: cred, done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(dir)
		}
	}()
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("pgtest: give %s to user postgres: %w", dir, err)
		}
	}
	data := filepath.Join(dir, "data")
	initLog := filepath.Join(dir, "initdb.log")
	if err := c.run(ctx, cred, initLog, filepath.Join(bin, "initdb"),
		"-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "-N"); err != nil {
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, tail(initLog))
	}
	// A free port can be taken by someone else before postgres binds it:
	// try a few.
	for attempt := 0; ; attempt++ {
		err := c.startServer(ctx, 0)
		if err == nil {
			break
		}
		if attempt == 2 || !errors.Is(err, errPortTaken) {
			return nil, err
		}
	}
	ok = true
	return c, nil
}

var errPortTaken = errors.New("port taken")

// startServer starts postgres on port (0: a free one) and waits until it
// accepts connections.
func (c *Cluster) startServer(ctx context.Context, port int) error {
	cred, bin, data := c.cred, c.bin, filepath.Join(c.dir, "data")
	if port == 0 {
		p, err := freePort()
		if err != nil {
			return err
		}
		port = p
	}
	logPath := filepath.Join(c.dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close()
	if cred != nil {
		_ = logf.Chown(int(cred.Uid), int(cred.Gid))
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", c.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB")
	cmd.Dir = c.dir
	cmd.Env = pgEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = serverProcAttr(cred)
	done := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		// Linux sends Pdeathsig when the thread that started the child
		// exits, not the process: keep this goroutine on its own thread
		// for as long as postgres runs.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(done)
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	c.cmd, c.done, c.port = cmd, done, port
	c.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)

	deadline := time.Now().Add(90 * time.Second) // a loaded shared machine is slow
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, c.url)
		if err == nil {
			err = conn.Ping(cctx)
			_ = conn.Close(cctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			log := tail(logPath)
			if strings.Contains(log, "could not bind") || strings.Contains(log, "Address already in use") {
				return errPortTaken
			}
			return fmt.Errorf("pgtest: postgres exited at start:\n%s", log)
		case <-ctx.Done():
			c.kill()
			return fmt.Errorf("pgtest: waiting for postgres: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.kill()
			return fmt.Errorf("pgtest: postgres not ready after 90s (last error: %v):\n%s", err, tail(logPath))
		}
	}
}

// Down stops the server (a fast shutdown: connections are cut) and keeps
// its data, for tests of a database that goes away; Up starts it again.
func (c *Cluster) Down() { c.shutdown() }

// Up starts a server stopped by Down again, on the same port (so URLs stay
// valid), and waits until it accepts connections.
func (c *Cluster) Up(ctx context.Context) error {
	select {
	case <-c.done:
	default:
		return nil // running
	}
	return c.startServer(ctx, c.port)
}

// Stop ends postgres (a fast shutdown, SIGKILL if that takes more than
// 15 s) and removes the cluster's directory. It is safe to call twice.
func (c *Cluster) Stop() error {
	if c == nil {
		return nil
	}
	c.shutdown()
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("pgtest: remove %s: %w", c.dir, err)
	}
	return nil
}

func (c *Cluster) shutdown() {
	if c.cmd != nil && c.cmd.Process != nil {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
			select {
			case <-c.done:
			case <-time.After(15 * time.Second):
				c.kill()
			}
		}
	}
}

func (c *Cluster) kill() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Kill()
	<-c.done
}

// run runs one command to its end, as cred's user, output to logPath.
func (c *Cluster) run(ctx context.Context, cred *syscall.Credential, logPath, name string, args ...string) error {
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.dir
	cmd.Env = pgEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	return cmd.Run()
}

// binDir finds the directory holding initdb and postgres.
func binDir() (string, error) {
	has := func(d string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if st, err := os.Stat(filepath.Join(d, b)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	if d := os.Getenv("MPGDPR_PG_BINDIR"); d != "" {
		if has(d) {
			return d, nil
		}
		return "", fmt.Errorf("pgtest: MPGDPR_PG_BINDIR=%s holds no initdb and postgres", d)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major version first: "16" before "9.6".
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
		if has(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	return "", errors.New("pgtest: PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin or PATH; install the Debian package postgresql (scripts/pgtest-cluster does)")
}

func version(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

// credential is the user to run postgres as: nil for a non-root user (its
// own), postgres for root.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, and initdb refuses root, but there is no user postgres to run it as (the Debian package postgresql creates it): %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgtest: user postgres has ids %q/%q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// baseDir is where the temporary directory goes: the usual temporary
// directory, unless postgres (another user) could not reach into it, as
// with a TMPDIR under /root; then /tmp.
func baseDir(otherUser bool) string {
	d := os.TempDir()
	if !otherUser {
		return d
	}
	for p := d; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if p == filepath.Dir(p) {
			return d
		}
	}
}

// sweepStale removes clusters whose owner died without stopping them (a
// test binary killed by its timeout): Pdeathsig ended their postgres, but
// not their directory.
func sweepStale(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, dirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			if pm, err := os.ReadFile(filepath.Join(d, "data", "postmaster.pid")); err == nil {
				if ppid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(pm), "\n", 2)[0])); err == nil && syscall.Kill(ppid, 0) == nil {
					continue // its postgres still runs: leave it
				}
			}
			_ = os.RemoveAll(d)
		}
	}
}

// pgEnv is the environment for PostgreSQL's programs: this process's, less
// libpq's PG* variables (which could point them elsewhere), in the C locale.
func pgEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail is the end of a log file, for an error message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(bytes.TrimSpace(b))
}
