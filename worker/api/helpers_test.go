package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/mpgdprtest"
	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/api"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

func TestMain(m *testing.M) { os.Exit(workertest.Run(m)) }

// Key secrets the tests use: long, distinctive, so that a leak is found.
const (
	fileSecret   = "file-key-Q7w9E2r4T6y8U1i3O5p7A9s2D4f6G8h"
	readSecret   = "read-key-Z1x3C5v7B9n2M4q6W8e1R3t5Y7u9I2o"
	exportSecret = "export-key-L2k4J6h8G1f3D5s7A9p2O4i6U8y1T"
	allSecret    = "all-key-N5b7V9c2X4z6L8k1J3h5G7f9D2s4A6"
)

// personIDs are distinct IDs no response or log may contain.
var personIDs = []string{"person-Kx82-jane.doe@example.com", "person-Mq47-device-0d9f3a"}

func testKeys(t *testing.T) []api.Key {
	t.Helper()
	keys, err := api.ParseKeys(strings.NewReader(`# test keys
filer file `+fileSecret+`
reader read `+readSecret+`
exporter export `+exportSecret+`
admin file,read,export `+allSecret+`
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// syncBuf is a log destination safe for concurrent handlers.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// served is an API on a loopback test server, its log and every body it
// answered, for leak checks.
type served struct {
	t      *testing.T
	url    string
	log    *syncBuf
	mu     sync.Mutex
	bodies []string
}

func serve(t *testing.T, svc worker.Service, opts ...api.Option) *served {
	t.Helper()
	log := &syncBuf{}
	opts = append([]api.Option{api.WithKeys(testKeys(t)...), api.WithLogger(slog.New(slog.NewJSONHandler(log, nil)))}, opts...)
	s, err := api.New(svc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &served{t: t, url: ts.URL, log: log}
}

// response is an answer, its body read.
type response struct {
	*http.Response
	body []byte
}

func (r *response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("%s: not JSON: %v: %s", r.Request.URL.Path, err, r.body)
	}
	return m
}

// do sends a request with key (the secret; "" for none) and body (a
// string sent as is, anything else as JSON).
func (s *served) do(method, path, key string, body any, hdr ...string) *response {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, res.Status+"\n"+headerText(res.Header)+"\n"+string(b))
	s.mu.Unlock()
	return &response{res, b}
}

func headerText(h http.Header) string {
	var b strings.Builder
	_ = h.Write(&b)
	return b.String()
}

// noLeaks fails t if any response or log line holds a distinct ID, a key
// secret or another secret.
func (s *served) noLeaks(secrets ...string) {
	s.t.Helper()
	all := append([]string{fileSecret, readSecret, exportSecret, allSecret}, personIDs...)
	all = append(all, secrets...)
	s.mu.Lock()
	texts := append([]string{s.log.String()}, s.bodies...)
	s.mu.Unlock()
	for i, text := range texts {
		where := "the log"
		if i > 0 {
			where = "a response"
		}
		workertest.NoSecrets(s.t, where, text, all...)
	}
}

// wantProblem checks a problem answer.
func wantProblem(t *testing.T, r *response, status int, typ string) map[string]any {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d: %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, r.body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	m := r.json(t)
	if m["type"] != typ || m["status"] != float64(status) || m["title"] == "" {
		t.Errorf("problem %v, want type %s status %d", m, typ, status)
	}
	return m
}

// fakeService is a worker.Service whose answers a test sets.
type fakeService struct {
	worker.Service // nil: a method the test did not expect panics
	enqueue        func(worker.Request) (*worker.EnqueueResult, error)
	status         func(string) (*worker.RequestStatus, error)
	list           func(worker.ListOptions) (*worker.RequestPage, error)
	cancel         func(string) (*worker.CancelResult, error)
	openExport     func(ref, project, task string) (*worker.ExportFile, error)
	ready          func() error
}

func (f *fakeService) Enqueue(_ context.Context, r worker.Request) (*worker.EnqueueResult, error) {
	return f.enqueue(r)
}

func (f *fakeService) RequestStatus(_ context.Context, ref string, _ ...worker.StatusOption) (*worker.RequestStatus, error) {
	if f.status == nil {
		return &worker.RequestStatus{Reference: ref, Kind: worker.Deletion, ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, nil
	}
	return f.status(ref)
}

func (f *fakeService) ListRequests(_ context.Context, o worker.ListOptions) (*worker.RequestPage, error) {
	return f.list(o)
}

func (f *fakeService) Cancel(_ context.Context, ref string) (*worker.CancelResult, error) {
	return f.cancel(ref)
}

func (f *fakeService) OpenExport(_ context.Context, ref, project, task string) (*worker.ExportFile, error) {
	return f.openExport(ref, project, task)
}

func (f *fakeService) Ready(context.Context) error {
	if f.ready == nil {
		return nil
	}
	return f.ready()
}

// realWorker opens an intake-only worker of driver d on a configuration
// of two fake Mixpanel projects, "alpha" and "beta"; it is never started.
func realWorker(t *testing.T, d workertest.Driver) (worker.Service, []string) {
	t.Helper()
	fakes := map[string]*mpgdprtest.Server{}
	for _, name := range []string{"alpha", "beta"} {
		f, err := mpgdprtest.Start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.Close)
		fakes[name] = f
	}
	dir := t.TempDir()
	// Callbacks as the OpenDSR specification's example asks for them.
	key, cert := workertest.OpenDSRFiles(t)
	if err := os.WriteFile(filepath.Join(dir, "callback.key"), []byte("callback-key-Vb7Nm2Qw9Er4Ty6Ui1Op3As5Df8Gh0Jk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := workertest.Config(t, dir, fakes, workertest.WithDatabase(workertest.DatabaseURL(t, d, dir)),
		workertest.With("callbacks", fmt.Sprintf(`{ key_file = "callback.key", allow = ["examplecontroller.com"], opendsr_key_file = %q, opendsr_certificate_file = %q, opendsr_processor_domain = "processor.example" }`, key, cert)))
	cfg, err := worker.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	svc, closeDB, err := worker.Open(t.Context(), cfg, "", worker.WithIntakeOnly())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeDB)
	return svc, workertest.Secrets(fakes)
}
