package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// The problem types (RFC 9457) this API answers with; docs/API.md lists
// them.
const (
	ProblemMalformedJSON    = "urn:mpgdpr:problem:malformed-json"
	ProblemInvalid          = "urn:mpgdpr:problem:invalid-request"
	ProblemRejected         = "urn:mpgdpr:problem:rejected-request"
	ProblemMediaType        = "urn:mpgdpr:problem:unsupported-media-type"
	ProblemTooLarge         = "urn:mpgdpr:problem:body-too-large"
	ProblemUnauthorized     = "urn:mpgdpr:problem:unauthorized"
	ProblemForbidden        = "urn:mpgdpr:problem:forbidden"
	ProblemRateLimited      = "urn:mpgdpr:problem:rate-limited"
	ProblemNotFound         = "urn:mpgdpr:problem:not-found"
	ProblemMethodNotAllowed = "urn:mpgdpr:problem:method-not-allowed"
	ProblemConflict         = "urn:mpgdpr:problem:conflicting-request"
	ProblemNotCancellable   = "urn:mpgdpr:problem:not-cancellable"
	ProblemNotReady         = "urn:mpgdpr:problem:not-ready"
	ProblemInternal         = "urn:mpgdpr:problem:internal"
)

// problem is an RFC 9457 problem, and an error so that handlers can
// return it.
type problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Errors []FieldError `json:"errors,omitempty"`
	// retryAfter, in seconds, for 429.
	retryAfter int
}

func (p *problem) Error() string { return p.Title + ": " + p.Detail }

func newProblem(status int, typ, detail string, errs ...FieldError) *problem {
	return &problem{Type: typ, Title: http.StatusText(status), Status: status, Detail: detail, Errors: errs}
}

// writeProblem answers with p: a problem document, or under /opendsr/
// OpenDSR's error object (section 7.6), which its clients expect.
func writeProblem(w http.ResponseWriter, r *http.Request, p *problem) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if p.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="mpgdpr"`)
	}
	if p.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	var body any = p
	if strings.HasPrefix(r.URL.Path, "/opendsr/") {
		h.Set("Content-Type", "application/json")
		var od OpenDSRError
		od.Error.Code = p.Status
		msg := p.Title
		if p.Detail != "" {
			msg += ": " + p.Detail
		}
		od.Error.Message = &msg
		if len(p.Errors) > 0 {
			errs := make([]struct {
				Domain  *string `json:"domain,omitempty"`
				Message *string `json:"message,omitempty"`
				Reason  *string `json:"reason,omitempty"`
			}, len(p.Errors))
			for i, fe := range p.Errors {
				domain, field, rule := "Validation", fe.Field, fe.Rule
				errs[i].Domain, errs[i].Message, errs[i].Reason = &domain, &field, &rule
			}
			od.Error.Errors = &errs
		}
		body = od
	} else {
		h.Set("Content-Type", "application/problem+json")
	}
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(body)
}

// validationProblem turns the validator's error into a problem. kin-openapi's
// messages may quote the offending value (a distinct ID), so the problem is
// built from the field's JSON pointer and the rule's name only, never from
// err.Error().
func validationProblem(err error) *problem {
	switch {
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return newProblem(http.StatusMethodNotAllowed, ProblemMethodNotAllowed, "this path does not take this method")
	case errors.Is(err, routers.ErrPathNotFound):
		return newProblem(http.StatusNotFound, ProblemNotFound, "no such path")
	}
	var errs []FieldError
	malformed := false
	var walk func(err error, where string)
	walk = func(err error, where string) {
		// The concrete type first: a RequestError unwraps to the
		// MultiError it holds, and errors.As would skip its context.
		switch e := err.(type) {
		case openapi3.MultiError:
			for _, e := range e {
				walk(e, where)
			}
			return
		case *openapi3filter.RequestError:
			w := where
			if e.Parameter != nil {
				w = e.Parameter.In + " parameter " + e.Parameter.Name
			} else if e.RequestBody != nil {
				w = "body"
			}
			if e.Err == nil {
				// kin-openapi's own reasons name the rule, e.g. "value is
				// required but missing"; they quote no value.
				errs = append(errs, FieldError{Field: w, Rule: reasonRule(e.Reason)})
				return
			}
			walk(e.Err, w)
			return
		case *openapi3.SchemaError:
			field := where
			if ptr := e.JSONPointer(); len(ptr) > 0 {
				field = "/" + strings.Join(ptr, "/")
			} else if where == "body" {
				field = "/"
			}
			rule := e.SchemaField
			if rule == "properties" && strings.HasSuffix(e.Reason, " is unsupported") {
				// An unknown property; its name is not echoed (a client
				// could have put anything there).
				rule = "additionalProperties"
			}
			errs = append(errs, FieldError{Field: field, Rule: rule})
			return
		case *openapi3filter.ParseError:
			malformed = true
			return
		}
		var pe *openapi3filter.ParseError
		if errors.As(err, &pe) {
			malformed = true
			return
		}
		if u := errors.Unwrap(err); u != nil {
			walk(u, where)
			return
		}
		errs = append(errs, FieldError{Field: where, Rule: "invalid"})
	}
	walk(err, "request")
	if malformed {
		return newProblem(http.StatusBadRequest, ProblemMalformedJSON, "the body is not well-formed JSON")
	}
	errs = slices.CompactFunc(errs, func(a, b FieldError) bool { return a == b })
	return newProblem(http.StatusBadRequest, ProblemInvalid, "the request does not match the API's schema (see errors and /openapi.yaml)", errs...)
}

// reasonRule keeps the known, value-free reasons of kin-openapi and
// replaces any other.
func reasonRule(reason string) string {
	switch reason {
	case "value is required but missing", "must have a value: value is required but missing":
		return "required"
	}
	return "invalid"
}
