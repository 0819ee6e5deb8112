package api_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/api"
	"github.com/privacykit/mpgdpr/worker/workertest"
)

func newRequest(ref string) map[string]any {
	return map[string]any{
		"reference":       ref,
		"kind":            "deletion",
		"compliance_type": "GDPR",
		"distinct_ids":    personIDs,
		"projects":        []string{"alpha"},
	}
}

// TestRequestsOnEachDriver drives the API over a real intake-only worker:
// enqueue (202), the same again (200), other content under the reference
// (409), its status, a refused request (nothing stored), an unknown
// reference.
func TestRequestsOnEachDriver(t *testing.T) {
	workertest.ForEachDriver(t, func(t *testing.T, d workertest.Driver) {
		svc, secrets := realWorker(t, d)
		s := serve(t, svc)

		r := s.do("POST", "/v1/requests", fileSecret, newRequest("T-1"))
		if r.StatusCode != http.StatusAccepted {
			t.Fatalf("enqueue: %s: %s", r.Status, r.body)
		}
		m := r.json(t)
		if m["reference"] != "T-1" || m["duplicate"] != false || m["state"] != "received" || m["due"] == "" || m["deadline_by"] == nil {
			t.Errorf("enqueue answered %v", m)
		}
		if p, _ := m["projects"].([]any); len(p) != 1 || p[0] != "alpha" {
			t.Errorf("projects %v, want [alpha]", m["projects"])
		}

		r = s.do("POST", "/v1/requests", fileSecret, newRequest("T-1"))
		if r.StatusCode != http.StatusOK || r.json(t)["duplicate"] != true {
			t.Errorf("the same request again: %s: %s, want 200 duplicate", r.Status, r.body)
		}

		other := newRequest("T-1")
		other["kind"] = "retrieval"
		wantProblem(t, s.do("POST", "/v1/requests", fileSecret, other), http.StatusConflict, api.ProblemConflict)

		r = s.do("GET", "/v1/requests/T-1?events=true", readSecret, nil)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status: %s: %s", r.Status, r.body)
		}
		st := r.json(t)
		items, _ := st["items"].([]any)
		if st["reference"] != "T-1" || st["kind"] != "deletion" || len(items) != 1 {
			t.Errorf("status %v", st)
		}
		if strings.Contains(string(r.body), "export_path") {
			t.Errorf("the status shows a server path: %s", r.body)
		}
		// Not taken in by a worker yet: an empty log, but a log.
		if _, ok := items[0].(map[string]any)["events"].([]any); !ok {
			t.Errorf("?events=true: no events list in %s", r.body)
		}
		if r := s.do("GET", "/v1/requests/T-1", readSecret, nil); strings.Contains(string(r.body), `"events"`) {
			t.Errorf("events without ?events=true: %s", r.body)
		}

		unknown := newRequest("T-2")
		unknown["projects"] = []string{"gamma"}
		p := wantProblem(t, s.do("POST", "/v1/requests", fileSecret, unknown), http.StatusUnprocessableEntity, api.ProblemRejected)
		if errs, _ := p["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["field"] != "projects" {
			t.Errorf("unknown project: errors %v", p["errors"])
		}
		wantProblem(t, s.do("GET", "/v1/requests/T-2", readSecret, nil), http.StatusNotFound, api.ProblemNotFound)

		bad := newRequest("T-3")
		bad["distinct_ids"] = []string{personIDs[0], personIDs[1] + "\x00"}
		wantProblem(t, s.do("POST", "/v1/requests", fileSecret, bad), http.StatusUnprocessableEntity, api.ProblemRejected)
		wantProblem(t, s.do("GET", "/v1/requests/T-3", readSecret, nil), http.StatusNotFound, api.ProblemNotFound)

		if r := s.do("GET", "/metrics", readSecret, nil); r.StatusCode != 200 || !strings.Contains(string(r.body), `route="/v1/requests/{reference}"`) {
			t.Errorf("metrics: %s: %.300s", r.Status, r.body)
		}
		s.noLeaks(secrets...)
	})
}

func TestAuth(t *testing.T) {
	s := serve(t, &fakeService{})
	for _, c := range []struct {
		name, method, path, key string
		status                  int
	}{
		{"no key", "GET", "/v1/requests/x", "", 401},
		{"wrong key", "GET", "/v1/requests/x", strings.Repeat("w", 40), 401},
		{"a prefix of a key", "GET", "/v1/requests/x", readSecret[:len(readSecret)-1], 401},
		{"file key reads", "GET", "/v1/requests/x", fileSecret, 403},
		{"read key files", "POST", "/v1/requests/x/cancel", readSecret, 403},
		{"read key downloads", "GET", "/v1/requests/x/exports/alpha/1", readSecret, 403},
		{"export key lists", "GET", "/v1/requests", exportSecret, 403},
		{"metrics need read", "GET", "/metrics", "", 401},
		{"metrics with file", "GET", "/metrics", fileSecret, 403},
		{"opendsr create with read", "POST", "/opendsr/requests", readSecret, 403},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := s.do(c.method, c.path, c.key, nil)
			if r.StatusCode != c.status {
				t.Fatalf("%s, want %d: %s", r.Status, c.status, r.body)
			}
			if c.status == 401 && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: Bearer: %q", r.Header.Get("WWW-Authenticate"))
			}
		})
	}
	for _, path := range []string{"/healthz", "/readyz", "/openapi.yaml", "/opendsr/discovery"} {
		if r := s.do("GET", path, "", nil); r.StatusCode != 200 {
			t.Errorf("%s without a key: %s", path, r.Status)
		}
	}
	if r := s.do("GET", "/metrics", readSecret, nil); r.StatusCode != 200 || !strings.Contains(string(r.body), `mpgdpr_http_requests_total{code="401",route="/v1/requests/{reference}"}`) {
		t.Errorf("metrics: %s: %s", r.Status, r.body)
	}
	s.noLeaks()
}

func TestOpenMetrics(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "given_handler 1") })
	s := serve(t, &fakeService{}, api.WithMetrics(metrics), api.WithOpenMetrics())
	if r := s.do("GET", "/metrics", "", nil); r.StatusCode != 200 || string(r.body) != "given_handler 1\n" {
		t.Errorf("open metrics: %s: %s", r.Status, r.body)
	}
}

func TestKeyFile(t *testing.T) {
	for _, c := range []struct{ name, text string }{
		{"short secret", "a read short-secret"},
		{"unknown scope", "a admin " + allSecret},
		{"two fields", "a " + allSecret},
		{"same name twice", "a read " + allSecret + "\na file " + fileSecret},
	} {
		_, err := api.ParseKeys(strings.NewReader(c.text), "keys.txt")
		if !errors.Is(err, api.ErrKeyFile) {
			t.Errorf("%s: %v, want ErrKeyFile", c.name, err)
		}
		if err != nil && (strings.Contains(err.Error(), allSecret) || strings.Contains(err.Error(), fileSecret)) {
			t.Errorf("%s: the error quotes the secret", c.name)
		}
	}
}

func TestRateLimit(t *testing.T) {
	s := serve(t, &fakeService{}, api.WithRateLimit(0.01, 2))
	for i := range 2 {
		if r := s.do("GET", "/v1/requests/x", readSecret, nil); r.StatusCode != 200 {
			t.Fatalf("request %d: %s", i, r.Status)
		}
	}
	r := wantProblem(t, s.do("GET", "/v1/requests/x", readSecret, nil), 429, api.ProblemRateLimited)
	_ = r
	res := s.do("GET", "/v1/requests/x", readSecret, nil)
	if n, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("Retry-After %q, want a number of seconds", res.Header.Get("Retry-After"))
	}
	// Another key has its own budget.
	if r := s.do("GET", "/v1/requests/x", allSecret, nil); r.StatusCode != 200 {
		t.Errorf("another key: %s", r.Status)
	}
}

func TestProblems(t *testing.T) {
	var enqueued atomic.Int32
	svc := &fakeService{
		enqueue: func(r worker.Request) (*worker.EnqueueResult, error) {
			enqueued.Add(1)
			switch r.Reference {
			case "refused":
				return nil, &worker.RequestError{Field: "distinct id #2", Problem: "has a control character"}
			case "conflict":
				return nil, fmt.Errorf("enqueue: %w", worker.ErrConflictingRequest)
			}
			return nil, errors.New("database down")
		},
	}
	s := serve(t, svc, api.WithMaxBodyBytes(64<<10))
	idsOver := make([]string, 2001)
	for i := range idsOver {
		idsOver[i] = fmt.Sprintf("%s-%d", personIDs[0], i)
	}
	tooMany := newRequest("many")
	tooMany["distinct_ids"] = idsOver[:2001]
	unknownField := newRequest("x")
	unknownField["distinct_idz"] = personIDs
	badKind := newRequest("x")
	badKind["kind"] = personIDs[1]
	badTime := newRequest("x")
	badTime["received_at"] = personIDs[0]

	for _, c := range []struct {
		name   string
		body   any
		ctype  string
		status int
		typ    string
		field  string
		rule   string
	}{
		{"malformed", `{"reference": "x", "distinct_ids": ["` + personIDs[0] + `"`, "", 400, api.ProblemMalformedJSON, "", ""},
		{"unknown field", unknownField, "", 400, api.ProblemInvalid, "", "additionalProperties"},
		{"enum", badKind, "", 400, api.ProblemInvalid, "/kind", "enum"},
		{"date-time", badTime, "", 400, api.ProblemInvalid, "/received_at", "format"},
		{"missing", map[string]any{"reference": "x"}, "", 400, api.ProblemInvalid, "", "required"},
		{"body over the limit", tooMany, "", 413, api.ProblemTooLarge, "", ""},
		{"content type", newRequest("x"), "text/plain", 415, api.ProblemMediaType, "", ""},
		{"refused by the worker", newRequest("refused"), "", 422, api.ProblemRejected, "distinct id #2", "has a control character"},
		{"conflict", newRequest("conflict"), "", 409, api.ProblemConflict, "", ""},
		{"server error", newRequest("other"), "", 500, api.ProblemInternal, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			if c.ctype != "" {
				hdr = []string{"Content-Type", c.ctype}
			}
			p := wantProblem(t, s.do("POST", "/v1/requests", fileSecret, c.body, hdr...), c.status, c.typ)
			if c.rule == "" {
				return
			}
			errs, _ := p["errors"].([]any)
			for _, e := range errs {
				fe := e.(map[string]any)
				if fe["rule"] == c.rule && (c.field == "" || fe["field"] == c.field) {
					return
				}
			}
			t.Errorf("errors %v, want rule %s at %q", errs, c.rule, c.field)
		})
	}
	// 2001 short IDs fit the body limit: the schema's maxItems refuses them.
	many := newRequest("many")
	ids := make([]string, 2001)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	many["distinct_ids"] = ids
	p := wantProblem(t, s.do("POST", "/v1/requests", fileSecret, many), 400, api.ProblemInvalid)
	if errs, _ := p["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["rule"] != "maxItems" || errs[0].(map[string]any)["field"] != "/distinct_ids" {
		t.Errorf("2001 IDs: errors %v, want maxItems at /distinct_ids", p["errors"])
	}
	if n := enqueued.Load(); n != 3 {
		t.Errorf("the worker saw %d requests, want 3 (only the valid ones)", n)
	}
	wantProblem(t, s.do("GET", "/v1/nothing", readSecret, nil), 404, api.ProblemNotFound)
	wantProblem(t, s.do("DELETE", "/v1/requests", fileSecret, nil), 405, api.ProblemMethodNotAllowed)
	wantProblem(t, s.do("GET", "/v1/requests?limit=501", readSecret, nil), 400, api.ProblemInvalid)
	s.noLeaks()
}

func TestListAndCancel(t *testing.T) {
	done := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	var got worker.ListOptions
	svc := &fakeService{
		list: func(o worker.ListOptions) (*worker.RequestPage, error) {
			got = o
			if o.After == "bad" {
				return nil, &worker.RequestError{Field: "after", Problem: "not a cursor of this worker"}
			}
			return &worker.RequestPage{Next: "c2", Requests: []worker.RequestSummary{{Reference: "A", Kind: worker.Deletion, ComplianceType: "GDPR", State: "done", Projects: []string{"alpha"}, CompletedAt: &done, Due: "2026-02-02"}}}, nil
		},
		cancel: func(ref string) (*worker.CancelResult, error) {
			switch ref {
			case "gone":
				return nil, worker.ErrUnknownReference
			case "late":
				return nil, worker.ErrNotCancellable
			}
			return &worker.CancelResult{Reference: ref, Items: []worker.CancelItem{{Project: "alpha", State: "cancelled", Outcome: "cancelled"}, {Project: "beta", State: "open", Outcome: "too_late", Detail: "Mixpanel has started it"}}}, nil
		},
	}
	s := serve(t, svc)
	r := s.do("GET", "/v1/requests?state=done&after=c1&limit=2", readSecret, nil)
	if r.StatusCode != 200 || got != (worker.ListOptions{State: "done", After: "c1", Limit: 2}) {
		t.Fatalf("list: %s %s, options %+v", r.Status, r.body, got)
	}
	if m := r.json(t); m["next"] != "c2" || len(m["requests"].([]any)) != 1 {
		t.Errorf("list answered %v", m)
	}
	wantProblem(t, s.do("GET", "/v1/requests?state=lost", readSecret, nil), 400, api.ProblemInvalid)
	wantProblem(t, s.do("GET", "/v1/requests?after=bad", readSecret, nil), 400, api.ProblemInvalid)

	r = s.do("POST", "/v1/requests/R-9/cancel", fileSecret, nil)
	if r.StatusCode != 200 {
		t.Fatalf("cancel: %s %s", r.Status, r.body)
	}
	if items := r.json(t)["items"].([]any); len(items) != 2 || items[1].(map[string]any)["outcome"] != "too_late" {
		t.Errorf("cancel answered %s", r.body)
	}
	wantProblem(t, s.do("POST", "/v1/requests/gone/cancel", fileSecret, nil), 404, api.ProblemNotFound)
	wantProblem(t, s.do("POST", "/v1/requests/late/cancel", fileSecret, nil), 409, api.ProblemNotCancellable)
}

// gatedReader gives its first part, then waits for the gate before the
// rest: a server that buffered the whole export before answering would
// never send the first part.
type gatedReader struct {
	first, rest []byte
	off         int
	gate        chan struct{}
	closed      atomic.Bool
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.off < len(g.first) {
		n := copy(p, g.first[g.off:])
		g.off += n
		return n, nil
	}
	<-g.gate
	if len(g.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.rest)
	g.rest = g.rest[n:]
	return n, nil
}

func (g *gatedReader) Close() error { g.closed.Store(true); return nil }

func TestExportStreams(t *testing.T) {
	// Bigger than any buffer between the handler and the client.
	first := []byte(strings.Repeat("P", 256<<10))
	rest := []byte(strings.Repeat("K", 1<<20))
	all := append(append([]byte{}, first...), rest...)
	sum := sha256.Sum256(all)
	g := &gatedReader{first: first, rest: rest, gate: make(chan struct{})}
	svc := &fakeService{openExport: func(ref, project, task string) (*worker.ExportFile, error) {
		if ref != "R-1" || project != "alpha" || task != "77" {
			return nil, worker.ErrNoExport
		}
		return &worker.ExportFile{ReadCloser: g, TaskID: task, Name: "77.zip", Size: int64(len(all)), SHA256: hex.EncodeToString(sum[:])}, nil
	}}
	s := serve(t, svc)
	req, _ := http.NewRequest("GET", s.url+"/v1/requests/R-1/exports/alpha/77", nil)
	req.Header.Set("Authorization", "Bearer "+exportSecret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/zip" || res.ContentLength != int64(len(all)) {
		t.Fatalf("download: %s, %q, length %d", res.Status, res.Header.Get("Content-Type"), res.ContentLength)
	}
	if want := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"; res.Header.Get("Repr-Digest") != want {
		t.Errorf("Repr-Digest %q, want %q", res.Header.Get("Repr-Digest"), want)
	}
	if cd := res.Header.Get("Content-Disposition"); cd != `attachment; filename=77.zip` {
		t.Errorf("Content-Disposition %q", cd)
	}
	// Opens the gate anyway after a while, so that a buffering server
	// fails the test instead of hanging it.
	arrived := make(chan bool, 1)
	go func() {
		select {
		case <-arrived:
		case <-time.After(20 * time.Second):
		}
		close(g.gate)
	}()
	head := make([]byte, len(first)/2)
	if _, err := io.ReadFull(res.Body, head); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.gate:
		t.Error("the download's start arrived only after the whole export was read")
	default:
		arrived <- true
	}
	tail, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256.Sum256(append(head, tail...)); got != sum {
		t.Error("the download differs from the export")
	}
	if !g.closed.Load() {
		t.Error("the export was not closed")
	}
	wantProblem(t, s.do("GET", "/v1/requests/R-1/exports/alpha/78", exportSecret, nil), 404, api.ProblemNotFound)
}

func TestReady(t *testing.T) {
	var down atomic.Bool
	s := serve(t, &fakeService{ready: func() error {
		if down.Load() {
			return errors.New("database: connection refused")
		}
		return nil
	}})
	if r := s.do("GET", "/readyz", "", nil); r.StatusCode != 200 {
		t.Errorf("ready: %s", r.Status)
	}
	down.Store(true)
	wantProblem(t, s.do("GET", "/readyz", "", nil), 503, api.ProblemNotReady)
	if r := s.do("GET", "/healthz", "", nil); r.StatusCode != 200 {
		t.Errorf("healthz while not ready: %s", r.Status)
	}
}

func TestOpenAPIServed(t *testing.T) {
	s := serve(t, &fakeService{})
	r := s.do("GET", "/openapi.yaml", "", nil)
	if r.StatusCode != 200 || !strings.HasPrefix(string(r.body), "openapi: 3.0.3") {
		t.Errorf("/openapi.yaml: %s: %.40s", r.Status, r.body)
	}
	// What clients generate from must be a valid document.
	doc, err := openapi3.NewLoader().LoadFromData(r.body)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Errorf("the served document is not valid OpenAPI: %v", err)
	}
}

// TestProblemsNeverEchoValues puts a marker in every place the schema can
// refuse a value and checks that no answer quotes it (kin-openapi's own
// messages would).
func TestProblemsNeverEchoValues(t *testing.T) {
	const marker = "person-Echo-7Hq-marker"
	s := serve(t, &fakeService{enqueue: func(worker.Request) (*worker.EnqueueResult, error) {
		t.Error("an invalid request reached the worker")
		return nil, errors.New("no")
	}})
	long := strings.Repeat(marker, 20)
	for name, mutate := range map[string]func(m map[string]any){
		"reference too long":    func(m map[string]any) { m["reference"] = long },
		"kind":                  func(m map[string]any) { m["kind"] = marker },
		"compliance type":       func(m map[string]any) { m["compliance_type"] = marker },
		"disclosure type":       func(m map[string]any) { m["disclosure_type"] = marker },
		"an id of another type": func(m map[string]any) { m["distinct_ids"] = []any{marker, 7} },
		"ids not a list":        func(m map[string]any) { m["distinct_ids"] = marker },
		"received_at":           func(m map[string]any) { m["received_at"] = marker },
		"callback too long":     func(m map[string]any) { m["callback_url"] = strings.Repeat(marker, 100) },
		"extension":             func(m map[string]any) { m["extension"] = map[string]any{"reason": marker, "notice_at": marker} },
		"unknown field":         func(m map[string]any) { m[marker] = marker },
		"all_projects":          func(m map[string]any) { m["all_projects"] = marker },
	} {
		body := newRequest("E-1")
		mutate(body)
		r := s.do("POST", "/v1/requests", fileSecret, body)
		if r.StatusCode != 400 {
			t.Errorf("%s: %s: %s", name, r.Status, r.body)
		}
		if strings.Contains(string(r.body), "Echo-7Hq") {
			t.Errorf("%s: the problem quotes the value: %s", name, r.body)
		}
	}
	for _, path := range []string{"/v1/requests?limit=" + marker, "/v1/requests?state=" + marker, "/v1/requests/x?events=" + marker, "/opendsr/requests/" + marker} {
		r := s.do("GET", path, allSecret, nil)
		if r.StatusCode != 400 || strings.Contains(string(r.body), "Echo-7Hq") {
			t.Errorf("GET %s: %s: %s", path, r.Status, r.body)
		}
	}
	if strings.Contains(s.log.String(), "Echo-7Hq") {
		t.Errorf("the log quotes a value: %s", s.log.String())
	}
}
