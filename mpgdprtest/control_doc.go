package mpgdprtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// controlDoc is the parsed control document and its router.
type controlDoc struct {
	doc    *openapi3.T
	router routers.Router
}

var (
	controlOnce    sync.Once
	controlShared  *controlDoc
	controlLoadErr error
)

// loadControlDoc parses and validates ControlOpenAPI once per process.
func loadControlDoc() (*controlDoc, error) {
	controlOnce.Do(func() { controlShared, controlLoadErr = parseControlDoc(ControlOpenAPI) })
	return controlShared, controlLoadErr
}

func parseControlDoc(data []byte) (*controlDoc, error) {
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("mpgdprtest: parsing control.openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("mpgdprtest: control.openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	// Route by path alone: the fake listens wherever it is told.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("mpgdprtest: routing control.openapi.yaml: %w", err)
	}
	return &controlDoc{doc: doc, router: router}, nil
}

// operationIDs lists the document's operation ids, sorted.
func (d *controlDoc) operationIDs() []string {
	var ids []string
	for _, item := range d.doc.Paths.Map() {
		for _, op := range item.Operations() {
			ids = append(ids, op.OperationID)
		}
	}
	slices.Sort(ids)
	return ids
}

var errMethodNotAllowed = errors.New("method not allowed")

type controlMatch struct {
	Route      *routers.Route
	PathParams map[string]string
}

// find matches a request to a control operation.
func (d *controlDoc) find(r *http.Request) (*controlMatch, error) {
	route, params, err := d.router.FindRoute(r)
	if err != nil {
		// The legacy router says "method not allowed" only in an error's
		// text: ask instead whether the path has an operation at all.
		if d.pathKnown(r) {
			return nil, errMethodNotAllowed
		}
		return nil, errors.New("no such control operation")
	}
	return &controlMatch{Route: route, PathParams: params}, nil
}

// pathKnown reports whether some other method of the document serves r's
// path.
func (d *controlDoc) pathKnown(r *http.Request) bool {
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead, http.MethodOptions} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, _, err := d.router.FindRoute(probe); err == nil {
			return true
		}
	}
	return false
}

func controlOptions() *openapi3filter.Options {
	return &openapi3filter.Options{
		MultiError:            true,
		IncludeResponseStatus: true,
		// The token is checked before routing, with a constant-time
		// comparison; the document's security lists it as optional.
		AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()},
	}
}

func (d *controlDoc) validateRequest(r *http.Request, m *controlMatch) (*openapi3filter.RequestValidationInput, error) {
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: m.PathParams, Route: m.Route, Options: controlOptions()}
	return in, flatten(openapi3filter.ValidateRequest(r.Context(), in))
}

func (d *controlDoc) validateResponse(in *openapi3filter.RequestValidationInput, code int, header http.Header, body []byte) error {
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: code, Header: header, Options: controlOptions()}
	out.SetBodyBytes(body)
	return flatten(openapi3filter.ValidateResponse(in.Request.Context(), out))
}

// flatten puts every problem of a validation error on one line.
func flatten(err error) error {
	if err == nil {
		return nil
	}
	var reasons []string
	var walk func(error)
	walk = func(e error) {
		if me, ok := e.(openapi3.MultiError); ok && len(me) > 0 {
			for _, x := range me {
				walk(x)
			}
			return
		}
		reasons = append(reasons, strings.Join(strings.Fields(e.Error()), " "))
	}
	walk(err)
	return errors.New(strings.Join(reasons, "; "))
}
