package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFakeRefuses: bad flags are usage errors (exit 2) and nothing listens.
func TestFakeRefuses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		env  []string
		says string
	}{
		{[]string{"--listen", "0.0.0.0:8080"}, nil, "add --allow-remote"},
		{[]string{"--listen", ":8080"}, nil, "add --allow-remote"},
		{[]string{"--download-listen", "0.0.0.0:0"}, nil, "add --allow-remote"},
		{[]string{"--listen", "0.0.0.0:8080", "--allow-remote"}, nil, "MPGDPR_FAKE_CONTROL_TOKEN"},
		{[]string{"--schedule", "weekly"}, nil, "--schedule"},
		{[]string{"--schedule", "timed:1s,2s"}, nil, "--schedule"},
		{[]string{"--create-status", "202"}, nil, "--create-status"},
		{[]string{"--create-shape", "list"}, nil, "--create-shape"},
		{[]string{"--link-field", "href"}, nil, "--link-field"},
		{[]string{"--rate", "-1"}, nil, "negative"},
		{[]string{"--download-url", "ftp://fake:21"}, nil, "--download-url"},
		{[]string{"--download-url", "http://fake:8081/exports"}, nil, "--download-url"},
		{[]string{"extra"}, nil, "unknown command"},
		{nil, []string{"MPGDPR_FAKE_OAUTH_TOKEN="}, "must not be empty"},
	}
	for _, c := range cases {
		var out, errOut strings.Builder
		code := run(context.Background(), append([]string{"fake"}, c.args...), strings.NewReader(""), &out, &errOut, c.env)
		if code != exitUsage || !strings.Contains(errOut.String(), c.says) || out.Len() != 0 {
			t.Errorf("fake %v %v: exit %d, stdout %q, stderr %q; want 2 and %q", c.args, c.env, code, out.String(), errOut.String(), c.says)
		}
	}
}

// TestFakeInProcess: the first line, a request, --log without credential
// values, and a clean stop when the context ends (as on SIGTERM).
func TestFakeInProcess(t *testing.T) {
	t.Parallel()
	const oauth, project = "in-process-oauth-Hq2Lm8", "in-process-project-Vb7Zx3"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"fake", "--log", "--oauth-token", oauth}, strings.NewReader(""), pw, &errOut,
			[]string{"MPGDPR_FAKE_PROJECT_TOKEN=" + project})
		pw.Close()
	}()
	first, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("first line: %v; stderr %s", err, errOut.String())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	fields := map[string]string{}
	for _, kv := range strings.Fields(first) {
		k, v, _ := strings.Cut(kv, "=")
		fields[k] = v
	}
	if !strings.HasPrefix(fields["api"], "http://127.0.0.1:") || fields["download"] == "" || !strings.HasSuffix(fields["control"], "/_fake") {
		t.Fatalf("first line %q", first)
	}
	// A client putting the token where it does not belong: in the path.
	req, _ := http.NewRequest("GET", fields["api"]+"/data-deletions/v3.0/"+oauth+"?token="+project, nil)
	req.Header.Set("Authorization", "Bearer "+oauth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("check of an unknown task: %s", resp.Status)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d after the context ended", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the fake did not stop")
	}
	log := errOut.String()
	if !strings.Contains(log, "checkDeletion GET /api/app/data-deletions/v3.0/REDACTED -> 404 (bearer valid, token valid)") ||
		!strings.Contains(log, "stopped after 1 request, 0 tasks; 0 contract violations") {
		t.Errorf("stderr: %s", log)
	}
	for _, x := range []string{oauth, project} {
		if strings.Contains(log+first, x) {
			t.Errorf("output shows a credential: %s", log)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
