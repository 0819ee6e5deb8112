package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// TestQuickstartAgainstFake runs the program as README shows it, with its
// configuration from the environment, against the fake Mixpanel.
func TestQuickstartAgainstFake(t *testing.T) {
	fake := mpgdprtest.NewServer(mpgdprtest.WithAPISecret("api-secret"))
	defer fake.Close()
	defer fake.AssertNoViolations(t)
	t.Setenv("MIXPANEL_GDPR_TOKEN", fake.OAuthToken())
	t.Setenv("MIXPANEL_PROJECT_TOKEN", fake.ProjectToken())
	t.Setenv("MIXPANEL_API_SECRET", fake.APISecret())
	t.Setenv("MIXPANEL_REGION", "eu")
	t.Setenv("MIXPANEL_BASE_URL", fake.URL())
	out := filepath.Join(t.TempDir(), "export.zip")
	var stdout bytes.Buffer
	err := run(context.Background(), &stdout, []string{"user-1", "user-2"}, out, true,
		[]mpgdpr.Option{mpgdpr.WithRateLimiter(nil)},
		[]mpgdpr.WaitOption{mpgdpr.WithPollInterval(time.Millisecond, 10*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`^retrieval \S+ filed for 2 people
saved .*export.zip \(\d+ bytes\)
  events/user-1.json \(\d+ bytes\)
  profiles/user-1.json \(\d+ bytes\)
  events/user-2.json \(\d+ bytes\)
  profiles/user-2.json \(\d+ bytes\)
deletion \S+ filed: PENDING \(cancellable while PENDING or STAGING\)
$`)
	if !want.Match(stdout.Bytes()) {
		t.Fatalf("output:\n%s", stdout.String())
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v", err)
	}
	ops := map[string]int{}
	for _, r := range fake.Requests() {
		ops[r.Op]++
	}
	if ops[mpgdprtest.OpCreateRetrieval] != 1 || ops[mpgdprtest.OpCreateDeletion] != 1 || ops[mpgdprtest.OpDownload] != 1 {
		t.Fatalf("requests by operation: %v", ops)
	}
}

// TestQuickstartNeedsTokens: without credentials it stops before sending.
func TestQuickstartNeedsTokens(t *testing.T) {
	fake := mpgdprtest.NewServer()
	defer fake.Close()
	t.Setenv("MIXPANEL_GDPR_TOKEN", "")
	t.Setenv("MIXPANEL_PROJECT_TOKEN", fake.ProjectToken())
	t.Setenv("MIXPANEL_BASE_URL", fake.URL())
	err := run(context.Background(), &bytes.Buffer{}, []string{"user-1"}, filepath.Join(t.TempDir(), "x.zip"), false, nil, nil)
	if err == nil || len(fake.Requests()) != 0 {
		t.Fatalf("err = %v, %d requests", err, len(fake.Requests()))
	}
}

// TestReadmeShowsQuickstart keeps README's quick start the program that
// this package builds and tests.
func TestReadmeShowsQuickstart(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```go\n"+string(src)+"```\n") {
		t.Fatal("README.md's quick start is not examples/quickstart/main.go: paste the file into it")
	}
}
