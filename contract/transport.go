// Package contract checks live traffic against the module's merged OpenAPI
// document: a Transport wraps another http.RoundTripper and validates every
// request to the API and every answer from it with kin-openapi's
// openapi3filter.
//
// It is meant for integration tests against the real Mixpanel (or any
// server speaking the API), to prove that what your code sends and what
// comes back still match the document. In Strict mode (the default) a
// violation is an error: a wrong request is not sent at all, and a wrong
// answer is withheld. In Record mode traffic flows unchanged and
// violations are collected for Violations and Report.
//
// Secrets stay out of everything the Transport keeps or returns: the
// `token` query parameter and the Authorization header are redacted from
// URLs and reasons, and kin-openapi is told to leave values (which hold
// distinct ids, personal data) out of its messages.
//
// This package does not import the root client package; the root package
// does not import kin-openapi.
package contract

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/routers"

	"github.com/privacykit/mpgdpr/internal/redact"
	"github.com/privacykit/mpgdpr/internal/specload"
)

// DefaultMaxBody bounds how much of an answer is buffered for validation.
// A task listing 2000 ids is well under it; a larger body is passed on
// whole but validated for status and headers only.
const DefaultMaxBody = 8 << 20

// The kinds of Violation.
const (
	// KindRequest: a request the document does not allow.
	KindRequest = "request"
	// KindResponse: an answer the document does not allow.
	KindResponse = "response"
	// KindUnmatched: a request to the API's host and base path that
	// matches no operation of the document.
	KindUnmatched = "unmatched"
)

// Violation is one way a request or answer broke the merged document.
type Violation struct {
	Op     string // the operation id, or empty for KindUnmatched
	Kind   string // KindRequest, KindResponse or KindUnmatched
	Method string
	URL    string // with the token parameter's value replaced by REDACTED
	Status int    // the answer's status, for KindResponse
	Reason string // kin-openapi's reason, without credentials or values
}

// String renders the violation on one line, credentials redacted.
func (v Violation) String() string {
	op := v.Op
	if op == "" {
		op = "no operation"
	}
	s := fmt.Sprintf("%s violation: %s %s (%s)", v.Kind, v.Method, v.URL, op)
	if v.Status != 0 {
		s += fmt.Sprintf(" HTTP %d", v.Status)
	}
	return s + ": " + v.Reason
}

// ErrViolation is matched by every *ViolationError.
var ErrViolation = errors.New("contract violation")

// ViolationError is what a Strict Transport returns instead of a request
// or answer that breaks the document. An *http.Client wraps it in a
// *url.Error (whose text shows the request URL: see Transport); use
// errors.As to get it back.
type ViolationError struct {
	Violations []Violation
	// Sent reports whether the request reached the wrapped transport: false
	// for a wrong request (never sent), true for a wrong answer.
	Sent bool
}

// RequestSent reports whether the request reached the wrapped transport. An
// HTTP client that sees false knows the call had no effect and that sending
// it again would be refused again (the mpgdpr client neither retries it nor
// reports a create's outcome as unknown).
func (e *ViolationError) RequestSent() bool { return e.Sent }

// Error lists the violations, credentials redacted.
func (e *ViolationError) Error() string {
	var b strings.Builder
	b.WriteString("contract: ")
	for i, v := range e.Violations {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(v.String())
	}
	return b.String()
}

// Is matches ErrViolation.
func (e *ViolationError) Is(target error) bool { return target == ErrViolation }

// Option configures a Transport.
type Option func(*Transport) error

// Strict makes a violation an error (the default): a wrong request is not
// sent, and a wrong answer's body is closed and not returned.
func Strict() Option { return func(t *Transport) error { t.strict = true; return nil } }

// Record lets all traffic through unchanged and collects violations.
func Record() Option { return func(t *Transport) error { t.strict = false; return nil } }

// WithBaseURL adds an API base URL to validate traffic for, besides the
// document's servers (Mixpanel's three regional hosts): a fake, a proxy, a
// recorded-traffic replay. Requests to any other host, such as an export
// download from a storage host, pass through unvalidated.
func WithBaseURL(base string) Option {
	return func(t *Transport) error {
		b, err := parseBase(base)
		if err != nil {
			return err
		}
		t.bases = append(t.bases, b)
		return nil
	}
}

// WithMaxBody sets how many bytes of an answer are buffered for validation
// (default DefaultMaxBody).
func WithMaxBody(n int64) Option {
	return func(t *Transport) error {
		if n < 1 {
			return fmt.Errorf("contract: max body %d must be positive", n)
		}
		t.maxBody = n
		return nil
	}
}

// AllowStatus lists the statuses an answer may have although the document
// does not list them for the operation; such answers are not validated.
// The default is 500, 502, 503 and 504: the document describes no server
// failure, yet they happen and a client is expected to retry them. Call
// with no codes to hold every answer to the document.
func AllowStatus(codes ...int) Option {
	return func(t *Transport) error { t.allowed = slices.Clone(codes); return nil }
}

// RedactValues names more secrets to keep out of violations and reports,
// such as the project's API secret, besides the token parameter and the
// bearer token, which are always redacted.
func RedactValues(values ...string) Option {
	return func(t *Transport) error { t.secrets = append(t.secrets, values...); return nil }
}

// Transport validates traffic to the API against the merged document. It
// is safe for concurrent use.
type Transport struct {
	next    http.RoundTripper
	v       *specload.Validator
	strict  bool
	bases   []base
	maxBody int64
	allowed []int
	secrets []string

	mu         sync.Mutex
	violations []Violation
	checked    int // requests to the API, checked against the document
	skipped    int // requests to other hosts, passed through
}

// base is one API location: host:port (port made explicit) and path prefix.
type base struct {
	host, path string
}

func parseBase(raw string) (base, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return base{}, fmt.Errorf("contract: base URL %q is not an absolute http(s) URL", raw)
	}
	return base{host: hostPort(u), path: strings.TrimSuffix(u.Path, "/")}, nil
}

func hostPort(u *url.URL) string {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(host, port)
}

// NewTransport wraps next (http.DefaultTransport if nil). With no mode
// option it is Strict.
func NewTransport(next http.RoundTripper, opts ...Option) (*Transport, error) {
	v, err := specload.Load()
	if err != nil {
		return nil, err
	}
	if next == nil {
		next = http.DefaultTransport
	}
	t := &Transport{next: next, v: v, strict: true, maxBody: DefaultMaxBody, allowed: []int{500, 502, 503, 504}}
	for _, s := range v.ServerURLs() {
		b, err := parseBase(s)
		if err != nil {
			return nil, err
		}
		t.bases = append(t.bases, b)
	}
	for _, o := range opts {
		if err := o(t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Violations returns every violation seen so far (in Strict mode too).
func (t *Transport) Violations() []Violation {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.violations)
}

// Report summarizes the traffic seen and lists every violation, one a line,
// for a test log or a CI artifact. It holds no secret.
func (t *Transport) Report() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "contract: %d request(s) to the API checked against the merged OpenAPI document, %d violation(s)", t.checked, len(t.violations))
	if t.skipped > 0 {
		fmt.Fprintf(&b, ", %d request(s) to other hosts not validated", t.skipped)
	}
	b.WriteString("\n")
	for _, v := range t.violations {
		b.WriteString("  " + v.String() + "\n")
	}
	return b.String()
}

// RoundTrip validates req, sends it through the wrapped transport, and
// validates the answer. Requests to hosts other than the API's pass through
// untouched.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	b, ok := t.match(req.URL)
	if !ok {
		t.mu.Lock()
		t.skipped++
		t.mu.Unlock()
		return t.next.RoundTrip(req)
	}
	t.mu.Lock()
	t.checked++
	t.mu.Unlock()
	redact := t.redactor(req)
	ex := exchange{op: "", method: req.Method, url: redactURL(req.URL, redact)}

	// The body is read once and replayed: to the validator and onward.
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	out := req.Clone(req.Context())
	if req.Body != nil && req.Body != http.NoBody {
		out.Body, out.GetBody = replay(body)
		out.ContentLength = int64(len(body))
	}

	m, err := t.v.Find(req.Method, req.URL, b.path)
	if err != nil {
		var re *routers.RouteError
		reason := err.Error()
		if errors.As(err, &re) {
			reason = "no operation of the document matches " + req.Method + " " + req.URL.Path + ": " + re.Reason
		}
		vs := ex.violations(KindUnmatched, 0, []string{reason}, redact)
		if err := t.flag(vs, false); err != nil {
			return nil, err
		}
		return t.next.RoundTrip(out)
	}
	ex.op = m.OperationID()

	probe := req.Clone(req.Context())
	if req.Body != nil && req.Body != http.NoBody {
		probe.Body, probe.GetBody = replay(body)
		probe.ContentLength = int64(len(body))
	}
	in, err := t.v.ValidateRequest(req.Context(), probe, m)
	if err != nil {
		if err := t.flag(ex.violations(KindRequest, 0, specload.Reasons(err), redact), false); err != nil {
			return nil, err
		}
	}

	resp, err := t.next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	code := resp.StatusCode
	if slices.Contains(t.allowed, code) && !documented(m, code) {
		return resp, nil
	}
	data, rerr := io.ReadAll(io.LimitReader(resp.Body, t.maxBody+1))
	skipBody := false
	switch {
	case rerr != nil:
		// The caller will meet the same error when it reads; there is
		// nothing whole to validate.
		resp.Body = &readCloser{io.MultiReader(bytes.NewReader(data), errReader{rerr}), resp.Body}
		return resp, nil
	case int64(len(data)) > t.maxBody:
		resp.Body = &readCloser{io.MultiReader(bytes.NewReader(data), resp.Body), resp.Body}
		skipBody = true
	default:
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(data))
	}
	if err := t.v.ValidateResponse(req.Context(), in, code, resp.Header, data, skipBody); err != nil {
		if verr := t.flag(ex.violations(KindResponse, code, specload.Reasons(err), redact), true); verr != nil {
			_ = resp.Body.Close()
			return nil, verr
		}
	}
	return resp, nil
}

// flag records vs and returns the error Strict mode reports for them.
func (t *Transport) flag(vs []Violation, sent bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.violations = append(t.violations, vs...)
	if len(vs) > 0 && t.strict {
		return &ViolationError{Violations: vs, Sent: sent}
	}
	return nil
}

// match finds the API base a URL is under. A URL on an API host but under
// none of its base paths still matches (the longest-pathed base wins
// otherwise), so that it is reported as unmatched rather than skipped.
func (t *Transport) match(u *url.URL) (base, bool) {
	hp := hostPort(u)
	var found base
	ok, under := false, false
	for _, b := range t.bases {
		if b.host != hp {
			continue
		}
		in := strings.HasPrefix(u.Path, b.path+"/") || u.Path == b.path
		if !ok || in && (!under || len(b.path) > len(found.path)) {
			found, ok, under = b, true, in
		}
	}
	return found, ok
}

// documented reports whether the operation lists this status (or a default).
func documented(m *specload.Match, code int) bool {
	rs := m.Route.Operation.Responses
	return rs.Status(code) != nil || rs.Default() != nil
}

// exchange names one request in violations.
type exchange struct {
	op, method, url string
}

func (e exchange) violations(kind string, status int, reasons []string, redact func(string) string) []Violation {
	op := e.op
	if kind == KindUnmatched {
		op = ""
	}
	vs := make([]Violation, len(reasons))
	for i, r := range reasons {
		vs[i] = Violation{Op: op, Kind: kind, Method: e.method, URL: e.url, Status: status, Reason: redact(r)}
	}
	return vs
}

// redactor removes from a text the credentials this request carries and
// any configured secret.
func (t *Transport) redactor(req *http.Request) func(string) string {
	return redact.Request(req, t.secrets...).String
}

// redactURL shows u with its credentials masked (redact.URL: user info,
// the token parameter's value) and then any secret (clean).
func redactURL(u *url.URL, clean func(string) string) string {
	return clean(redact.URL(u.String()))
}

func replay(b []byte) (io.ReadCloser, func() (io.ReadCloser, error)) {
	get := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	rc, _ := get()
	return rc, get
}

type readCloser struct {
	io.Reader
	io.Closer
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
