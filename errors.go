package mpgdpr

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinels for errors.Is. An *Error matches the one for its status code.
var (
	// ErrInvalidInput: the call's arguments were rejected before any request was sent.
	ErrInvalidInput = errors.New("invalid input")
	// ErrBadRequest: Mixpanel answered 400.
	ErrBadRequest = errors.New("bad request")
	// ErrUnauthorized: Mixpanel answered 401 (OAuth token missing, wrong or expired).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: Mixpanel answered 403 (the token may not act on this project).
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: Mixpanel answered 404 (no such task).
	ErrNotFound = errors.New("not found")
	// ErrCannotCancel: Mixpanel answered 405 to a cancel: the deletion has
	// started or ended and can no longer be cancelled.
	ErrCannotCancel = errors.New("task can no longer be cancelled")
	// ErrConflict: Mixpanel answered 409: some IDs already have a deletion
	// running. The whole request was rejected; see Error.ConflictingDistinctIDs.
	ErrConflict = errors.New("conflict with a running deletion")
	// ErrRateLimited: Mixpanel answered 429, and retries (if any) did not get through.
	ErrRateLimited = errors.New("rate limited")
	// ErrServer: Mixpanel answered 5xx.
	ErrServer = errors.New("server error")
	// ErrOutcomeUnknown: a create may or may not have been accepted (the
	// connection failed, or the context ended, after the request may have
	// reached Mixpanel; the answer was one that does not prove the request
	// was left alone, such as any 5xx but a 503 with Retry-After, see
	// CreateRefused; or a 2xx answer could not be read). It is not re-sent
	// automatically by CreateRetrieval and CreateDeletion: check before
	// resubmitting. A resubmitted deletion answered with 409 names the task
	// that already covers those IDs (DeleteAll does that itself).
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrMalformedResponse: a success answer whose body could not be understood.
	ErrMalformedResponse = errors.New("malformed response")
)

// CreateRefused is the one rule for what an answer other than 2xx to a
// create (CreateRetrieval, CreateDeletion) says about its outcome: true if
// the answer proves Mixpanel did not act on the request, so that its IDs
// may be sent again; false if the request may have been carried out before
// the failure was reported, so the outcome is unknown (ErrOutcomeUnknown).
//
//	4xx (400, 401, 403, 404, 409, 413, 429…)  refused: the request was rejected
//	503 with a valid Retry-After             refused: the service asks to come back later (retried)
//	503 without Retry-After                  unknown: a gateway's answer, the origin may have acted
//	500, 501, 502, 504, 507, 508, 520–527…   unknown: any other 5xx, from the origin or a proxy/CDN
//	1xx, 3xx, anything else                  unknown: not an answer Mixpanel gives to a create
//
// Gateways and CDNs answer 5xx after an origin may have acted (a timeout,
// a dropped upstream connection), and cannot be told apart from Mixpanel's
// own 5xx; a Retry-After on a 503 is the only 5xx signal that the request
// was turned away before processing. README.md's Errors section has this
// table.
func CreateRefused(code int, header http.Header) bool {
	switch {
	case code >= 400 && code < 500:
		return true
	case code == http.StatusServiceUnavailable:
		_, ok := parseRetryAfter(header.Get("Retry-After"), time.Now())
		return ok
	}
	return false
}

// maxErrorBody bounds how much of an error body is read: enough for any
// message Mixpanel sends, too little for a hostile body to cost memory.
const maxErrorBody = 64 << 10

// Error is an answer from Mixpanel other than success.
type Error struct {
	// Op is the call: CreateRetrieval, CheckRetrieval, CreateDeletion,
	// CheckDeletion or CancelDeletion.
	Op string
	// StatusCode is the HTTP status.
	StatusCode int
	// Message is Mixpanel's error text (`error` when it is a string), with
	// any token removed.
	Message string
	// RetryAfter is the wait the server asked for (429/503), or 0.
	RetryAfter time.Duration
	// ConflictingDistinctIDs and ConflictingTaskIDs are set on a 409: the IDs
	// that already have a deletion running and the tasks covering them.
	ConflictingDistinctIDs []string
	ConflictingTaskIDs     []string
}

// Error renders the status, Mixpanel's message and, on a 409, the covering tasks.
func (e *Error) Error() string { return prefix + e.text() }

func (e *Error) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: HTTP %d", e.Op, e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" " + t)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if len(e.ConflictingDistinctIDs) > 0 || len(e.ConflictingTaskIDs) > 0 {
		fmt.Fprintf(&b, ": %d distinct ids already covered by running deletion task(s) %s",
			len(e.ConflictingDistinctIDs), strings.Join(e.ConflictingTaskIDs, ", "))
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Is matches the sentinel for the status code, so that
// errors.Is(err, ErrNotFound) works through any wrapping.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.StatusCode == http.StatusBadRequest
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrCannotCancel:
		return e.StatusCode == http.StatusMethodNotAllowed
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrServer:
		return e.StatusCode >= 500
	}
	return false
}

// Temporary reports whether the same request may succeed later (429, 5xx).
func (e *Error) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// errorBody is the documented error shape: `error` is a string, or on a 409
// an object naming the conflicting IDs and tasks.
type errorBody struct {
	Status string          `json:"status"`
	Error  json.RawMessage `json:"error"`
}

type conflictBody struct {
	DistinctIDs []string `json:"conflicting_distinct_ids"`
	TaskIDs     []string `json:"conflicting_task_ids"`
}

// newError builds an *Error from a non-success response, reading at most
// maxErrorBody bytes of its body. It does not close the body.
func newError(op string, resp *http.Response, redact func(string) string) *Error {
	e := &Error{Op: op, StatusCode: resp.StatusCode}
	e.RetryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body errorBody
	if json.Unmarshal(raw, &body) == nil && len(body.Error) > 0 {
		var msg string
		var conflict conflictBody
		switch {
		case json.Unmarshal(body.Error, &msg) == nil:
			e.Message = msg
		case json.Unmarshal(body.Error, &conflict) == nil:
			e.ConflictingDistinctIDs = conflict.DistinctIDs
			e.ConflictingTaskIDs = conflict.TaskIDs
		default:
			e.Message = string(body.Error)
		}
	} else if len(raw) > 0 && !looksBinary(raw) {
		e.Message = strings.TrimSpace(string(raw))
	}
	// Redact before cutting, so a cut never leaves part of a secret, and cut
	// on a character boundary: a message, not a page.
	e.Message = truncate(redact(e.Message), 512)
	e.ConflictingDistinctIDs = redactAll(e.ConflictingDistinctIDs, redact)
	e.ConflictingTaskIDs = redactAll(e.ConflictingTaskIDs, redact)
	return e
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// redactAll cleans ids a server sent back, and bounds how many are kept:
// a 409 names at most one request's worth.
func redactAll(ids []string, redact func(string) string) []string {
	if len(ids) > DefaultMaxRetrievalIDs {
		ids = ids[:DefaultMaxRetrievalIDs]
	}
	for i, id := range ids {
		ids[i] = truncate(redact(id), 512)
	}
	return ids
}

func looksBinary(b []byte) bool {
	for _, c := range b[:min(len(b), 512)] {
		if c < 0x09 {
			return true
		}
	}
	return false
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		if s > int64(365*24*time.Hour/time.Second) {
			s = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		return min(max(d, 0), 365*24*time.Hour), true // the same year cap as the seconds form
	}
	return 0, false
}

// OutcomeUnknownError wraps the failure that left a create's outcome
// unknown. errors.Is(err, ErrOutcomeUnknown) is true; Unwrap gives the cause.
type OutcomeUnknownError struct {
	Op  string
	Err error
}

// Error says the outcome is unknown and what to do, with the cause.
func (e *OutcomeUnknownError) Error() string { return prefix + e.message(fmt.Sprint(e.Err)) }

func (e *OutcomeUnknownError) text() string { return e.message(textOf(e.Err)) }

func (e *OutcomeUnknownError) message(cause string) string {
	return fmt.Sprintf("%s: outcome unknown, the request may have been accepted; check before resubmitting: %s", e.Op, cause)
}

// Unwrap returns the cause.
func (e *OutcomeUnknownError) Unwrap() error { return e.Err }

// Is matches ErrOutcomeUnknown.
func (e *OutcomeUnknownError) Is(target error) bool { return target == ErrOutcomeUnknown }

// InputError reports an argument rejected before any request was sent.
// errors.Is(err, ErrInvalidInput) is true.
type InputError struct {
	Field   string // which argument
	Problem string // what is wrong with it
}

// Error names the argument and what is wrong with it.
func (e *InputError) Error() string { return prefix + e.text() }

func (e *InputError) text() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Problem) }

// Is matches ErrInvalidInput.
func (e *InputError) Is(target error) bool { return target == ErrInvalidInput }

// prefix starts the text of every error this package returns.
const prefix = "mpgdpr: "

// ownError is implemented by this package's errors: their text is prefix
// and text(). callError tells them from a failure of the layers below by
// this type, and Unprefixed renders text().
type ownError interface {
	error
	text() string
}

// libError is an error of this package built like fmt.Errorf(prefix+format,
// args...): same text, same wrapping (%w, several allowed). It keeps the
// format and arguments so that Unprefixed can render it, and the errors
// of this package among its arguments, without their prefix.
type libError struct {
	format string
	args   []any
	err    error // fmt.Errorf(format, args...): text and wrapping
	bare   bool  // wrapf: no prefix of its own
}

// errorf returns a *libError: "mpgdpr: " + fmt.Errorf(format, args...).
func errorf(format string, args ...any) error {
	return &libError{format: format, args: args, err: fmt.Errorf(format, args...)}
}

// wrapf is errorf without the prefix, for a part of a message that
// another errorf completes, when it holds errors of this package.
func wrapf(format string, args ...any) error {
	return &libError{format: format, args: args, err: fmt.Errorf(format, args...), bare: true}
}

func (e *libError) Error() string {
	if e.bare {
		return e.err.Error()
	}
	return prefix + e.err.Error()
}

// Unwrap returns the errors format wrapped with %w.
func (e *libError) Unwrap() []error {
	switch u := e.err.(type) {
	case interface{ Unwrap() []error }:
		return u.Unwrap()
	case interface{ Unwrap() error }:
		return []error{u.Unwrap()}
	}
	return nil
}

func (e *libError) text() string {
	args := make([]any, len(e.args))
	for i, a := range e.args {
		if err, ok := a.(error); ok {
			a = textOf(err)
		}
		args[i] = a
	}
	return fmt.Sprintf(strings.ReplaceAll(e.format, "%w", "%v"), args...)
}

// isOwn reports whether err itself (not what it wraps) is one of this
// package's errors, also once scrubbed of a secret.
func isOwn(err error) bool {
	switch e := err.(type) {
	case *redactedError:
		return isOwn(e.err)
	case *libError:
		return !e.bare
	}
	_, ok := err.(ownError)
	return ok
}

// textOf is err's text, without the prefix if it is this package's.
// Only err itself is looked at: a foreign error's text, even one wrapping
// this package's, is its own.
func textOf(err error) string {
	if err == nil {
		return "<nil>"
	}
	if oe, ok := err.(ownError); ok {
		return oe.text()
	}
	return err.Error()
}

// Unprefixed returns err with a text that leaves out the "mpgdpr: " that
// this package starts its errors with, at every level of a message this
// package built (a batch's error naming the create's error, say), for a
// program that says where its messages come from, such as the CLI:
//
//	return fmt.Errorf("task %s: %w", id, mpgdpr.Unprefixed(err))
//
// errors.Is and errors.As see err unchanged. A nil err gives nil, and an
// error from elsewhere keeps its text.
func Unprefixed(err error) error {
	if err == nil {
		return nil
	}
	return &unprefixedError{err}
}

type unprefixedError struct{ err error }

func (e *unprefixedError) Error() string { return textOf(e.err) }
func (e *unprefixedError) Unwrap() error { return e.err }
