// Package specload parses the embedded merged OpenAPI document once and
// validates HTTP requests and responses against it with kin-openapi's
// openapi3filter. It is shared by the fake server (mpgdprtest) and the
// validating transport (contract), so both judge traffic by the same rules.
//
// Routing ignores the host: the document's servers name Mixpanel's three
// regional hosts, but the same operations are served by a fake on loopback
// or reached through a proxy. Callers strip the base path themselves (see
// Validator.Find) and the router matches what remains against the paths.
package specload

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/privacykit/mpgdpr/api"
)

// BasePath is the path prefix every server in the document shares.
const BasePath = "/api/app"

var (
	once    sync.Once
	shared  *Validator
	loadErr error
)

// Validator routes and validates traffic against the merged document. It is
// safe for concurrent use.
type Validator struct {
	doc     *openapi3.T
	router  routers.Router
	servers []string
}

// Load returns the process-wide Validator, parsing and validating the
// embedded document on first use. An error means the committed document is
// broken, which every caller should treat as fatal.
func Load() (*Validator, error) {
	once.Do(func() { shared, loadErr = build() })
	return shared, loadErr
}

func build() (*Validator, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("specload: parsing api/openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("specload: api/openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	v := &Validator{doc: doc}
	for _, s := range doc.Servers {
		v.servers = append(v.servers, s.URL)
	}
	// The router would match the servers' hosts; with none it matches the
	// path alone, which is what a fake on 127.0.0.1 or a proxy needs. The
	// base path is stripped by Find before routing.
	doc.Servers = nil
	if v.router, err = legacy.NewRouter(doc); err != nil {
		return nil, fmt.Errorf("specload: building the router: %w", err)
	}
	return v, nil
}

// Doc returns the parsed document (its servers removed). Do not modify it.
func (v *Validator) Doc() *openapi3.T { return v.doc }

// ServerURLs lists the document's server URLs, as written in it.
func (v *Validator) ServerURLs() []string { return append([]string(nil), v.servers...) }

// ErrOutsideBase reports a request whose path does not begin with the base
// path: it is not for this API at all.
var ErrOutsideBase = errors.New("path is outside the API's base path")

// Match is a request matched to an operation of the document.
type Match struct {
	Route      *routers.Route
	PathParams map[string]string
}

// OperationID is the matched operation's operationId.
func (m *Match) OperationID() string { return m.Route.Operation.OperationID }

// Find matches method and u's path, which must begin with base (for example
// "/api/app"), to an operation. It returns ErrOutsideBase when the path is
// not under base, and a *routers.RouteError when no operation matches.
func (v *Validator) Find(method string, u *url.URL, base string) (*Match, error) {
	base = strings.TrimSuffix(base, "/")
	rest, ok := strings.CutPrefix(u.Path, base)
	if !ok || (rest != "" && rest[0] != '/') {
		return nil, ErrOutsideBase
	}
	// The router reads only the method and the path.
	probe := &http.Request{Method: method, URL: &url.URL{Path: rest}}
	route, params, err := v.router.FindRoute(probe)
	if err != nil {
		return nil, err
	}
	return &Match{Route: route, PathParams: params}, nil
}

// options are the same for requests and responses: report every problem,
// fail on an undocumented status, and keep values out of the messages —
// they hold distinct ids (personal data) and, for the token parameter, a
// credential.
func options() *openapi3filter.Options {
	return &openapi3filter.Options{
		MultiError:              true,
		IncludeResponseStatus:   true,
		AuthenticationFunc:      checkBearer,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()},
	}
}

// checkBearer enforces the document's only security scheme, an HTTP bearer
// token. Whether the token is the right one is the server's business, not
// the contract's; its value never appears in the error.
func checkBearer(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	if s == nil || s.Type != "http" || !strings.EqualFold(s.Scheme, "bearer") {
		return fmt.Errorf("security scheme %q is not supported by this validator", in.SecuritySchemeName)
	}
	h := in.RequestValidationInput.Request.Header.Values("Authorization")
	switch {
	case len(h) == 0:
		return errors.New("the Authorization header is missing")
	case len(h) > 1:
		return errors.New("the Authorization header is sent more than once")
	}
	scheme, token, _ := strings.Cut(h[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return errors.New("the Authorization header is not a Bearer token")
	}
	if strings.TrimSpace(token) == "" {
		return errors.New("the Authorization header's bearer token is empty")
	}
	return nil
}

// ValidateRequest checks req against the matched operation. It reads req's
// body and leaves a fresh copy in its place, so req must be a request the
// caller owns (a server's, or a clone). The returned input is what
// ValidateResponse needs.
func (v *Validator) ValidateRequest(ctx context.Context, req *http.Request, m *Match) (*openapi3filter.RequestValidationInput, error) {
	in := &openapi3filter.RequestValidationInput{
		Request:    req,
		PathParams: m.PathParams,
		Route:      m.Route,
		Options:    options(),
	}
	return in, openapi3filter.ValidateRequest(ctx, in)
}

// ValidateResponse checks one answer to the request in. With skipBody the
// status and headers are checked but the body is not (it was too large to
// buffer, or could not be read).
func (v *Validator) ValidateResponse(ctx context.Context, in *openapi3filter.RequestValidationInput, status int, header http.Header, body []byte, skipBody bool) error {
	opts := options()
	opts.ExcludeResponseBody = skipBody
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Options:                opts,
	}
	out.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(ctx, out)
}

// Reasons turns a validation error into one line per problem.
func Reasons(err error) []string {
	if err == nil {
		return nil
	}
	if me, ok := err.(openapi3.MultiError); ok && len(me) > 0 {
		var out []string
		for _, e := range me {
			out = append(out, Reasons(e)...)
		}
		return out
	}
	return []string{strings.Join(strings.Fields(err.Error()), " ")}
}
