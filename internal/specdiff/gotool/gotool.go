// Package gotool finds the executables of the tools a tools go.mod pins
// (`tool` lines), for tests that run them many times: oasdiff and
// oapi-codegen are big builds on a cold cache (about a minute on two cores),
// and `go tool` costs a module load on every run even when warm.
//
// Path builds a tool once with `go tool -n`, which compiles and links it into
// the build cache (where `go tool` itself then finds it) and prints where.
// Test binaries of several packages run at once under `go test ./...`; a lock
// file serialises their builds so that the first does the work and the others
// find it in the cache, instead of all compiling the same packages side by
// side.
package gotool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

var (
	mu    sync.Mutex
	paths = map[[2]string]string{} // {modfile, tool} -> executable
)

// Path returns the executable of tool as pinned in modfile, building it if
// the build cache does not hold it. dir is a directory inside a module (go
// tool -modfile needs one; nothing is written there).
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
	unlock, err := lockBuilds(modfile)
	if err != nil {
		return "", err
	}
	defer unlock()
	cmd := exec.CommandContext(ctx, "go", "tool", "-modfile="+modfile, "-n", tool)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go tool -n %s: %w: %s", tool, err, strings.TrimSpace(stderr.String()))
	}
	// -n prints the command line it would run: the executable, no arguments.
	p := strings.TrimSpace(stdout.String())
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		return "", fmt.Errorf("go tool -n %s printed %q, which is not an executable", tool, p)
	}
	paths[key] = p
	return p, nil
}

// lockPath is one lock file per tools go.mod and build cache.
func lockPath(modfile string) string {
	sum := sha256.Sum256([]byte(modfile + "\x00" + os.Getenv("GOCACHE")))
	return filepath.Join(os.TempDir(), fmt.Sprintf("mpgdpr-gotool-%x.lock", sum[:8]))
}
