package mpgdpr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestCallError: a failure below the client gets the call's name and is
// scrubbed; one of this package's own errors passes as it is, decided by
// its type, not its text. Before, any error whose text began "mpgdpr: "
// passed, so a foreign error could skip the scrub by its wording.
func TestCallError(t *testing.T) {
	c, err := New("oauth-token-1234", "project-token-1234")
	if err != nil {
		t.Fatal(err)
	}
	own := []error{
		&InputError{Field: "x", Problem: "y"},
		&Error{Op: "CheckDeletion", StatusCode: 404},
		&unsentError{msg: "refusing"},
		errorf("%s: giving up: %w", "CheckDeletion", context.DeadlineExceeded),
		c.scrubInner(errorf("token project-token-1234 in it")),
	}
	for _, e := range own {
		if got := c.callError("CheckDeletion", e); got != e {
			t.Errorf("own error %q was wrapped: %q", e, got)
		}
	}
	foreign := []error{
		errors.New("mpgdpr: looks like ours, is not: project-token-1234"),
		&url.Error{Op: "Get", URL: "https://x/?token=project-token-1234", Err: errors.New("reset")},
		wrapf("part of a message: %w", context.Canceled),
	}
	for _, e := range foreign {
		got := c.callError("CheckDeletion", e)
		if !strings.HasPrefix(got.Error(), "mpgdpr: CheckDeletion: ") || strings.Contains(got.Error(), "project-token-1234") || !errors.Is(got, e) && !errors.As(got, new(*url.Error)) {
			t.Errorf("foreign error %q: %q", e, got)
		}
	}
	unknown := fmt.Errorf("wrapped: %w", &OutcomeUnknownError{Op: "CreateDeletion", Err: errors.New("reset")})
	if got := c.callError("CreateDeletion", unknown); got != unknown {
		t.Errorf("an unknown outcome is passed as it is: %q", got)
	}
}

// TestUnprefixed: the text without "mpgdpr: " at every level this package
// built, with errors.Is and errors.As unchanged: what the CLI printed by
// rewriting the text.
func TestUnprefixed(t *testing.T) {
	srv := newBatchServer(t, func(n int, _ []string) (int, string) {
		if n == 1 {
			return 502, `{"error":"bad gateway"}`
		}
		return 400, `{"error":"no"}`
	})
	c := srv.client(t, WithRetryPolicy(fastRetries(2)))
	_, batchErr := c.DeleteAll(context.Background(), []string{"a"}, GDPR)
	c404, _ := faultClient(t, newRecorder(t, jsonReply(http.StatusNotFound, `{"error":"no such task"}`)), fastRetries(1))
	_, checkErr := c404.CheckDeletion(context.Background(), "t1")
	for _, err := range []error{
		batchErr,
		checkErr,
		&InputError{Field: "kind", Problem: "bad"},
		&OutcomeUnknownError{Op: "CreateDeletion", Err: &Error{Op: "CreateDeletion", StatusCode: 502}},
		errorf("%s: stopped: %w", "DeleteAll", wrapf("%w (after: %w)", &Error{Op: "CreateDeletion", StatusCode: 400}, &InputError{Field: "a", Problem: "b"})),
	} {
		if err == nil || !strings.Contains(err.Error(), "mpgdpr: ") {
			t.Fatalf("test error %v", err)
		}
		u := Unprefixed(err)
		if u.Error() != strings.ReplaceAll(err.Error(), "mpgdpr: ", "") {
			t.Errorf("Unprefixed:\n%s\nthe text:\n%s", u, err)
		}
		var apiErr *Error
		if !errors.Is(u, err) || errors.As(err, &apiErr) != errors.As(u, &apiErr) {
			t.Errorf("Unprefixed(%v) hides the error", err)
		}
	}
	if !errors.Is(batchErr, ErrOutcomeUnknown) || !errors.Is(batchErr, ErrBadRequest) {
		t.Errorf("batch error: %v", batchErr)
	}
	if Unprefixed(nil) != nil {
		t.Error("Unprefixed(nil) != nil")
	}
	if e := errors.New("mpgdpr: not ours"); Unprefixed(e).Error() != e.Error() {
		t.Error("a foreign error keeps its text")
	}
}
