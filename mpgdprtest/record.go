package mpgdprtest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/internal/redact"
)

// Credential says what arrived of one credential, never its value.
type Credential string

// What a request carried of a credential.
const (
	// CredentialAbsent: not sent at all.
	CredentialAbsent Credential = "absent"
	// CredentialValid: the value the server was configured with.
	CredentialValid Credential = "valid"
	// CredentialInvalid: sent, with another value (or not as a Bearer token).
	CredentialInvalid Credential = "invalid"
)

// Request is what the server saw of one request and how it answered.
// It holds no credential values and no body.
type Request struct {
	Time   time.Time // by the server's clock (see WithClock)
	Host   string    // the host:port it arrived at: the API's or the download host's
	Method string
	Path   string // without the query string
	// Op is the operation id (OpCreateRetrieval, …, OpDownload), or empty
	// when the request matched no operation.
	Op string
	// Status is the HTTP status answered, or 0 when the connection was
	// dropped (a Reset fault, or the client went away).
	Status int
	// Bearer is what arrived as the OAuth token (the Authorization header,
	// or the token's value anywhere else); ProjectToken likewise for the
	// project token (the `token` parameter, or its value anywhere else).
	Bearer       Credential
	ProjectToken Credential
	// Fault names the injected fault that hit the request, if any:
	// "latency", "status", "body", "reset-before-body", "reset-after-body"
	// or "reset-after-handling".
	Fault string
	// Violation reports that the request or its answer broke the contract
	// (see Server.Violations for why).
	Violation bool
}

// The kinds of Violation.
const (
	// ViolationRequest: a request the document does not allow (including
	// one that matches no operation).
	ViolationRequest = "request"
	// ViolationResponse: an answer of the fake's own that the document does
	// not allow, a bug in the fake or a change in the document.
	ViolationResponse = "response"
)

// Violation is one way a request or answer broke the merged document. The
// request was answered 400 with Reason in the error message.
type Violation struct {
	Op     string // the operation id, or empty if none matched
	Kind   string // ViolationRequest or ViolationResponse
	Method string
	Path   string
	Reason string // kin-openapi's reason, with credentials and values left out
}

// String renders the violation on one line.
func (v Violation) String() string {
	op := v.Op
	if op == "" {
		op = "no operation"
	}
	return v.Kind + " violation: " + v.Method + " " + v.Path + " (" + op + "): " + v.Reason
}

// Requests returns every request received so far, on both hosts, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Violations returns every contract violation seen so far.
func (s *Server) Violations() []Violation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Violation(nil), s.violations...)
}

// ClearRequests forgets the requests recorded so far.
func (s *Server) ClearRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// ClearViolations forgets the violations seen so far.
func (s *Server) ClearViolations() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.violations = nil
}

// AssertNoViolations fails t with one error per violation seen so far,
// each naming the request and kin-openapi's reason.
func (s *Server) AssertNoViolations(t testing.TB) {
	t.Helper()
	for _, v := range s.Violations() {
		t.Errorf("mpgdprtest: %s", v)
	}
}

func (s *Server) record(r Request) {
	// A client may put a credential anywhere, the path included; the
	// record must not keep it.
	for _, x := range []string{s.cfg.oauth, s.cfg.project, s.cfg.secret} {
		if len(x) >= 4 && strings.Contains(r.Path, x) {
			r.Path = strings.ReplaceAll(r.Path, x, "REDACTED")
		}
	}
	s.mu.Lock()
	s.requests = append(s.requests, r)
	s.mu.Unlock()
	if s.cfg.onRequest != nil {
		s.cfg.onRequest(r)
	}
}

// WithRequestHook calls f with each request as it is recorded (see
// Requests), for a log of the traffic. f runs on the request's goroutine,
// before the answer is sent, so it must be quick and safe for concurrent
// use.
func WithRequestHook(f func(Request)) Option {
	return func(c *config) { c.onRequest = f }
}

func (s *Server) addViolations(vs []Violation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.violations = append(s.violations, vs...)
}

// bearerState classifies the OAuth token a request carried.
func (s *Server) bearerState(r *http.Request) Credential {
	h := r.Header.Values("Authorization")
	if len(h) == 1 && h[0] == "Bearer "+s.cfg.oauth {
		return CredentialValid
	}
	if len(h) > 0 {
		return CredentialInvalid
	}
	if s.cfg.oauth != "" && carries(r, s.cfg.oauth) {
		return CredentialValid // the value, somewhere else than where it belongs
	}
	return CredentialAbsent
}

// tokenState classifies the project token a request carried.
func (s *Server) tokenState(r *http.Request) Credential {
	q := r.URL.Query()
	if v := q["token"]; len(v) == 1 && v[0] == s.cfg.project {
		return CredentialValid
	} else if len(v) > 0 {
		return CredentialInvalid
	}
	if s.cfg.project != "" && carries(r, s.cfg.project) {
		return CredentialValid
	}
	return CredentialAbsent
}

// carries reports whether secret appears in r's query or headers.
func carries(r *http.Request, secret string) bool {
	if strings.Contains(r.URL.RawQuery, secret) || strings.Contains(r.URL.RawQuery, url.QueryEscape(secret)) {
		return true
	}
	for _, vs := range r.Header {
		for _, v := range vs {
			if strings.Contains(v, secret) {
				return true
			}
		}
	}
	return false
}

// redactor returns a function removing from a reason every credential the
// server knows and every one this request carried.
func (s *Server) redactor(r *http.Request) func(string) string {
	return redact.Request(r, s.cfg.oauth, s.cfg.project, s.cfg.secret).String
}
