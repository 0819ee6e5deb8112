// Package mpgdprtest is a fake Mixpanel GDPR/CCPA API for tests, held to
// the module's merged OpenAPI document.
//
// NewServer starts it in-process on loopback, like httptest.NewServer. It
// serves the five operations through the server interface oapi-codegen
// generates from the same document (package gen), keeps tasks in memory and
// moves them PENDING → STAGING → STARTED → SUCCESS on a schedule the test
// controls (see Schedule). PENDING and STAGING deletions can be cancelled
// (204, then REVOKED); later ones answer 405. A deletion for ids that
// already have one running answers 409 with the conflict object. A finished
// retrieval links to an export on a second, credential-free download host
// (another loopback address), a zip encrypted with the API secret as
// Mixpanel's are.
//
// Every request is validated against the document with kin-openapi's
// openapi3filter, and so is every answer the fake gives (with undocumented
// statuses refused). A violation is answered 400 with the reason and kept:
// Violations and AssertNoViolations let the test fail with that reason.
// The fake checks the OAuth and project tokens it was given (401, 403),
// can enforce a rate limit (429 with Retry-After), and injects faults on
// request (InjectFault), so tests of retries need no handlers of their own.
// Requests records what it saw, without credential values.
//
// WithControlAPI mounts a control API under ControlPrefix (/_fake/) on the
// API host, documented by its own OpenAPI document (ControlOpenAPI), so the
// same can be done over HTTP: the `mpgdpr fake` command serves it as a
// process for tests in any language. Start is NewServer returning an error;
// WithListen, WithDownloadListen and WithDownloadURL choose where it listens.
//
// This package does not import the root client package, so the client's
// own tests can use it.
package mpgdprtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/privacykit/mpgdpr/gen"
	"github.com/privacykit/mpgdpr/internal/specload"
)

// BasePath is the path prefix of every API operation, as on Mixpanel's
// regional hosts.
const BasePath = "/api/app"

// maxRequestBody bounds what the fake reads of a request: 2000 ids of a few
// hundred bytes each fit many times over.
const maxRequestBody = 16 << 20

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	cfg     config
	v       *specload.Validator
	api     *httptest.Server
	dl      *httptest.Server
	ops     http.Handler // the generated router over our ServerInterface
	control *control     // the control API; served under ControlPrefix if cfg.control
	// downloadBase is what export links start with.
	downloadBase string
	limiter      *rate.Limiter
	closing      chan struct{}
	close        sync.Once

	mu         sync.Mutex
	seq        int
	tasks      map[string]*task
	order      []string
	requests   []Request
	violations []Violation
	faults     []*faultEntry
}

// NewServer starts a fake on 127.0.0.1 and its download host on 127.0.0.2
// (on a system where that address cannot be bound, 127.0.0.1 on another
// port: still another host:port, so a client that sends credentials to
// "the same host" is still caught, but by port only), or where WithListen
// and WithDownloadListen say. Call Close when done. It panics if it cannot
// listen or an option is invalid, as httptest.NewServer does; Start
// returns the error instead.
func NewServer(opts ...Option) *Server {
	s, err := Start(opts...)
	if err != nil {
		panic(err)
	}
	return s
}

func start(cfg config) (*Server, error) {
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	v, err := specload.Load()
	if err != nil {
		panic(err) // the committed document is broken: nothing can be tested
	}
	if BasePath != specload.BasePath {
		panic("mpgdprtest: BasePath differs from the document's")
	}
	s := &Server{cfg: cfg, v: v, closing: make(chan struct{}), tasks: map[string]*task{}}
	if cfg.rps > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(cfg.rps), 1)
	}
	if s.control, err = newControl(s); err != nil {
		panic(err) // the embedded control document is broken
	}
	s.ops = gen.HandlerWithOptions(operations{s}, gen.StdHTTPServerOptions{
		BaseURL: BasePath,
		// Parameters are validated before this runs; a binding error here
		// means the generated code and the document disagree, which the
		// test should hear about.
		ErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			op := ""
			if m, ferr := s.v.Find(r.Method, r.URL, BasePath); ferr == nil {
				op = m.OperationID()
			}
			reason := s.redactor(r)("the generated server refused a request the document allows: " + err.Error())
			s.addViolations([]Violation{{Op: op, Kind: ViolationRequest, Method: r.Method, Path: r.URL.Path, Reason: reason}})
			writeError(w, http.StatusBadRequest, reason)
		},
	})
	if s.api, err = listenOn(http.HandlerFunc(s.serveAPI), cfg.listen, ""); err != nil {
		return nil, err
	}
	addr, fallback := downloadListen(&cfg, s.api.Listener.Addr())
	if s.dl, err = listenOn(http.HandlerFunc(s.serveDownload), addr, fallback); err != nil {
		_ = s.api.Listener.Close()
		return nil, err
	}
	s.dl.Start()
	s.api.Start()
	s.downloadBase = s.dl.URL
	if cfg.downloadURL != "" {
		s.downloadBase = cfg.downloadURL
	}
	return s, nil
}

// URL is the API base URL, for example http://127.0.0.1:41234/api/app: give
// it to the client as its base URL.
func (s *Server) URL() string { return s.api.URL + BasePath }

// DownloadHost is the host:port export links point at.
func (s *Server) DownloadHost() string {
	u, err := url.Parse(s.downloadBase)
	if err != nil { // checked in checkConfig
		return ""
	}
	return u.Host
}

// DownloadURL is the base URL export links start with, for example
// http://127.0.0.2:41235 (see WithDownloadURL).
func (s *Server) DownloadURL() string { return s.downloadBase }

// OAuthToken is the bearer token the server accepts.
func (s *Server) OAuthToken() string { return s.cfg.oauth }

// ProjectToken is the project token the server accepts.
func (s *Server) ProjectToken() string { return s.cfg.project }

// APISecret is the password of the exports it serves.
func (s *Server) APISecret() string { return s.cfg.secret }

// Close shuts both hosts down, cutting short any injected latency, and
// waits for requests in progress.
func (s *Server) Close() {
	s.close.Do(func() {
		close(s.closing)
		s.api.Close()
		s.dl.Close()
	})
}

// capture buffers an answer so it can be validated before it is sent.
type capture struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (c *capture) Header() http.Header { return c.header }

func (c *capture) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}

func (c *capture) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return c.body.Write(b)
}

// serveAPI is the API host: route, faults, validation, rate limit, auth,
// the operation, then validation of the answer.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	if s.cfg.control && isControlPath(r.URL.Path) {
		s.control.ServeHTTP(w, r)
		return
	}
	rec := Request{
		Time: s.cfg.now(), Host: r.Host, Method: r.Method, Path: s.redactor(r)(r.URL.Path),
		Bearer: s.bearerState(r), ProjectToken: s.tokenState(r),
	}
	// Recorded once: before a hang-up (the client may look as soon as its
	// connection drops), otherwise when the handler returns, which is before
	// net/http flushes the answer.
	recorded := false
	recordNow := func() {
		if !recorded {
			recorded = true
			s.record(rec)
		}
	}
	defer recordNow()
	redact := s.redactor(r)
	violation := func(kind string, reasons []string) []Violation {
		vs := make([]Violation, len(reasons))
		for i, reason := range reasons {
			vs[i] = Violation{Op: rec.Op, Kind: kind, Method: r.Method, Path: rec.Path, Reason: redact(reason)}
		}
		rec.Violation = true
		s.addViolations(vs)
		return vs
	}
	reject := func(vs []Violation) {
		msg := make([]string, len(vs))
		for i, v := range vs {
			msg[i] = v.Reason
		}
		rec.Status = http.StatusBadRequest
		writeError(w, rec.Status, "the "+vs[0].Kind+" violates the API contract: "+strings.Join(msg, "; "))
	}

	m, routeErr := s.v.Find(r.Method, r.URL, BasePath)
	if routeErr == nil {
		rec.Op = m.OperationID()
	}
	f := s.takeFault(rec.Op, r)
	if f != nil {
		rec.Fault = f.kind()
		if !s.wait(r, f.Latency) {
			return
		}
		switch f.Reset {
		case ResetBeforeBody:
			recordNow()
			reset(w)
			return
		case ResetAfterBody:
			_, _ = io.Copy(io.Discard, r.Body)
			recordNow()
			reset(w)
			return
		}
	}
	if routeErr != nil {
		reject(violation(ViolationRequest, []string{fmt.Sprintf("%s %s: %v", r.Method, r.URL.Path, routeErr)}))
		return
	}

	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	in, err := s.v.ValidateRequest(r.Context(), r, m)
	if err != nil {
		reject(violation(ViolationRequest, specload.Reasons(err)))
		return
	}
	if f != nil && f.answers() {
		writeFault(w, f)
		rec.Status = f.Status
		if rec.Status == 0 {
			rec.Status = http.StatusOK
		}
		return
	}

	c := &capture{header: http.Header{}}
	switch {
	case s.limiter != nil && !s.allow(c):
	case rec.Bearer != CredentialValid:
		writeError(c, http.StatusUnauthorized, "Invalid or expired OAuth token")
	case rec.ProjectToken != CredentialValid:
		writeError(c, http.StatusForbidden, "This OAuth token does not grant access to the project of this token")
	default:
		// Mixpanel's docs show the creates with a trailing slash; the
		// document (and so the validator) accepts both, the mux only one.
		if op := rec.Op; op == OpCreateRetrieval || op == OpCreateDeletion {
			r.URL.Path = strings.TrimSuffix(r.URL.Path, "/")
			r.URL.RawPath = ""
		}
		s.ops.ServeHTTP(c, r)
	}
	if c.code == 0 {
		c.code = http.StatusOK
	}
	if err := s.v.ValidateResponse(r.Context(), in, c.code, c.header, c.body.Bytes(), false); err != nil {
		reject(violation(ViolationResponse, specload.Reasons(err)))
		return
	}
	if f != nil && f.Reset == ResetAfterHandling {
		recordNow()
		reset(w)
		return
	}
	if c.code == 0 {
		c.code = http.StatusOK
	}
	rec.Status = c.code
	// Before emitting: a large answer (an export) or a cut one reaches the
	// client before this handler returns.
	recordNow()
	emit(w, c, f)
}

// allow takes a token from the rate limiter, or writes a 429 to w.
func (s *Server) allow(w http.ResponseWriter) bool {
	res := s.limiter.Reserve()
	d := res.Delay()
	if d == 0 {
		return true
	}
	res.Cancel() // a refused request does not use up the next slot
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(d.Seconds())))))
	writeError(w, http.StatusTooManyRequests, fmt.Sprintf("Rate limit exceeded: at most %g requests per second", s.cfg.rps))
	return false
}

func errorJSON(msg string) string {
	b, _ := json.Marshal(map[string]string{"status": "error", "error": msg})
	return string(b)
}

// writeError writes the document's ErrorResponse with a string message.
func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, errorJSON(msg))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// mixpanelTime is the zone-less timestamp Mixpanel shows.
func mixpanelTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000") }
