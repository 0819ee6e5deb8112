package mpgdpr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
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
		if _, nested := err.(*OutcomeUnknownError); nested && strings.Count(err.Error(), "mpgdpr: ") != 2 {
			t.Errorf("Error() keeps the cause's own text, prefix included: %s", err)
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

// TestCreateRefusedRule: every answer to a create is either a certain
// refusal (4xx, a 503 with Retry-After) or an unknown outcome, through the
// pipeline as in CreateRefused. Before the rule, 501, 503 without
// Retry-After, 505-508 and the CDN codes 520-527 were certain refusals.
func TestCreateRefusedRule(t *testing.T) {
	refused := map[int]bool{400: true, 401: true, 403: true, 404: true, 405: true, 408: true, 409: true, 413: true, 422: true, 429: true}
	codes := []int{300, 400, 401, 403, 404, 405, 408, 409, 413, 422, 429, 500, 501, 502, 503, 504, 505, 507, 508, 511, 520, 521, 522, 523, 524, 525, 526, 527, 530, 599}
	for _, code := range codes {
		rec := newRecorder(t, jsonReply(code, `{"status":"error","error":"x"}`))
		c, _ := faultClient(t, rec, NoRetries())
		err := createDel(c, context.Background())
		var e *Error
		switch {
		case refused[code]:
			if errors.Is(err, ErrOutcomeUnknown) || !errors.As(err, &e) || e.StatusCode != code {
				t.Errorf("%d: %v, want a certain refusal", code, err)
			}
		default:
			var ou *OutcomeUnknownError
			if !errors.As(err, &ou) || !errors.Is(err, ErrOutcomeUnknown) || !errors.As(err, &e) || e.StatusCode != code || errors.Is(err, ErrServer) != (code >= 500) {
				t.Errorf("%d: %v, want an unknown outcome", code, err)
			}
		}
		if got := CreateRefused(code, nil); got != refused[code] {
			t.Errorf("CreateRefused(%d) = %v", code, got)
		}
	}
	ra := http.Header{"Retry-After": {"3"}}
	if !CreateRefused(503, ra) || CreateRefused(503, http.Header{"Retry-After": {"soon"}}) || CreateRefused(502, ra) || !CreateRefused(429, nil) {
		t.Error("CreateRefused and Retry-After")
	}
	// A 503 with Retry-After whose retries run out is a refusal: the IDs
	// may be sent again.
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "0")
		jsonReply(503, `{"status":"error","error":"busy"}`)(w, r)
	})
	c, _ := faultClient(t, rec, fastRetries(2))
	if err := createDel(c, context.Background()); errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrServer) || len(rec.requests()) != 2 {
		t.Errorf("503 with Retry-After: %v after %d requests", err, len(rec.requests()))
	}
}

// TestErrorStatuses: every documented error maps to *Error and its sentinel.
func TestErrorStatuses(t *testing.T) {
	cases := []struct {
		code     int
		body     string
		sentinel error
		msg      string
	}{
		{400, `{"status":"error","error":"distinct_ids is required"}`, ErrBadRequest, "distinct_ids is required"},
		{401, `{"status":"error","error":"Invalid token"}`, ErrUnauthorized, "Invalid token"},
		{403, `{"status":"error","error":"no access"}`, ErrForbidden, "no access"},
		{404, `{"status":"error","error":"task not found"}`, ErrNotFound, "task not found"},
		{405, `{"status":"error","error":"cannot cancel"}`, ErrCannotCancel, "cannot cancel"},
		{409, `{"status":"error","error":{"conflicting_distinct_ids":["a","b"],"conflicting_task_ids":["t9"]}}`, ErrConflict, ""},
		{429, `{"status":"error","error":"rate limited"}`, ErrRateLimited, "rate limited"},
		{500, `oops`, ErrServer, "oops"},
	}
	for _, tc := range cases {
		t.Run(http.StatusText(tc.code), func(t *testing.T) {
			rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "7")
				jsonReply(tc.code, tc.body)(w, r)
			})
			c := rec.client(t, WithRetryPolicy(NoRetries()))
			err := c.CancelDeletion(context.Background(), "t1")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err %v is not *Error", err)
			}
			if !errors.Is(err, tc.sentinel) || e.StatusCode != tc.code || e.Message != tc.msg || e.Op != "CancelDeletion" {
				t.Fatalf("got %+v", e)
			}
			if e.RetryAfter != 7*time.Second {
				t.Errorf("RetryAfter %v", e.RetryAfter)
			}
			if tc.code == 409 && (strings.Join(e.ConflictingDistinctIDs, ",") != "a,b" || strings.Join(e.ConflictingTaskIDs, ",") != "t9") {
				t.Errorf("conflict %+v", e)
			}
			for _, other := range []error{ErrNotFound, ErrConflict, ErrUnauthorized} {
				if other != tc.sentinel && errors.Is(err, other) {
					t.Errorf("also matches %v", other)
				}
			}
		})
	}
}

func TestErrorBodyLimit(t *testing.T) {
	huge := strings.Repeat("x", 10<<20)
	c := newRecorder(t, jsonReply(400, huge)).client(t)
	_, err := c.CheckDeletion(context.Background(), "t")
	var e *Error
	if !errors.As(err, &e) || len(e.Message) > 1024 {
		t.Fatalf("message not bounded: %d bytes", len(e.Message))
	}
}

func TestErrorMessageRedactedThenCut(t *testing.T) {
	// The secret straddles the 512-byte cut: redacting after cutting would
	// leave its first half in the message.
	body := `{"status":"error","error":"` + strings.Repeat("é", 250) + testOAuth + strings.Repeat("x", 600) + `"}`
	rec := newRecorder(t, jsonReply(400, body))
	_, err := rec.client(t).CheckDeletion(context.Background(), "t")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatal(err)
	}
	if strings.Contains(e.Message, "oauth-SENT") || !utf8.ValidString(e.Message) || len(e.Message) > 520 {
		t.Fatalf("message %d bytes, valid UTF-8 %v: %q", len(e.Message), utf8.ValidString(e.Message), e.Message[:40])
	}
	got, ok := parseRetryAfter("Wed, 21 Oct 2099 07:28:00 GMT", time.Now())
	if !ok || got > 366*24*time.Hour {
		t.Fatalf("Retry-After date gives %v", got)
	}
}
