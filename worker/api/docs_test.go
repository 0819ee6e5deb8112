package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/privacykit/mpgdpr/worker"
)

// TestDocsExamples runs every sh example of docs/API.md against a served
// API (over a fake Service): each must pass authentication and the
// document's validation and succeed.
func TestDocsExamples(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no curl: make deps installs it")
		}
		t.Skip("no curl (make deps installs it)")
	}
	doc, err := os.ReadFile("../../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 10 {
		t.Fatalf("%d sh examples in docs/API.md, want one per endpoint", len(blocks))
	}
	export := []byte("PK\x03\x04 an export")
	sum := sha256.Sum256(export)
	svc := &fakeService{
		enqueue: func(r worker.Request) (*worker.EnqueueResult, error) {
			return &worker.EnqueueResult{Reference: r.Reference, Projects: []string{"web"}}, nil
		},
		list: func(worker.ListOptions) (*worker.RequestPage, error) { return &worker.RequestPage{}, nil },
		cancel: func(ref string) (*worker.CancelResult, error) {
			return &worker.CancelResult{Reference: ref, Items: []worker.CancelItem{{Project: "web", State: "cancelled", Outcome: "cancelled"}}}, nil
		},
		openExport: func(ref, project, task string) (*worker.ExportFile, error) {
			if ref != "DSR-1043" || project != "web" || task != "4412" {
				return nil, worker.ErrNoExport
			}
			return &worker.ExportFile{ReadCloser: io.NopCloser(strings.NewReader(string(export))), TaskID: task, Size: int64(len(export)), SHA256: hex.EncodeToString(sum[:])}, nil
		},
	}
	s := serve(t, svc)
	dir := t.TempDir()
	for _, b := range blocks {
		script := b[1]
		cmd := exec.Command("sh", "-c", strings.ReplaceAll(script, "curl ", curl+" "))
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "MPGDPR_URL=" + s.url, "MPGDPR_KEY=" + allSecret}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s\nfailed: %v\n%s", script, err, out)
		}
	}
	if got, _ := os.ReadFile(dir + "/export.zip"); string(got) != string(export) {
		t.Errorf("the download example saved %q", got)
	}
}
