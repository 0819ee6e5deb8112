//go:build unix

package mpgdpr

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/internal/safefile"
)

func TestIsPartOf(t *testing.T) {
	for name, want := range map[string]bool{
		".export.zip.123.mpgdpr-part":  true,
		".export.zip.9.part":           true, // earlier versions' name
		".export.zip..mpgdpr-part":     false,
		".export.zip.12a.mpgdpr-part":  false,
		".export.zip.1.2.mpgdpr-part":  false, // the part of "export.zip.1"
		".other.zip.123.mpgdpr-part":   false,
		"export.zip.123.mpgdpr-part":   false,
		".export.zip.123.mpgdpr-parts": false,
	} {
		if got := isPartOf(name, "export.zip"); got != want {
			t.Errorf("isPartOf(%q) = %v", name, got)
		}
	}
}

// Parts left by a dead download are removed by the next download to the
// same path; a part that a running download holds, and files that are not
// ours, stay.
func TestDownloadFileRemovesStaleParts(t *testing.T) {
	content := exportBytes(20 << 10)
	h := newExportHost(t, content)
	dir := t.TempDir()
	path := filepath.Join(dir, "export.zip")
	write := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("personal data"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := write(".export.zip.1234.mpgdpr-part")
	legacy := write(".export.zip.99.part")
	foreign := []string{write(".export.zip.notes"), write(".other.zip.5.mpgdpr-part"), write("export.zip.5.mpgdpr-part")}
	live := write(".export.zip.777.mpgdpr-part")
	held, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := safefile.TryLock(held); err != nil {
		t.Fatalf("lock: %v", err)
	}
	if _, err := downloadTestClient(t).DownloadExportFile(context.Background(), h.task(), path, dl); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{stale, legacy} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: stale part left (%v)", filepath.Base(p), err)
		}
	}
	for _, p := range append(foreign, live, path) {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: removed: %v", filepath.Base(p), err)
		}
	}
}

// TestDownloadFileAfterSIGKILL kills a real process in the middle of a
// download, then checks that its part file, full of export bytes, is gone
// after the next download to the same path.
func TestDownloadFileAfterSIGKILL(t *testing.T) {
	if os.Getenv("MPGDPR_TEST_KILLED_DOWNLOAD") != "" {
		killedDownloadChild()
		return
	}
	content := exportBytes(256 << 10)
	release := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	stall := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		s := stall
		mu.Unlock()
		w.Header().Set("ETag", `"v1"`)
		if !s {
			http.ServeContent(w, r, "x.zip", time.Time{}, strings.NewReader(string(content)))
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		_, _ = w.Write(content[:len(content)/2])
		w.(http.Flusher).Flush()
		select { // hold the transfer open until the child is dead
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer once.Do(func() { close(release) })

	dir := t.TempDir()
	path := filepath.Join(dir, "export.zip")
	cmd := exec.Command(os.Args[0], "-test.run=^TestDownloadFileAfterSIGKILL$")
	cmd.Env = append(os.Environ(), "MPGDPR_TEST_KILLED_DOWNLOAD="+srv.URL+"/x.zip", "MPGDPR_TEST_KILLED_PATH="+path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait (bounded, not timed) for the child's part file to hold data.
	var part string
	deadline := time.Now().Add(60 * time.Second)
	for part == "" {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatal("the child never wrote a part file")
		}
		time.Sleep(10 * time.Millisecond)
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && isPartOf(e.Name(), "export.zip") && fi.Size() > 0 {
				part = filepath.Join(dir, e.Name())
			}
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no cleanup runs
		t.Fatal(err)
	}
	_ = cmd.Wait()
	once.Do(func() { close(release) })
	if _, err := os.Stat(part); err != nil {
		t.Fatalf("the killed download left no part (%v): the test proves nothing", err)
	}
	mu.Lock()
	stall = false
	mu.Unlock()
	if _, err := downloadTestClient(t).DownloadExportFile(context.Background(), &Task{Status: StatusSuccess, DownloadURL: srv.URL + "/x.zip"}, path, dl); err != nil {
		t.Fatal(err)
	}
	assertDir(t, dir, path, content)
}

// killedDownloadChild downloads until it is killed.
func killedDownloadChild() {
	c, err := New(testOAuth, testProject, WithRateLimiter(nil))
	if err != nil {
		os.Exit(3)
	}
	task := &Task{Status: StatusSuccess, DownloadURL: os.Getenv("MPGDPR_TEST_KILLED_DOWNLOAD")}
	_, _ = c.DownloadExportFile(context.Background(), task, os.Getenv("MPGDPR_TEST_KILLED_PATH"), WithInsecureLoopbackDownloads())
	os.Exit(2) // not reached: the parent kills us mid-transfer
}
