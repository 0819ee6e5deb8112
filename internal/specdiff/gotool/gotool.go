// Package gotool finds the executables of the tools a tools go.mod pins
// (`tool` lines), for tests that run them many times: oasdiff and
// oapi-codegen are big builds on a cold cache (about a minute on two cores),
// and `go tool` costs a module load on every run even when warm.
//
// Path builds a tool once with `go build`, honouring GOFLAGS: under make
// test they hold -race, so the tools link from the race-built standard
// library and kin-openapi the tests compiled anyway, instead of needing a
// second, non-race build of all of them (`go tool` takes no -race). Test
// binaries of several packages run at once under `go test ./...`; a lock
// file serialises their builds so that the first does the work and the
// others find it in the build cache, instead of all compiling the same
// packages side by side.
package gotool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/privacykit/mpgdpr/internal/safefile"
)

var (
	mu    sync.Mutex
	paths = map[[2]string]string{} // {modfile, tool} -> executable
)

// Path returns the executable of tool as pinned in modfile, building it if
// the build cache does not hold it. dir is a directory inside a module (go
// build -modfile needs one; nothing is written there).
func Path(ctx context.Context, modfile, dir, tool string) (string, error) {
	modfile, err := filepath.Abs(modfile)
	if err != nil {
		return "", err
	}
	key := [2]string{modfile, tool}
	mu.Lock()
	defer mu.Unlock()
	if p, ok := paths[key]; ok {
		return p, nil
	}
	pkg, err := toolPackage(ctx, modfile, dir, tool)
	if err != nil {
		return "", err
	}
	unlock, err := lockBuilds(modfile)
	if err != nil {
		return "", err
	}
	defer unlock()
	out := filepath.Join(outDir(modfile), tool)
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		return "", err
	}
	// Build beside the final name and rename: another test process may be
	// running the executable that is there now, which a rename leaves
	// intact and a rewrite in place would not.
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	cmd := exec.CommandContext(ctx, "go", "build", "-modfile="+modfile, "-o", tmp, pkg)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build %s: %w: %s", pkg, err, strings.TrimSpace(stderr.String()))
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return "", err
	}
	paths[key] = out
	return out, nil
}

// toolPackage is the package of modfile's tool line named tool: its last
// path element, or the one before a major-version suffix, as `go tool`
// names them.
func toolPackage(ctx context.Context, modfile, dir, tool string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "edit", "-json", modfile)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go mod edit -json %s: %w: %s", modfile, err, strings.TrimSpace(stderr.String()))
	}
	var mod struct{ Tool []struct{ Path string } }
	if err := json.Unmarshal(stdout.Bytes(), &mod); err != nil {
		return "", fmt.Errorf("go mod edit -json %s: %w", modfile, err)
	}
	for _, t := range mod.Tool {
		if toolName(t.Path) == tool {
			return t.Path, nil
		}
	}
	return "", fmt.Errorf("%s has no tool line for %q", modfile, tool)
}

var majorVersion = regexp.MustCompile(`^v[0-9]+$`)

func toolName(pkg string) string {
	name := path.Base(pkg)
	if majorVersion.MatchString(name) {
		name = path.Base(path.Dir(pkg))
	}
	return name
}

// outDir holds the built tools, one directory per tools go.mod, build cache
// and GOFLAGS (go build relinks only what changed).
func outDir(modfile string) string {
	sum := sha256.Sum256([]byte(modfile + "\x00" + os.Getenv("GOCACHE") + "\x00" + os.Getenv("GOFLAGS")))
	return filepath.Join(os.TempDir(), fmt.Sprintf("mpgdpr-gotool-%x", sum[:8]))
}

// lockBuilds takes an exclusive lock shared by every process building from
// the same tools go.mod into the same cache; the system drops it if the
// process dies. Where there are no file locks, concurrent builds of the same
// tool are only slower, not wrong: it goes on unlocked.
func lockBuilds(modfile string) (func(), error) {
	f, err := os.OpenFile(lockPath(modfile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := safefile.Lock(f); err != nil && !errors.Is(err, safefile.ErrUnsupported) {
		_ = f.Close()
		return nil, err
	}
	return func() { _ = f.Close() }, nil // closing releases the lock
}

// lockPath is one lock file per tools go.mod and build cache.
func lockPath(modfile string) string {
	sum := sha256.Sum256([]byte(modfile + "\x00" + os.Getenv("GOCACHE")))
	return filepath.Join(os.TempDir(), fmt.Sprintf("mpgdpr-gotool-%x.lock", sum[:8]))
}
