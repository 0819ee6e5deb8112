package contract_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/contract"
	"github.com/privacykit/mpgdpr/gen"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// Sentinel credentials: none may appear in anything the transport keeps.
const (
	oauth   = "oauth-SENTINEL-3f9a1c"
	project = "project-SENTINEL-8d2e47"
	secret  = "secret-SENTINEL-51b0aa"
)

// Mixpanel's US host, one of the document's servers: the transport
// validates traffic to it with no option.
const mixpanel = "https://mixpanel.com/api/app"

// stub answers every request with one canned response and keeps what it
// received.
type stub struct {
	mu     sync.Mutex
	status int
	header http.Header
	body   string
	got    []*http.Request
	bodies [][]byte
}

func (s *stub) RoundTrip(r *http.Request) (*http.Response, error) {
	var b []byte
	if r.Body != nil {
		b, _ = io.ReadAll(r.Body)
		r.Body.Close()
	}
	s.mu.Lock()
	s.got = append(s.got, r)
	s.bodies = append(s.bodies, b)
	s.mu.Unlock()
	h := s.header
	if h == nil {
		h = http.Header{"Content-Type": {"application/json"}}
	}
	return &http.Response{StatusCode: s.status, Header: h.Clone(), Body: io.NopCloser(strings.NewReader(s.body)), Request: r}, nil
}

func newTransport(t *testing.T, next http.RoundTripper, opts ...contract.Option) *contract.Transport {
	t.Helper()
	tr, err := contract.NewTransport(next, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// genClient is the generated client over tr, with the sentinel bearer token.
func genClient(t *testing.T, base string, tr http.RoundTripper) *gen.ClientWithResponses {
	t.Helper()
	c, err := gen.NewClientWithResponses(base, gen.WithHTTPClient(&http.Client{Transport: tr}),
		gen.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+oauth)
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// assertNoSecret fails if any sentinel credential appears in s.
func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, x := range []string{oauth, project, secret} {
		if strings.Contains(s, x) {
			t.Errorf("%s shows a secret: %s", what, s)
		}
	}
}

func assertClean(t *testing.T, tr *contract.Transport, errs ...error) {
	t.Helper()
	assertNoSecret(t, "report", tr.Report())
	for _, v := range tr.Violations() {
		assertNoSecret(t, "violation", v.String())
	}
	for _, err := range errs {
		var ve *contract.ViolationError
		if errors.As(err, &ve) {
			assertNoSecret(t, "error", ve.Error())
		}
	}
}

// TestValidTrafficThroughFake: the real client's every call, success and
// error answers alike, passes the transport in strict mode and the fake.
func TestValidTrafficThroughFake(t *testing.T) {
	fake := mpgdprtest.NewServer(mpgdprtest.WithTokens(oauth, project), mpgdprtest.WithAPISecret(secret), mpgdprtest.WithSchedule(mpgdprtest.Manual()))
	defer fake.Close()
	tr := newTransport(t, nil, contract.WithBaseURL(fake.URL()), contract.RedactValues(secret))
	hc := &http.Client{Transport: tr}
	c, err := mpgdpr.New(oauth, project, mpgdpr.WithBaseURL(fake.URL()), mpgdpr.WithRateLimiter(nil), mpgdpr.WithHTTPClient(hc), mpgdpr.WithRetryPolicy(mpgdpr.NoRetries()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rid, err := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: []string{"a"}, ComplianceType: mpgdpr.CCPA, DisclosureType: mpgdpr.DisclosureSources})
	if err != nil {
		t.Fatal(err)
	}
	did, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"a", "b"}, ComplianceType: mpgdpr.GDPR})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 { // concurrent checks, for the race detector
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.CheckDeletion(ctx, did); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if _, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: []string{"b"}, ComplianceType: mpgdpr.GDPR}); !errors.Is(err, mpgdpr.ErrConflict) {
		t.Errorf("409 expected: %v", err)
	}
	fake.AdvanceAll()
	fake.AdvanceAll()
	if err := c.CancelDeletion(ctx, did); !errors.Is(err, mpgdpr.ErrCannotCancel) {
		t.Errorf("405 expected: %v", err)
	}
	if _, err := c.CheckRetrieval(ctx, "nope"); !errors.Is(err, mpgdpr.ErrNotFound) {
		t.Errorf("404 expected: %v", err)
	}
	fake.AdvanceAll()
	tk, err := c.CheckRetrieval(ctx, rid)
	if err != nil || tk.DownloadURL == "" {
		t.Fatalf("finished retrieval %+v: %v", tk, err)
	}
	// The download goes to another host: passed through, not validated.
	resp, err := hc.Get(tk.DownloadURL)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("download: %v %v", resp, err)
	}
	resp.Body.Close()

	bad, _ := mpgdpr.New("oauth-other-token", project, mpgdpr.WithBaseURL(fake.URL()), mpgdpr.WithRateLimiter(nil), mpgdpr.WithHTTPClient(hc))
	if _, err := bad.CheckDeletion(ctx, did); !errors.Is(err, mpgdpr.ErrUnauthorized) {
		t.Errorf("401 expected: %v", err)
	}

	if vs := tr.Violations(); len(vs) != 0 {
		t.Errorf("violations: %v", vs)
	}
	fake.AssertNoViolations(t)
	rep := tr.Report()
	// 12: the cancel that meets 405 is followed by one status check (is the
	// task REVOKED already?).
	if !strings.Contains(rep, "12 request(s) to the API checked") || !strings.Contains(rep, "0 violation(s)") || !strings.Contains(rep, "1 request(s) to other hosts not validated") {
		t.Errorf("report: %s", rep)
	}
	assertClean(t, tr)
}

// TestStrictWrongRequest: a request the document forbids is an error and
// is never sent.
func TestStrictWrongRequest(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name, reason string
		send         func(c *gen.ClientWithResponses) error
	}{
		{"bad compliance type", `Error at "/compliance_type": value is not one of the allowed values`, func(c *gen.ClientWithResponses) error {
			// The project token as the compliance type: a value that must not be echoed.
			_, err := c.CreateDeletionWithResponse(ctx, &gen.CreateDeletionParams{Token: project}, gen.CreateDeletionRequest{DistinctIds: []string{"a"}, ComplianceType: project})
			return err
		}},
		{"missing token", `parameter "token" in query has an error`, func(c *gen.ClientWithResponses) error {
			_, err := c.CheckRetrievalWithResponse(ctx, "t1", &gen.CheckRetrievalParams{})
			return err
		}},
		{"too many ids", "maximum number of items is 1999", func(c *gen.ClientWithResponses) error {
			ids := make([]string, 2000)
			for i := range ids {
				ids[i] = "person"
			}
			_, err := c.CreateDeletionWithResponse(ctx, &gen.CreateDeletionParams{Token: project}, gen.CreateDeletionRequest{DistinctIds: ids, ComplianceType: "GDPR"})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next := &stub{status: 200, body: `{"status":"ok","results":{"task_id":"t"}}`}
			tr := newTransport(t, next, contract.Strict())
			err := tc.send(genClient(t, mixpanel, tr))
			var ve *contract.ViolationError
			if !errors.As(err, &ve) || !errors.Is(err, contract.ErrViolation) {
				t.Fatalf("error %v, want a *ViolationError", err)
			}
			if len(next.got) != 0 || ve.Sent {
				t.Errorf("the wrong request was sent (Sent=%v)", ve.Sent)
			}
			if v := ve.Violations[0]; v.Kind != contract.KindRequest || !strings.Contains(v.Reason, tc.reason) {
				t.Errorf("violation %v, want a request violation saying %q", v, tc.reason)
			}
			if len(tr.Violations()) != len(ve.Violations) {
				t.Error("strict mode did not record the violations it returned")
			}
			assertClean(t, tr, err)
		})
	}
}

// TestStrictWrongResponse: an answer missing a field the document requires
// (a 409 whose conflict object lacks conflicting_distinct_ids) is an error.
func TestStrictWrongResponse(t *testing.T) {
	next := &stub{status: 409, body: `{"status":"error","error":{"conflicting_task_ids":["t1"]}}`}
	tr := newTransport(t, next)
	c := genClient(t, mixpanel, tr)
	_, err := c.CreateDeletionWithResponse(context.Background(), &gen.CreateDeletionParams{Token: project}, gen.CreateDeletionRequest{DistinctIds: []string{"a"}, ComplianceType: "GDPR"})
	var ve *contract.ViolationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v, want a *ViolationError", err)
	}
	v := ve.Violations[0]
	if v.Kind != contract.KindResponse || v.Op != "createDeletion" || v.Status != 409 || !strings.Contains(v.Reason, `property "conflicting_distinct_ids" is missing`) {
		t.Errorf("violation %v", v)
	}
	if len(next.got) != 1 || !ve.Sent {
		t.Errorf("the request was sent %d times (Sent=%v)", len(next.got), ve.Sent)
	}
	if !strings.Contains(v.URL, "token=REDACTED") {
		t.Errorf("URL %s: the token should show as REDACTED", v.URL)
	}
	assertClean(t, tr, err)

	// The same answer with the field is fine.
	next.body = `{"status":"error","error":{"conflicting_distinct_ids":["a"],"conflicting_task_ids":["t1"]}}`
	r, err := c.CreateDeletionWithResponse(context.Background(), &gen.CreateDeletionParams{Token: project}, gen.CreateDeletionRequest{DistinctIds: []string{"a"}, ComplianceType: "GDPR"})
	if err != nil || r.JSON409 == nil {
		t.Errorf("documented 409: %v", err)
	}
}

// TestRecordMode: violations are collected, traffic flows unchanged and
// bodies arrive whole on both sides.
func TestRecordMode(t *testing.T) {
	body := `{"status":"ok","results":{"status":"DONE","tracking_id":"t1"}}` // DONE is not a documented status
	next := &stub{status: 200, body: body}
	tr := newTransport(t, next, contract.Record())
	c := genClient(t, mixpanel, tr)
	r, err := c.CheckDeletionWithResponse(context.Background(), "t1", &gen.CheckDeletionParams{Token: project})
	if err != nil || string(r.Body) != body {
		t.Fatalf("record mode changed the answer: %v, %q", err, r.Body)
	}
	req := []byte(`{"compliance_type":"gdpr","distinct_ids":["a"]}`)
	_, err = c.CreateDeletionWithBodyWithResponse(context.Background(), &gen.CreateDeletionParams{Token: project}, "application/json", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	if len(next.bodies) != 2 || !bytes.Equal(next.bodies[1], req) {
		t.Errorf("request body reached the server as %q", next.bodies[1])
	}
	vs := tr.Violations()
	kinds := map[string]int{}
	for _, v := range vs {
		kinds[v.Kind+" "+v.Op]++
	}
	if kinds["response checkDeletion"] != 1 || kinds["request createDeletion"] != 1 {
		t.Errorf("violations %v", vs)
	}
	rep := tr.Report()
	if !strings.Contains(rep, "2 request(s) to the API checked") || !strings.Contains(rep, `Error at "/results/status"`) || !strings.Contains(rep, `Error at "/compliance_type"`) {
		t.Errorf("report:\n%s", rep)
	}
	assertClean(t, tr)
}

// TestSecretsRedacted: credentials in the URL, the header and the body
// stay out of violations, errors and reports, in both modes.
func TestSecretsRedacted(t *testing.T) {
	for _, mode := range []contract.Option{contract.Strict(), contract.Record()} {
		next := &stub{status: 418, body: `{"status":"error","error":"` + oauth + `"}`}
		tr := newTransport(t, next, mode, contract.RedactValues(secret))
		c := genClient(t, mixpanel, tr)
		// A path that matches nothing, carrying the token; a body carrying the secret.
		req, _ := http.NewRequest(http.MethodPost, mixpanel+"/data-exports/"+project+"?token="+project, strings.NewReader(`{"secret":"`+secret+`"}`))
		req.Header.Set("Authorization", "Bearer "+oauth)
		_, err1 := (&http.Client{Transport: tr}).Do(req)
		_, err2 := c.CheckRetrievalWithResponse(context.Background(), oauth, &gen.CheckRetrievalParams{Token: project})
		_, err3 := c.CreateDeletionWithResponse(context.Background(), &gen.CreateDeletionParams{Token: project}, gen.CreateDeletionRequest{DistinctIds: []string{secret}, ComplianceType: gen.ComplianceType(oauth)})
		if len(tr.Violations()) < 3 {
			t.Errorf("violations: %v", tr.Violations())
		}
		assertClean(t, tr, err1, err2, err3)
	}
}

// TestScope: requests to other hosts pass through untouched; an unknown
// path on the API's host is reported as unmatched.
func TestScope(t *testing.T) {
	next := &stub{status: 200, body: "not json at all"}
	tr := newTransport(t, next, contract.Record())
	hc := &http.Client{Transport: tr}
	resp, err := hc.Get("https://storage.example.com/export.zip?X-Signature=abc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(tr.Violations()) != 0 {
		t.Errorf("a download from a storage host was validated: %v", tr.Violations())
	}
	resp, err = hc.Get("https://eu.mixpanel.com/api/app/engage?token=" + project)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = hc.Get("https://in.mixpanel.com/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	vs := tr.Violations()
	if len(vs) != 2 || vs[0].Kind != contract.KindUnmatched || vs[1].Kind != contract.KindUnmatched || vs[0].Op != "" {
		t.Errorf("violations %v, want two unmatched", vs)
	}
	if rep := tr.Report(); !strings.Contains(rep, "1 request(s) to other hosts not validated") {
		t.Errorf("report: %s", rep)
	}
	assertClean(t, tr)
}

// TestStatuses: 5xx answers the document does not list are let through by
// default; other undocumented statuses, and 5xx with AllowStatus(), are not.
func TestStatuses(t *testing.T) {
	check := func(tr *contract.Transport) error {
		_, err := genClient(t, mixpanel, tr).CheckDeletionWithResponse(context.Background(), "t1", &gen.CheckDeletionParams{Token: project})
		return err
	}
	html := http.Header{"Content-Type": {"text/html"}}
	if err := check(newTransport(t, &stub{status: 503, header: html, body: "<h1>down</h1>"})); err != nil {
		t.Errorf("503 from a proxy: %v", err)
	}
	if err := check(newTransport(t, &stub{status: 503, header: html, body: "<h1>down</h1>"}, contract.AllowStatus())); !errors.Is(err, contract.ErrViolation) {
		t.Errorf("503 with AllowStatus(): %v", err)
	}
	err := check(newTransport(t, &stub{status: 418, body: `{"status":"error","error":"teapot"}`}))
	if !errors.Is(err, contract.ErrViolation) || !strings.Contains(err.Error(), "status is not supported") {
		t.Errorf("418: %v", err)
	}
	// A documented error with the wrong content type.
	if err := check(newTransport(t, &stub{status: 404, header: html, body: "<h1>no</h1>"})); !errors.Is(err, contract.ErrViolation) {
		t.Errorf("404 as HTML: %v", err)
	}
}

// TestLargeBody: an answer over the buffer limit reaches the caller whole;
// only its status and headers are validated.
func TestLargeBody(t *testing.T) {
	body := `{"status":"ok","results":{"status":"SUCCESS","distinct_ids":["` + strings.Repeat("x", 4096) + `"]}}`
	tr := newTransport(t, &stub{status: 200, body: body}, contract.WithMaxBody(1024))
	r, err := genClient(t, mixpanel, tr).CheckRetrievalWithResponse(context.Background(), "t1", &gen.CheckRetrievalParams{Token: project})
	if err != nil || string(r.Body) != body {
		t.Fatalf("large answer: %v, %d of %d bytes", err, len(r.Body), len(body))
	}
	if _, err := contract.NewTransport(nil, contract.WithMaxBody(0)); err == nil {
		t.Error("WithMaxBody(0) accepted")
	}
	if _, err := contract.NewTransport(nil, contract.WithBaseURL("mixpanel.com")); err == nil {
		t.Error("a base URL without scheme accepted")
	}
}

// TestBrokenAnswer: an answer whose body fails mid-read reaches the
// caller with the same error, unvalidated.
func TestBrokenAnswer(t *testing.T) {
	tr := newTransport(t, rtFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(io.MultiReader(strings.NewReader(`{"status":`), errReader{})), Request: r}, nil
	}))
	req, _ := http.NewRequest(http.MethodGet, mixpanel+"/data-deletions/v3.0/t1?token="+project, nil)
	req.Header.Set("Authorization", "Bearer "+oauth)
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != `{"status":` || !errors.Is(err, errBroken) {
		t.Errorf("read %q, %v", b, err)
	}
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

var errBroken = errors.New("connection broke")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBroken }
