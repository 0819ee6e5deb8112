package gotool

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestPath(t *testing.T) {
	if testing.Short() {
		t.Skip("builds oasdiff")
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	modfile := filepath.Join(root, "tools", "go.mod")
	var wg sync.WaitGroup
	got := make([]string, 3)
	errs := make([]error, 3)
	for i := range got {
		wg.Go(func() { got[i], errs[i] = Path(context.Background(), modfile, root, "oasdiff") })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || got[i] != got[0] {
			t.Fatalf("Path #%d = %q, %v; #0 = %q", i, got[i], errs[i], got[0])
		}
	}
	out, err := exec.Command(got[0], "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "oasdiff version") {
		t.Fatalf("%s --version: %v: %s", got[0], err, out)
	}
	if _, err := Path(context.Background(), modfile, root, "no-such-tool"); err == nil || !strings.Contains(err.Error(), "no-such-tool") {
		t.Errorf("an unknown tool: %v", err)
	}
}

func TestWriteShim(t *testing.T) {
	echo, err := exec.LookPath("echo")
	if err != nil {
		t.Skip("no echo")
	}
	goCmd, log, err := WriteShim(t.TempDir(), map[string]string{"it's": echo})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(goCmd, "tool", "-modfile=/m/go.mod", "it's", "a", "b c").CombinedOutput()
	if err != nil || string(out) != "a b c\n" {
		t.Errorf("go tool it's: %q, %v", out, err)
	}
	if out, err := exec.Command(goCmd, "tool", "-modfile=/m/go.mod", "other").CombinedOutput(); err == nil || !strings.Contains(string(out), "no executable for go tool -modfile=/m/go.mod other") {
		t.Errorf("an unknown tool: %q, %v", out, err)
	}
	if out, err := exec.Command(goCmd, "env", "GOROOT").CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) == 0 {
		t.Errorf("go env through the shim: %q, %v", out, err)
	}
	calls, err := os.ReadFile(log)
	if want := "tool -modfile=/m/go.mod it's a b c\ntool -modfile=/m/go.mod other\nenv GOROOT\n"; err != nil || string(calls) != want {
		t.Errorf("log %q, %v; want %q", calls, err, want)
	}
}
