package exportfile_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/export"
	"github.com/privacykit/mpgdpr/internal/exportfile"
	"github.com/privacykit/mpgdpr/internal/safefile"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// finished files a retrieval for two people on a fake and waits for it.
func finished(t *testing.T) (*mpgdprtest.Server, *mpgdpr.Client, *mpgdpr.Task) {
	t.Helper()
	fake := mpgdprtest.NewServer(mpgdprtest.WithAPISecret("export-api-secret"))
	t.Cleanup(fake.Close)
	c, err := mpgdpr.New(fake.OAuthToken(), fake.ProjectToken(), mpgdpr.WithBaseURL(fake.URL()), mpgdpr.WithRateLimiter(nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, err := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: []string{"user-1", "user-2"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.WaitRetrieval(ctx, id, mpgdpr.WithPollInterval(time.Millisecond, 10*time.Millisecond))
	if err != nil || !task.Status.Succeeded() {
		t.Fatalf("retrieval: %v %v", task, err)
	}
	return fake, c, task
}

func TestSave(t *testing.T) {
	fake, c, task := finished(t)
	dir := filepath.Join(t.TempDir(), "exports", "p1")
	s, err := exportfile.Save(context.Background(), c, task, dir, fake.APISecret(), exportfile.Extract())
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, safefile.Name(task.TrackingID)+".zip"); s.Path != want {
		t.Errorf("path %s, want %s", s.Path, want)
	}
	b, err := os.ReadFile(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if s.Size != int64(len(b)) || s.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("size %d sha %s; the file has %d bytes, sha %x", s.Size, s.SHA256, len(b), sum)
	}
	fi, _ := os.Stat(s.Path)
	di, _ := os.Stat(dir)
	if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Errorf("modes: file %v, directory %v", fi.Mode().Perm(), di.Mode().Perm())
	}
	// An independent count of the files (4: events and profiles of each).
	a, err := export.OpenFile(s.Path, fake.APISecret())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	files := 0
	for _, f := range a.Files() {
		if !f.IsDir() {
			files++
		}
	}
	if !s.Verified || s.Entries != files || files != 4 {
		t.Errorf("verified %v, entries %d; the archive holds %d files", s.Verified, s.Entries, files)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "events", "user-1.json")); err != nil || s.Dir != filepath.Join(dir, safefile.Name(task.TrackingID)) {
		t.Errorf("extracted into %q: %v", s.Dir, err)
	}
}

func TestSaveSecrets(t *testing.T) {
	_, c, task := finished(t)
	ctx := context.Background()

	_, err := exportfile.Save(ctx, c, task, t.TempDir(), "not-the-secret")
	var e *exportfile.Error
	if !errors.As(err, &e) || !errors.Is(err, export.ErrWrongSecret) || e.Path == "" {
		t.Fatalf("wrong secret: %v", err)
	}
	if msg := err.Error(); msg != "export saved as "+e.Path+", but it does not decrypt with the API secret given" {
		t.Errorf("message: %s", msg)
	}

	if _, err := exportfile.Save(ctx, c, task, t.TempDir(), ""); !errors.Is(err, export.ErrSecretRequired) || !errors.As(err, &e) || e.Step != exportfile.StepOpen {
		t.Errorf("no secret: %v", err)
	}
	s, err := exportfile.Save(ctx, c, task, t.TempDir(), "", exportfile.AllowUnverified())
	if err != nil || s.Verified || s.Entries != 0 || s.Size == 0 || s.SHA256 == "" {
		t.Errorf("no secret, unverified allowed: %+v %v", s, err)
	}
}

// TestSaveDownloadFails: a failed download is DownloadExportFile's error,
// not an *Error, and nothing is saved.
func TestSaveDownloadFails(t *testing.T) {
	_, c, task := finished(t)
	notReady := *task
	notReady.Status = mpgdpr.StatusPending
	dir := t.TempDir()
	s, err := exportfile.Save(context.Background(), c, &notReady, dir, "x")
	var e *exportfile.Error
	if !errors.Is(err, mpgdpr.ErrExportNotReady) || errors.As(err, &e) || s.Path != "" {
		t.Errorf("%+v %v", s, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left %v", entries)
	}
}
