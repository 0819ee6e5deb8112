package gotool

import (
	"context"
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
