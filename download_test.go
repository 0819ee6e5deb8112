package mpgdpr

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// exportHost serves one export the way a storage host would, and records
// every request it gets.
type exportHost struct {
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []*http.Request
	content []byte
	// plan[i] decides how request i is answered: "ok", "cut" (declare the
	// full length, send half, drop the connection), "500", "404", "norange".
	plan []string
}

func newExportHost(t *testing.T, content []byte, plan ...string) *exportHost {
	h := &exportHost{content: content, plan: plan}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *exportHost) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	i := len(h.reqs)
	h.reqs = append(h.reqs, r.Clone(context.Background()))
	step := "ok"
	if i < len(h.plan) {
		step = h.plan[i]
	}
	h.mu.Unlock()
	switch step {
	case "500":
		http.Error(w, "busy", http.StatusInternalServerError)
	case "404":
		http.Error(w, "expired", http.StatusNotFound)
	case "cut":
		w.Header().Set("Content-Length", strconv.Itoa(len(h.content)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(h.content[:len(h.content)/2])
		w.(http.Flusher).Flush()
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	case "norange":
		_, _ = w.Write(h.content)
	default:
		http.ServeContent(w, r, "export.zip", time.Time{}, bytes.NewReader(h.content))
	}
}

func (h *exportHost) requests() []*http.Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*http.Request(nil), h.reqs...)
}

func (h *exportHost) task() *Task {
	return &Task{TrackingID: "r1", Status: StatusSuccess, DownloadURL: `"` + h.srv.URL + `/exports/r1.zip?X-Signature=sig-SECRET"`}
}

// credentialAdder is a transport that puts the credentials on every request
// it carries, as some users' transports do.
type credentialAdder struct{ next http.RoundTripper }

func (a credentialAdder) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+testOAuth)
	r.Header.Set("X-Project-Token", testProject)
	return a.next.RoundTrip(r)
}

func downloadTestClient(t *testing.T) *Client {
	c, err := New(testOAuth, testProject,
		WithHTTPClient(&http.Client{Transport: credentialAdder{http.DefaultTransport}}),
		WithRateLimiter(nil), WithRetryPolicy(fastRetries(4)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func exportBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestDownloadExportCarriesNoCredentials(t *testing.T) {
	content := exportBytes(300 << 10)
	h := newExportHost(t, content)
	c := downloadTestClient(t)
	var buf bytes.Buffer
	n, err := c.DownloadExport(context.Background(), h.task(), &buf)
	if err != nil || n != int64(len(content)) || !bytes.Equal(buf.Bytes(), content) {
		t.Fatalf("n=%d err=%v equal=%v", n, err, bytes.Equal(buf.Bytes(), content))
	}
	for _, r := range h.requests() {
		if r.Header.Get("Authorization") != "" || r.Header.Get("X-Project-Token") != "" || strings.Contains(r.URL.RawQuery, "token=") {
			t.Fatalf("credentials reached the storage host: %v %v", r.Header, r.URL)
		}
		if r.URL.Path != "/exports/r1.zip" {
			t.Errorf("path %q: the quotes around the link were not stripped", r.URL.Path)
		}
	}
}

func TestDownloadResumesAfterCut(t *testing.T) {
	content := exportBytes(200 << 10)
	h := newExportHost(t, content, "cut", "ok")
	var buf bytes.Buffer
	n, err := downloadTestClient(t).DownloadExport(context.Background(), h.task(), &buf)
	if err != nil || !bytes.Equal(buf.Bytes(), content) || n != int64(len(content)) {
		t.Fatalf("n=%d err=%v", n, err)
	}
	reqs := h.requests()
	if len(reqs) != 2 || reqs[1].Header.Get("Range") != "bytes="+strconv.Itoa(len(content)/2)+"-" {
		t.Fatalf("want a resume with Range, got %d requests, range %q", len(reqs), reqs[len(reqs)-1].Header.Get("Range"))
	}
}

func TestDownloadTruncatedIsNeverSuccess(t *testing.T) {
	content := exportBytes(64 << 10)
	// The server drops the connection, then cannot resume: a plain writer
	// cannot start over, so the download fails rather than end short.
	h := newExportHost(t, content, "cut", "norange")
	var buf bytes.Buffer
	_, err := downloadTestClient(t).DownloadExport(context.Background(), h.task(), &buf)
	if !errors.Is(err, ErrDownloadFailed) {
		t.Fatalf("err = %v, want ErrDownloadFailed", err)
	}
	if strings.Contains(err.Error(), "sig-SECRET") {
		t.Fatalf("the link's signature leaked: %v", err)
	}
	// Always cut: retries run out, still an error.
	h = newExportHost(t, content, "cut", "cut", "cut", "cut", "cut")
	if _, err := downloadTestClient(t).DownloadExport(context.Background(), h.task(), io.Discard); !errors.Is(err, ErrDownloadFailed) {
		t.Fatalf("err = %v", err)
	}
}

func TestDownloadFileAtomic(t *testing.T) {
	content := exportBytes(100 << 10)
	dir := t.TempDir()
	path := filepath.Join(dir, "export.zip")
	if err := os.WriteFile(path, []byte("previous"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Fails for good: the old file stays, no temp file is left.
	h := newExportHost(t, content, "404")
	if _, err := downloadTestClient(t).DownloadExportFile(context.Background(), h.task(), path); !errors.Is(err, ErrDownloadFailed) {
		t.Fatalf("err = %v", err)
	}
	if len(h.requests()) != 1 {
		t.Errorf("a 404 was retried %d times", len(h.requests())-1)
	}
	assertDir(t, dir, path, []byte("previous"))
	// Cut, and the server cannot resume: the file starts over and completes.
	h = newExportHost(t, content, "500", "cut", "norange")
	n, err := downloadTestClient(t).DownloadExportFile(context.Background(), h.task(), path)
	if err != nil || n != int64(len(content)) {
		t.Fatalf("n=%d err=%v", n, err)
	}
	assertDir(t, dir, path, content)
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func assertDir(t *testing.T, dir, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, err %v", path, len(got), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("%d entries in %s: a temporary file was left", len(entries), dir)
	}
}

func TestDownloadMaxBytes(t *testing.T) {
	h := newExportHost(t, exportBytes(10<<10))
	_, err := downloadTestClient(t).DownloadExport(context.Background(), h.task(), io.Discard, WithMaxExportBytes(4<<10))
	if !errors.Is(err, ErrExportTooLarge) {
		t.Fatalf("err = %v", err)
	}
	h = newExportHost(t, exportBytes(10<<10), "norange") // chunked, no length declared
	var buf bytes.Buffer
	_, err = downloadTestClient(t).DownloadExport(context.Background(), h.task(), &buf, WithMaxExportBytes(4<<10))
	if !errors.Is(err, ErrExportTooLarge) || buf.Len() > 4<<10+1 {
		t.Fatalf("err = %v after %d bytes", err, buf.Len())
	}
}

func TestDownloadRefusesBeforeRequest(t *testing.T) {
	h := newExportHost(t, exportBytes(10))
	c := downloadTestClient(t)
	cases := map[string]struct {
		task *Task
		want error
	}{
		"nil":      {nil, ErrInvalidInput},
		"pending":  {&Task{Status: StatusPending, DownloadURL: h.srv.URL}, ErrExportNotReady},
		"failure":  {&Task{Status: StatusFailure}, ErrExportNotReady},
		"no link":  {&Task{Status: StatusSuccess}, ErrNoExportLink},
		"relative": {&Task{Status: StatusSuccess, DownloadURL: "/x.zip"}, ErrNoExportLink},
		"http":     {&Task{Status: StatusSuccess, DownloadURL: "http://storage.example.com/x.zip"}, ErrInvalidInput},
		"ftp":      {&Task{Status: StatusSuccess, DownloadURL: "ftp://storage.example.com/x.zip"}, ErrInvalidInput},
	}
	for name, tc := range cases {
		if _, err := c.DownloadExport(context.Background(), tc.task, io.Discard); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
	if n := len(h.requests()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestDownloadWriterErrorNotRetried(t *testing.T) {
	h := newExportHost(t, exportBytes(10<<10))
	_, err := downloadTestClient(t).DownloadExport(context.Background(), h.task(), failingWriter{})
	if err == nil || !strings.Contains(err.Error(), "disk full") || len(h.requests()) != 1 {
		t.Fatalf("err = %v after %d requests", err, len(h.requests()))
	}
}
