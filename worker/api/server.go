// Package api is the worker's HTTP API: enqueue, follow, list and cancel
// data-subject requests, download retrieval exports, and the same through
// OpenDSR, over a worker.Service. openapi.yaml describes it (served at GET
// /openapi.yaml); every request is validated against it before a handler
// runs. docs/API.md is the guide.
package api

import (
	"bytes"
	"context"
	"crypto/rsa"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	nethttpmiddleware "github.com/oapi-codegen/nethttp-middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/privacykit/mpgdpr/worker"
	"github.com/privacykit/mpgdpr/worker/webhook"
)

// DefaultMaxBodyBytes is the default limit of a request body (1 MiB).
const DefaultMaxBodyBytes = 1 << 20

// Option configures New.
type Option func(*options)

type options struct {
	keys        []Key
	perSecond   float64
	burst       int
	maxBody     int64
	metrics     http.Handler
	registerer  prometheus.Registerer
	openMetrics bool
	logger      *slog.Logger
	certURL     string
	certPEM     []byte
	signKey     *rsa.PrivateKey
	signDomain  string
	now         func() time.Time
}

// WithKeys adds API keys (LoadKeyFile, ParseKeys). Without any, every
// authenticated operation answers 401.
func WithKeys(keys ...Key) Option { return func(o *options) { o.keys = append(o.keys, keys...) } }

// WithRateLimit limits each key to perSecond requests a second, bursts of
// burst (default 50/s, burst 100); beyond, 429 with Retry-After.
func WithRateLimit(perSecond float64, burst int) Option {
	return func(o *options) { o.perSecond, o.burst = perSecond, burst }
}

// WithMaxBodyBytes sets the largest request body accepted (default
// DefaultMaxBodyBytes); a bigger one gets 413.
func WithMaxBodyBytes(n int64) Option { return func(o *options) { o.maxBody = n } }

// WithMetrics serves h at GET /metrics (e.g. worker.NewMetrics(svc).Handler()).
// Without it, /metrics serves the API's own counters.
func WithMetrics(h http.Handler) Option { return func(o *options) { o.metrics = h } }

// WithRegisterer registers the API's counter, mpgdpr_http_requests_total
// {route, code}, with r: give the registry WithMetrics' handler serves.
// Without it the counter is on a registry of its own, which /metrics
// serves only when WithMetrics is not given.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.registerer = r } }

// WithOpenMetrics serves /metrics without a key (scrapers on a private
// network); otherwise it needs the read scope.
func WithOpenMetrics() Option { return func(o *options) { o.openMetrics = true } }

// WithLogger logs one line per request (method, route template, status,
// key name; never a path, body or key) and server errors to l.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithOpenDSRCertificate names the URL of the X.509 certificate whose key
// signs OpenDSR callbacks; discovery lists it as processor_certificate.
func WithOpenDSRCertificate(url string) Option { return func(o *options) { o.certURL = url } }

// WithOpenDSRCertificatePEM serves pem, the X.509 certificate whose key
// signs OpenDSR callbacks (worker.Config.OpenDSRCertificate), at
// GET /opendsr/certificate; url, the address callers reach that path at
// (this server's public base URL + "/opendsr/certificate"), is what
// discovery lists as processor_certificate.
func WithOpenDSRCertificatePEM(pem []byte, url string) Option {
	return func(o *options) { o.certPEM, o.certURL = pem, url }
}

// WithOpenDSRSigning signs every OpenDSR answer as the specification asks
// (section 7.4 and 8.3): X-OpenDSR-Processor-Domain: domain and
// X-OpenDSR-Signature, the base64 RSA signature (PKCS #1 v1.5, SHA-256) of
// the body (webhook.SignOpenDSR), with the key of the certificate
// discovery names (worker.Config.OpenDSRKey).
func WithOpenDSRSigning(key *rsa.PrivateKey, domain string) Option {
	return func(o *options) { o.signKey, o.signDomain = key, domain }
}

// Server is the API over one worker.Service.
type Server struct {
	svc     worker.Service
	o       options
	keys    keyring
	spec    []byte
	handler http.Handler

	// routes maps "METHOD /path/{param}" patterns to their operation, to
	// authorise and label a request before it is validated.
	routes   *http.ServeMux
	anyRoute *http.ServeMux
	ops      map[string]*operation

	limMu    sync.Mutex
	limiters map[string]*rate.Limiter

	requests *prometheus.CounterVec
}

// operation is what the server needs of an operation of the document.
type operation struct {
	route   string // the path template, the metrics' route label
	scope   string // "" for an open operation
	hasBody bool
}

// ctxKey keys the context values the server passes its handlers.
type ctxKey int

const (
	keyOfRequest ctxKey = iota // *Key
	rawBody                    // []byte
)

// New makes the API over svc.
func New(svc worker.Service, opts ...Option) (*Server, error) {
	s := &Server{svc: svc, o: options{perSecond: 50, burst: 100, maxBody: DefaultMaxBodyBytes, now: time.Now}, limiters: map[string]*rate.Limiter{}}
	for _, opt := range opts {
		opt(&s.o)
	}
	if s.o.perSecond <= 0 || s.o.burst < 1 || s.o.maxBody < 1 {
		return nil, errors.New("api: the rate limit, burst and body limit must be positive")
	}
	if s.o.logger == nil {
		s.o.logger = slog.New(slog.DiscardHandler)
	}
	s.keys.keys = s.o.keys
	// The document as written: GetSwagger's lacks the operations served
	// by hand (excluded from generation).
	spec, err := openapi3.NewLoader().LoadFromData(openapiYAML)
	if err != nil {
		return nil, fmt.Errorf("api: the embedded document: %w", err)
	}
	s.spec = openapiYAML
	if err := s.indexRoutes(spec); err != nil {
		return nil, err
	}
	reg := s.o.registerer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg = r
		if s.o.metrics == nil {
			s.o.metrics = promhttp.HandlerFor(r, promhttp.HandlerOpts{})
		}
	}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mpgdpr_http_requests_total",
		Help: "HTTP requests answered by the worker's API, by route template and status code.",
	}, []string{"route", "code"})
	if err := reg.Register(s.requests); err != nil {
		return nil, fmt.Errorf("api: registering mpgdpr_http_requests_total: %w", err)
	}

	strict := NewStrictHandlerWithOptions(&handlers{s: s}, nil, StrictHTTPServerOptions{
		RequestErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			// The body passed the validator, so this is rare; its message
			// may quote the body: not used.
			writeProblem(w, r, newProblem(http.StatusBadRequest, ProblemMalformedJSON, "the body could not be decoded"))
		},
		ResponseErrorHandlerFunc: s.responseError,
	})
	gen := HandlerWithOptions(strict, StdHTTPServerOptions{
		ErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			// A parameter the validator let through but that does not bind;
			// the generated message may quote it.
			writeProblem(w, r, newProblem(http.StatusBadRequest, ProblemInvalid, "a parameter is not valid"))
		},
	})
	spec.Servers = nil
	validate := nethttpmiddleware.OapiRequestValidatorWithOptions(spec, &nethttpmiddleware.Options{
		Options: openapi3filter.Options{
			// serve authenticates, before the validator runs.
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
			MultiError:         true,
		},
		DoNotValidateServers: true,
		ErrorHandlerWithOpts: func(_ context.Context, err error, w http.ResponseWriter, r *http.Request, _ nethttpmiddleware.ErrorHandlerOpts) {
			writeProblem(w, r, validationProblem(err))
		},
	})(gen)
	s.handler = s.serve(validate)
	return s, nil
}

// Handler is the API's whole HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// openapiYAML is the document as written, served at /openapi.yaml
// (GetSwagger's is decoded, and would be served re-encoded).
//
//go:embed openapi.yaml
var openapiYAML []byte

// indexRoutes reads each operation's path template, scope
// (x-mpgdpr-scope) and body from the document.
func (s *Server) indexRoutes(spec *openapi3.T) error {
	s.routes, s.anyRoute, s.ops = http.NewServeMux(), http.NewServeMux(), map[string]*operation{}
	nop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for path, item := range spec.Paths.Map() {
		s.anyRoute.Handle(path, nop)
		for method, op := range item.Operations() {
			scope, ok := op.Extensions["x-mpgdpr-scope"].(string)
			if !ok {
				return fmt.Errorf("api: %s %s has no x-mpgdpr-scope", method, path)
			}
			if scope == "" && (op.Security == nil || len(*op.Security) > 0) {
				return fmt.Errorf("api: %s %s is open but declares security", method, path)
			}
			pattern := method + " " + path
			s.routes.Handle(pattern, nop)
			s.ops[pattern] = &operation{route: path, scope: scope, hasBody: op.RequestBody != nil}
		}
	}
	return nil
}

// statusWriter records the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serve is the chain in front of the validator: route lookup, metrics and
// log, the open endpoints, authentication, scope, rate limit, media type,
// body limit.
func (s *Server) serve(validated http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := s.o.now()
		w := &statusWriter{ResponseWriter: rw}
		_, pattern := s.routes.Handler(r)
		op := s.ops[pattern]
		route := "other"
		if op != nil {
			route = op.route
		}
		var key *Key
		defer func() {
			code := w.code
			if code == 0 {
				code = http.StatusOK
			}
			s.requests.WithLabelValues(route, fmt.Sprint(code)).Inc()
			attrs := []any{"method", r.Method, "route", route, "status", code, "duration", s.o.now().Sub(start)}
			if key != nil {
				attrs = append(attrs, "key", key.Name)
			}
			s.o.logger.Info("api request", attrs...)
		}()
		if op == nil {
			if _, p := s.anyRoute.Handler(r); p != "" {
				writeProblem(w, r, newProblem(http.StatusMethodNotAllowed, ProblemMethodNotAllowed, "this path does not take this method"))
				return
			}
			writeProblem(w, r, newProblem(http.StatusNotFound, ProblemNotFound, "no such path"))
			return
		}
		switch op.route {
		case "/healthz":
			writeJSON(w, http.StatusOK, Health{Status: "ok"})
			return
		case "/readyz":
			if err := s.svc.Ready(r.Context()); err != nil {
				s.o.logger.Warn("api: not ready", "error", err.Error())
				writeProblem(w, r, newProblem(http.StatusServiceUnavailable, ProblemNotReady, "the worker is not ready"))
				return
			}
			writeJSON(w, http.StatusOK, Health{Status: "ready"})
			return
		case "/openapi.yaml":
			w.Header().Set("Content-Type", "application/yaml")
			_, _ = w.Write(s.spec)
			return
		}
		if op.scope != "" && !(op.route == "/metrics" && s.o.openMetrics) {
			if key = s.authenticate(r); key == nil {
				writeProblem(w, r, newProblem(http.StatusUnauthorized, ProblemUnauthorized, "give an API key: Authorization: Bearer <key>"))
				return
			}
			if !key.has(op.scope) {
				writeProblem(w, r, newProblem(http.StatusForbidden, ProblemForbidden, "this key lacks the "+op.scope+" scope"))
				return
			}
			if wait, ok := s.allow(key.Name); !ok {
				p := newProblem(http.StatusTooManyRequests, ProblemRateLimited, "this key is over its rate limit")
				p.retryAfter = wait
				writeProblem(w, r, p)
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), keyOfRequest, key))
		}
		if op.route == "/metrics" {
			s.o.metrics.ServeHTTP(w, r)
			return
		}
		if op.hasBody {
			var p *problem
			if r, p = s.readBody(w, r); p != nil {
				writeProblem(w, r, p)
				return
			}
		}
		if s.o.signKey != nil && strings.HasPrefix(op.route, "/opendsr/") {
			s.signed(w, r, validated)
			return
		}
		validated.ServeHTTP(w, r)
	})
}

// signed serves r through h into a buffer (OpenDSR answers are small
// JSON), then sends it with the OpenDSR signature headers of its body.
func (s *Server) signed(w http.ResponseWriter, r *http.Request, h http.Handler) {
	rec := &bufferedWriter{header: http.Header{}, code: http.StatusOK}
	h.ServeHTTP(rec, r)
	body := rec.body.Bytes()
	sig, err := webhook.SignOpenDSR(s.o.signKey, body)
	if err != nil {
		s.o.logger.Error("api: signing an OpenDSR answer", "error", err.Error())
		writeProblem(w, r, newProblem(http.StatusInternalServerError, ProblemInternal, "the answer could not be signed"))
		return
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.Header().Set(webhook.OpenDSRDomainHeader, s.o.signDomain)
	w.Header().Set(webhook.OpenDSRSignatureHeader, sig)
	w.WriteHeader(rec.code)
	_, _ = w.Write(body)
}

// bufferedWriter holds an answer until it is signed.
type bufferedWriter struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header         { return b.header }
func (b *bufferedWriter) WriteHeader(code int)        { b.code = code }
func (b *bufferedWriter) Write(p []byte) (int, error) { return b.body.Write(p) }

// authenticate returns the key of the request's bearer token, or nil.
func (s *Server) authenticate(r *http.Request) *Key {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil
	}
	return s.keys.find(strings.TrimSpace(token))
}

// allow takes a token of the key's limiter, or says in how many seconds
// one will be there.
func (s *Server) allow(name string) (int, bool) {
	s.limMu.Lock()
	lim, ok := s.limiters[name]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(s.o.perSecond), s.o.burst)
		s.limiters[name] = lim
	}
	s.limMu.Unlock()
	now := s.o.now()
	res := lim.ReserveN(now, 1)
	d := res.DelayFrom(now)
	if d == 0 {
		return 0, true
	}
	res.CancelAt(now)
	return max(1, int(math.Ceil(d.Seconds()))), false
}

// readBody checks the media type and reads the body whole, up to the
// limit, for the validator, the handler and OpenDSR's encoded_request.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (*http.Request, *problem) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return r, newProblem(http.StatusUnsupportedMediaType, ProblemMediaType, "send the body as application/json")
	}
	if r.ContentLength > s.o.maxBody {
		return r, newProblem(http.StatusRequestEntityTooLarge, ProblemTooLarge, fmt.Sprintf("the body is over %d bytes", s.o.maxBody))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.o.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return r, newProblem(http.StatusRequestEntityTooLarge, ProblemTooLarge, fmt.Sprintf("the body is over %d bytes", s.o.maxBody))
		}
		return r, newProblem(http.StatusBadRequest, ProblemMalformedJSON, "the body could not be read")
	}
	r = r.WithContext(context.WithValue(r.Context(), rawBody, body))
	r.Body = io.NopCloser(bytes.NewReader(body))
	return r, nil
}

// responseError answers a handler's error: a problem as it is, anything
// else as 500, logged (the worker's errors quote no distinct ID).
func (s *Server) responseError(w http.ResponseWriter, r *http.Request, err error) {
	var p *problem
	if errors.As(err, &p) {
		writeProblem(w, r, p)
		return
	}
	s.o.logger.Error("api: internal error", "route", r.Pattern, "error", err.Error())
	writeProblem(w, r, newProblem(http.StatusInternalServerError, ProblemInternal, "the server failed; see its log"))
}
