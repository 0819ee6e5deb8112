package mpgdpr

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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
	etag    string // sent with every answer unless "-"
	// plan[i] decides how request i is answered:
	//   "ok"        ServeContent: 200, or 206 for a Range whose If-Range matches
	//   "cut"       declare the full length, send half, drop the connection
	//   "closecut"  no Content-Length, no chunking: send half, close (a body
	//               delimited by the connection's end)
	//   "close"     the same, but send everything
	//   "500", "404"
	//   "norange"   200 with the whole content, Range ignored
	//   "splice"    206 from the requested offset of the current content,
	//               If-Range ignored
	plan []string
}

func newExportHost(t *testing.T, content []byte, plan ...string) *exportHost {
	h := &exportHost{content: content, plan: plan, etag: etagOf(content)}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func etagOf(b []byte) string {
	return fmt.Sprintf(`"%08x-%d"`, crc32Sum(b), len(b))
}

func crc32Sum(b []byte) uint32 {
	var h uint32 = 2166136261 // FNV-1a: a tag, not a checksum
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

// replace makes the host serve another version of the export from now on.
func (h *exportHost) replace(content []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.content, h.etag = content, etagOf(content)
}

func (h *exportHost) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	i := len(h.reqs)
	h.reqs = append(h.reqs, r.Clone(context.Background()))
	step := "ok"
	if i < len(h.plan) {
		step = h.plan[i]
	}
	content, etag := h.content, h.etag
	h.mu.Unlock()
	if etag != "-" {
		w.Header().Set("ETag", etag)
	}
	switch step {
	case "500":
		http.Error(w, "busy", http.StatusInternalServerError)
	case "404":
		http.Error(w, "expired", http.StatusNotFound)
	case "cut":
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(content[:len(content)/2])
		w.(http.Flusher).Flush()
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	case "closecut", "close":
		conn, buf, _ := w.(http.Hijacker).Hijack()
		defer conn.Close()
		body := content
		if step == "closecut" {
			body = content[:len(content)/2]
		}
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\nETag: %s\r\nConnection: close\r\n\r\n", etag)
		_, _ = buf.Write(body)
		_ = buf.Flush()
	case "norange":
		_, _ = w.Write(content)
	case "splice":
		from, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(r.Header.Get("Range"), "bytes="), "-"))
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, len(content)-1, len(content)))
		w.Header().Set("Content-Length", strconv.Itoa(len(content)-from))
		w.WriteHeader(http.StatusPartialContent)
		_, _ = w.Write(content[from:])
	default:
		http.ServeContent(w, r, "export.zip", time.Time{}, bytes.NewReader(content))
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

// downloadTestClient talks to the real API host (nothing in these tests
// calls it): its export links to the loopback test host are allowed only
// by WithInsecureLoopbackDownloads, which the tests pass through dl.
func downloadTestClient(t *testing.T) *Client {
	c, err := New(testOAuth, testProject,
		WithHTTPClient(&http.Client{Transport: credentialAdder{http.DefaultTransport}}),
		WithRateLimiter(nil), WithRetryPolicy(fastRetries(4)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dl is the option the tests with a plain http test host need.
var dl = WithInsecureLoopbackDownloads()

// exportBytes returns a zip archive of about n bytes (one stored entry of
// pseudo-random data), the same for the same n.
func exportBytes(n int) []byte {
	return zipOf(n, uint64(n))
}

func zipOf(n int, seed uint64) []byte {
	data := make([]byte, max(n-200, 1))
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "events/user-1.json", Method: zip.Store})
	if err != nil {
		panic(err)
	}
	_, _ = w.Write(data)
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func TestDownloadExportCarriesNoCredentials(t *testing.T) {
	content := exportBytes(300 << 10)
	h := newExportHost(t, content)
	c := downloadTestClient(t)
	var buf bytes.Buffer
	n, err := c.DownloadExport(context.Background(), h.task(), &buf, dl)
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
	n, err := downloadTestClient(t).DownloadExport(context.Background(), h.task(), &buf, dl)
	if err != nil || !bytes.Equal(buf.Bytes(), content) || n != int64(len(content)) {
		t.Fatalf("n=%d err=%v", n, err)
	}
	reqs := h.requests()
	if len(reqs) != 2 || reqs[1].Header.Get("Range") != "bytes="+strconv.Itoa(len(content)/2)+"-" {
		t.Fatalf("want a resume with Range, got %d requests, range %q", len(reqs), reqs[len(reqs)-1].Header.Get("Range"))
	}
	// The resume names the version it continues.
	if got := reqs[1].Header.Get("If-Range"); got != h.etag {
		t.Fatalf("If-Range %q, want the ETag %q", got, h.etag)
	}
}

// A body delimited by the connection's end, cut part way, ends without an
// error from net/http: only the archive's end record tells.
func TestDownloadCloseDelimitedCut(t *testing.T) {
	content := exportBytes(100 << 10)
	// Cut, then resumed: the whole export.
	h := newExportHost(t, content, "closecut", "ok")
	var buf bytes.Buffer
	if _, err := downloadTestClient(t).DownloadExport(context.Background(), h.task(), &buf, dl); err != nil || !bytes.Equal(buf.Bytes(), content) {
		t.Fatalf("err = %v, %d of %d bytes", err, buf.Len(), len(content))
	}
	if r := h.requests(); len(r) != 2 || r[1].Header.Get("Range") == "" {
		t.Fatalf("%d requests; the cut was not resumed", len(r))
	}
	// Cut every time: an error, never a short success.
	h = newExportHost(t, content, "closecut", "closecut", "closecut", "closecut")
	buf.Reset()
	_, err := downloadTestClient(t).DownloadExport(context.Background(), h.task(), &buf, dl)
	if !errors.Is(err, ErrDownloadFailed) {
		t.Fatalf("err = %v, want ErrDownloadFailed", err)
	}
	// Close-delimited and whole: fine.
	h = newExportHost(t, content, "close")
	buf.Reset()
	if _, err := downloadTestClient(t).DownloadExport(context.Background(), h.task(), &buf, dl); err != nil || !bytes.Equal(buf.Bytes(), content) {
		t.Fatalf("err = %v", err)
	}
	// The file variant leaves nothing behind either.
	h = newExportHost(t, content, "closecut", "closecut", "closecut", "closecut")
	dir := t.TempDir()
	path := filepath.Join(dir, "export.zip")
	if _, err := downloadTestClient(t).DownloadExportFile(context.Background(), h.task(), path, dl); !errors.Is(err, ErrExportIncomplete) {
		t.Fatalf("err = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("%d files left", len(ents))
	}
}

// Whatever the framing says, bytes that are not a whole zip archive are not
// an export: an error page served as 200, or an archive cut at the origin.
func TestDownloadNotAnArchive(t *testing.T) {
	content := exportBytes(50 << 10)
	for name, body := range map[string][]byte{
		"html":      []byte("<html><body>Access denied</body></html>"),
		"truncated": content[:len(content)-10],
		"padded":    append(bytes.Clone(content), '\n'),
	} {
		h := newExportHost(t, body)
		_, err := downloadTestClient(t).DownloadExport(context.Background(), h.task(), io.Discard, dl)
		if !errors.Is(err, ErrExportIncomplete) {
			t.Errorf("%s: err = %v", name, err)
		}
		if n := len(h.requests()); n != 1 {
			t.Errorf("%s: %d requests: a complete transfer of a bad file is not retried", name, n)
		}
	}
}

func TestDownloadRefusesAnotherVersion(t *testing.T) {
	v1, v2 := zipOf(80<<10, 1), zipOf(80<<10, 2)
	// The host changed the export between the cut and the resume, and
	// ignores If-Range: its 206 carries the new ETag. Splicing would make
	// an archive whose end record checks but whose data is half of each.
	h := newExportHost(t, v1, "cut", "splice", "ok")
	c := downloadTestClient(t)
	hc := &http.Client{Transport: replaceAfterFirst{h: h, next: http.DefaultTransport.(*http.Transport).Clone(), v2: v2}}
	_, err := c.DownloadExport(context.Background(), h.task(), io.Discard, dl, WithDownloadHTTPClient(hc))
	if !errors.Is(err, ErrDownloadFailed) || !strings.Contains(err.Error(), "another version") {
		t.Fatalf("writer: err = %v, want a refusal of the other version", err)
	}
	// A file starts over and gets the new version whole.
	h = newExportHost(t, v1, "cut", "splice", "ok")
	hc = &http.Client{Transport: replaceAfterFirst{h: h, next: http.DefaultTransport.(*http.Transport).Clone(), v2: v2}}
	path := filepath.Join(t.TempDir(), "export.zip")
	n, err := c.DownloadExportFile(context.Background(), h.task(), path, dl, WithDownloadHTTPClient(hc))
	if err != nil || n != int64(len(v2)) {
		t.Fatalf("file: n=%d err=%v", n, err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, v2) {
		t.Fatal("the file is not the new version")
	}
	reqs := h.requests()
	if len(reqs) != 3 || reqs[2].Header.Get("Range") != "" {
		t.Fatalf("%d requests, last Range %q: want a fresh start", len(reqs), reqs[len(reqs)-1].Header.Get("Range"))
	}

	// A host that honours If-Range answers 200 with the new version: a
	// writer cannot take back what it got, a file starts over.
	h = newExportHost(t, v1, "cut", "ok")
	hc = &http.Client{Transport: replaceAfterFirst{h: h, next: http.DefaultTransport.(*http.Transport).Clone(), v2: v2}}
	_, err = c.DownloadExport(context.Background(), h.task(), io.Discard, dl, WithDownloadHTTPClient(hc))
	if !errors.Is(err, ErrDownloadFailed) {
		t.Fatalf("writer after 200: err = %v", err)
	}
	h = newExportHost(t, v1, "cut", "ok")
	hc = &http.Client{Transport: replaceAfterFirst{h: h, next: http.DefaultTransport.(*http.Transport).Clone(), v2: v2}}
	if _, err := c.DownloadExportFile(context.Background(), h.task(), path, dl, WithDownloadHTTPClient(hc)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, v2) {
		t.Fatal("the file is not the new version")
	}
}

// replaceAfterFirst switches the host to v2 once the first answer is in.
type replaceAfterFirst struct {
	h    *exportHost
	next http.RoundTripper
	v2   []byte
}

func (r replaceAfterFirst) RoundTrip(req *http.Request) (*http.Response, error) {
	if len(r.h.requests()) == 1 {
		r.h.replace(r.v2)
	}
	return r.next.RoundTrip(req)
}

// Without a validator a resumed transfer could splice two versions: it is
// not resumed. A file starts over; a writer fails.
func TestDownloadNoValidatorNoResume(t *testing.T) {
	content := exportBytes(64 << 10)
	h := newExportHost(t, content, "cut", "ok")
	h.etag = "-"
	_, err := downloadTestClient(t).DownloadExport(context.Background(), h.task(), io.Discard, dl)
	if !errors.Is(err, ErrDownloadFailed) || len(h.requests()) != 1 {
		t.Fatalf("err = %v after %d requests", err, len(h.requests()))
	}
	h = newExportHost(t, content, "cut", "ok")
	h.etag = "-"
	path := filepath.Join(t.TempDir(), "export.zip")
	if _, err := downloadTestClient(t).DownloadExportFile(context.Background(), h.task(), path, dl); err != nil {
		t.Fatal(err)
	}
	if r := h.requests(); len(r) != 2 || r[1].Header.Get("Range") != "" {
		t.Fatalf("%d requests; second Range %q", len(r), r[len(r)-1].Header.Get("Range"))
	}
	// A weak ETag cannot be used with If-Range either; Last-Modified can.
	if v := versionOf(http.Header{"Etag": {`W/"x"`}}); v.resumable() {
		t.Fatal("a weak ETag was taken as a validator")
	}
	if v := versionOf(http.Header{"Last-Modified": {"Mon, 02 Jan 2006 15:04:05 GMT"}}); !v.resumable() {
		t.Fatal("Last-Modified was not taken as a validator")
	}
}

func TestDownloadTruncatedIsNeverSuccess(t *testing.T) {
	content := exportBytes(64 << 10)
	// The server drops the connection, then cannot resume: a plain writer
	// cannot start over, so the download fails rather than end short.
	h := newExportHost(t, content, "cut", "norange")
	var buf bytes.Buffer
	_, err := downloadTestClient(t).DownloadExport(context.Background(), h.task(), &buf, dl)
	if !errors.Is(err, ErrDownloadFailed) {
		t.Fatalf("err = %v, want ErrDownloadFailed", err)
	}
	if strings.Contains(err.Error(), "sig-SECRET") {
		t.Fatalf("the link's signature leaked: %v", err)
	}
	// Always cut: retries run out, still an error.
	h = newExportHost(t, content, "cut", "cut", "cut", "cut", "cut")
	if _, err := downloadTestClient(t).DownloadExport(context.Background(), h.task(), io.Discard, dl); !errors.Is(err, ErrDownloadFailed) {
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
	if _, err := downloadTestClient(t).DownloadExportFile(context.Background(), h.task(), path, dl); !errors.Is(err, ErrDownloadFailed) {
		t.Fatalf("err = %v", err)
	}
	if len(h.requests()) != 1 {
		t.Errorf("a 404 was retried %d times", len(h.requests())-1)
	}
	assertDir(t, dir, path, []byte("previous"))
	// Cut, and the server cannot resume: the file starts over and completes.
	h = newExportHost(t, content, "500", "cut", "norange")
	n, err := downloadTestClient(t).DownloadExportFile(context.Background(), h.task(), path, dl)
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
	_, err := downloadTestClient(t).DownloadExport(context.Background(), h.task(), io.Discard, dl, WithMaxExportBytes(4<<10))
	if !errors.Is(err, ErrExportTooLarge) {
		t.Fatalf("err = %v", err)
	}
	h = newExportHost(t, exportBytes(10<<10), "norange") // chunked, no length declared
	var buf bytes.Buffer
	_, err = downloadTestClient(t).DownloadExport(context.Background(), h.task(), &buf, dl, WithMaxExportBytes(4<<10))
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
		"secret":   {&Task{Status: StatusSuccess, DownloadURL: h.srv.URL + "/x.zip?t=" + testProject}, ErrInvalidInput},
		"escaped":  {&Task{Status: StatusSuccess, DownloadURL: h.srv.URL + "/x.zip?t=%6F" + testOAuth[1:]}, ErrInvalidInput},
	}
	for name, tc := range cases {
		_, err := c.DownloadExport(context.Background(), tc.task, io.Discard, dl)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), testOAuth) || strings.Contains(err.Error(), testProject)) {
			t.Errorf("%s: a secret in the error: %v", name, err)
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
	_, err := downloadTestClient(t).DownloadExport(context.Background(), h.task(), failingWriter{}, dl)
	if err == nil || !strings.Contains(err.Error(), "disk full") || len(h.requests()) != 1 {
		t.Fatalf("err = %v after %d requests", err, len(h.requests()))
	}
}

func TestSinkTailChecksWholeStream(t *testing.T) {
	// An archive larger than the kept tail, written in odd pieces, with a
	// central directory larger than the tail too.
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for i := range 12000 {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("events/%05d-%s.json", i, strings.Repeat("x", 20)), Method: zip.Store})
		_, _ = w.Write([]byte("{}"))
	}
	_ = zw.Close()
	content := b.Bytes()
	if len(content) < 2*tailSize {
		t.Fatalf("%d bytes: too small for the test", len(content))
	}
	s := newSink(io.Discard, nil)
	for p := content; len(p) > 0; {
		n := min(len(p), 1+len(p)%7919)
		_, _ = s.Write(p[:n])
		p = p[n:]
	}
	if err := s.complete(); err != nil {
		t.Fatal(err)
	}
	if len(s.tail) > 2*tailSize {
		t.Fatalf("tail grew to %d bytes", len(s.tail))
	}
	s = newSink(io.Discard, nil)
	_, _ = s.Write(content[:len(content)-1])
	if err := s.complete(); err == nil {
		t.Fatal("a cut archive checked as complete")
	}
}
