package mpgdpr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/gen"
)

// TestCancelRetriedAfterSuccess: a cancel whose first answer was lost meets
// 405 on the retry; the task is REVOKED, so the call succeeds.
func TestCancelRetriedAfterSuccess(t *testing.T) {
	var deletes atomic.Int32
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodDelete:
			if deletes.Add(1) == 1 { // cancelled, but the answer never arrives
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.Close()
				return
			}
			jsonReply(405, `{"status":"error","error":"task already revoked"}`)(w, r)
		default:
			jsonReply(200, `{"status":"ok","results":{"status":"REVOKED"}}`)(w, r)
		}
	})
	if err := rec.client(t).CancelDeletion(context.Background(), "d1"); err != nil {
		t.Fatalf("err = %v, want success (the task is REVOKED)", err)
	}
	// A 405 for a task that is really running stays an error.
	rec = newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			jsonReply(405, `{"status":"error","error":"started"}`)(w, r)
			return
		}
		jsonReply(200, `{"status":"ok","results":{"status":"STARTED"}}`)(w, r)
	})
	if err := rec.client(t).CancelDeletion(context.Background(), "d1"); !errors.Is(err, ErrCannotCancel) {
		t.Fatalf("err = %v, want ErrCannotCancel", err)
	}
}

// refusingTransport refuses every request before sending it, as
// contract.Transport does in strict mode for a request the spec forbids.
type refusingTransport struct{ calls atomic.Int32 }

type refusedErr struct{}

func (refusedErr) Error() string     { return "request violates the spec" }
func (refusedErr) RequestSent() bool { return false }
func (t *refusingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	t.calls.Add(1)
	return nil, refusedErr{}
}

// TestDownloadUnlimitedAttempts: MaxAttempts < 0 (unlimited, bounded by
// MaxElapsed) still retries downloads.
func TestDownloadUnlimitedAttempts(t *testing.T) {
	content := exportBytes(8 << 10)
	h := newExportHost(t, content, "500", "500", "ok")
	c, err := New(testOAuth, testProject, WithRateLimiter(nil),
		WithRetryPolicy(RetryPolicy{MaxAttempts: -1, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, MaxElapsed: 5 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := c.DownloadExport(context.Background(), h.task(), &buf, dl); err != nil || !bytes.Equal(buf.Bytes(), content) {
		t.Fatalf("err = %v after %d requests", err, len(h.requests()))
	}
}

// TestValidateDistinctIDInvisible: an ID with a character that is invisible
// or means nothing on its own names no one in Mixpanel. ValidateDistinctID
// and every call that sends IDs refuse it before anything is sent, naming
// the character and its position, never the ID.
func TestValidateDistinctIDInvisible(t *testing.T) {
	cases := map[string]string{
		"abc\u200bdef":     "U+200B ZERO WIDTH SPACE (an invisible format character) at rune 4",
		"\ufeffuser-1":     "U+FEFF ZERO WIDTH NO-BREAK SPACE (an invisible format character) at rune 1",
		"user\u200c":       "U+200C ZERO WIDTH NON-JOINER",
		"us\u200der":       "U+200D ZERO WIDTH JOINER",
		"u\u2060ser":       "U+2060 WORD JOINER",
		"user\u202e1":      "U+202E RIGHT-TO-LEFT OVERRIDE",
		"\u2066user\u2069": "U+2066 LEFT-TO-RIGHT ISOLATE",
		"us\u00adr":        "U+00AD SOFT HYPHEN",
		"user\r":           "U+000D (a control character) at rune 5",
		"a\u2028b":         "U+2028 LINE SEPARATOR",
		"a\ue000b":         "U+E000 (a private-use character)",
		"a\uffffb":         "U+FFFF (a noncharacter)",
		"a\U000e0001b":     "U+E0001 LANGUAGE TAG",
		"a\u0378b":         "U+0378 (a code point unassigned in Unicode",
	}
	for id, want := range cases {
		err := ValidateDistinctID(id)
		var ie *InputError
		if !errors.As(err, &ie) || !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), want) {
			t.Errorf("%+q: %v, want %q", id, err, want)
			continue
		}
		// The error never carries the ID, nor any visible part of it.
		if strings.Contains(err.Error(), id) || strings.Contains(err.Error(), "user") || strings.Contains(err.Error(), "abc") {
			t.Errorf("%+q: the error shows the id: %v", id, err)
		}
	}
	for _, ok := range []string{"alice", "user@example.com", "ü/ñ", "日本語", "a b", "emoji 😀", "$device:18f3c2", "e\u0301"} {
		if err := ValidateDistinctID(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}

	rec := newRecorder(t, okReply)
	c := rec.client(t)
	ctx := context.Background()
	bad := []string{"alice", "bob\u200b"}
	if _, err := c.CreateDeletion(ctx, DeletionRequest{DistinctIDs: bad, ComplianceType: GDPR}); !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "#2") || !strings.Contains(err.Error(), "U+200B") {
		t.Errorf("CreateDeletion: %v", err)
	}
	if _, err := c.CreateRetrieval(ctx, RetrievalRequest{DistinctIDs: bad, ComplianceType: GDPR}); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("CreateRetrieval: %v", err)
	}
	res, err := c.DeleteAll(ctx, bad, GDPR)
	if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "#2") || strings.Contains(err.Error(), "bob") || len(res.Unsent) != 2 {
		t.Errorf("DeleteAll: %v", err)
	}
	if _, err := c.CheckDeletion(ctx, "task\u200b1"); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("CheckDeletion with an invisible character: %v", err)
	}
	if n := len(rec.requests()); n != 0 {
		t.Fatalf("%d requests sent for invisible IDs", n)
	}
}

// TestNewRefusesUntrimmedTokens: a token read from a file keeps its
// newline; net/http would refuse it as a header value on every call,
// which looked like a network failure and was retried for minutes. New
// refuses it, naming which credential and never its value.
func TestNewRefusesUntrimmedTokens(t *testing.T) {
	for _, tc := range []struct {
		oauth, project, secret, field string
	}{
		{testOAuth + "\n", testProject, "", "OAuth token"},
		{" " + testOAuth, testProject, "", "OAuth token"},
		{testOAuth, testProject + "\r\n", "", "project token"},
		{testOAuth, "\t" + testProject, "", "project token"},
		{testOAuth, testProject, testSecret + "\n", "API secret"},
		{"oauth\x00token", testProject, "", "OAuth token"},
	} {
		_, err := New(tc.oauth, tc.project, WithAPISecret(tc.secret))
		if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("New(%q, %q, secret %q) = %v, want an error naming the %s", tc.oauth, tc.project, tc.secret, err, tc.field)
			continue
		}
		assertNoSecret(t, err.Error())
		if strings.Contains(err.Error(), "oauth") && !strings.Contains(err.Error(), "OAuth") {
			t.Errorf("error shows the token: %v", err)
		}
	}
	if _, err := New(testOAuth, testProject, WithUserAgent("agent\n")); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("a User-Agent with a newline accepted: %v", err)
	}
}

// TestRawEditorCannotRedirectCredentials: a per-call RequestEditorFn runs
// after the client put its credentials on the request; one that points the
// request at another host must not take them along. The pipeline checks
// the destination right before sending.
func TestRawEditorCannotRedirectCredentials(t *testing.T) {
	rec := newRecorder(t, okReply)
	evil := newRecorder(t, okReply)
	c := rec.client(t)
	evilURL, _ := url.Parse(evil.srv.URL)
	for name, edit := range map[string]gen.RequestEditorFn{
		"host": func(_ context.Context, req *http.Request) error { req.URL.Host = evilURL.Host; return nil },
		"url": func(_ context.Context, req *http.Request) error {
			u := *evilURL
			u.Path, u.RawQuery = req.URL.Path, req.URL.RawQuery
			req.URL = &u
			return nil
		},
		"userinfo": func(_ context.Context, req *http.Request) error {
			req.URL.User = url.UserPassword("u", "p")
			return nil
		},
		"Host": func(_ context.Context, req *http.Request) error { req.Host = evilURL.Host; return nil },
	} {
		_, err := c.Raw().CheckDeletion(context.Background(), "t1", nil, edit)
		if err == nil || !strings.Contains(err.Error(), "refusing to send credentials") {
			t.Errorf("%s: %v", name, err)
		}
		if err != nil {
			assertNoSecret(t, err.Error())
		}
	}
	if n := len(evil.requests()) + len(rec.requests()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}

// escapeAll spells s as JSON \u escapes, one per byte (the secrets are ASCII).
func escapeAll(s string) string {
	var b strings.Builder
	for _, r := range s {
		fmt.Fprintf(&b, `\u%04X`, r)
	}
	return b.String()
}

// percentAll spells s as %XX escapes, one per byte.
func percentAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}

var escapeRE = regexp.MustCompile(`\\u([0-9a-fA-F]{4})`)

// assertNoSecretDecoded is assertNoSecret on s and on what its JSON \u
// escapes and percent escapes decode to: the test's own decoding, not the
// client's.
func assertNoSecretDecoded(t *testing.T, what, s string) {
	t.Helper()
	for range 3 {
		s = escapeRE.ReplaceAllStringFunc(s, func(m string) string {
			n, _ := strconv.ParseUint(m[2:], 16, 32)
			return string(rune(n))
		})
	}
	forms := []string{s}
	if d, err := url.QueryUnescape(s); err == nil {
		forms = append(forms, d)
	}
	for _, f := range forms {
		for _, secret := range []string{testOAuth, testProject, testSecret} {
			if strings.Contains(f, secret) {
				t.Fatalf("%s: secret %q leaked in %q", what, secret, s)
			}
		}
	}
}

// TestEscapedSecretsNeverDecoded: a hostile server sends the client's own
// secrets back JSON-escaped (\u006F…) or percent-encoded. Success bodies
// were redacted byte-wise only, so the secret survived decoding into Task
// fields, Task.Raw, the Raw() client's parsed answers and error strings,
// and a download link carrying one would have taken it to the storage
// host. Now a task id or link carrying a secret is a malformed answer, and
// no other decoded value holds one.
func TestEscapedSecretsNeverDecoded(t *testing.T) {
	esc := escapeAll(testOAuth)
	var body atomic.Value
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		code, b := 200, body.Load().(string)
		if strings.HasPrefix(b, "ERR") {
			code, b = 400, b[3:]
		}
		jsonReply(code, b)(w, r)
	})
	c, _ := faultClient(t, rec, NoRetries())
	ctx := context.Background()
	check := func(b string) (*Task, error) {
		body.Store(b)
		return c.CheckRetrieval(ctx, "t1")
	}

	// Refused: a link or task id that carries a secret, in any form.
	for name, b := range map[string]string{
		"escaped link":     `{"status":"ok","results":{"status":"SUCCESS","result":"https://storage.example/e.zip?sig=` + esc + `"}}`,
		"percent link":     `{"status":"ok","results":{"status":"SUCCESS","download_url":"https://storage.example/e.zip?sig=` + percentAll(testProject) + `"}}`,
		"escaped api link": `{"status":"ok","results":{"status":"SUCCESS","results":"https://storage.example/` + escapeAll(testSecret) + `.zip"}}`,
		"raw link":         `{"status":"ok","results":{"status":"SUCCESS","download_url":"https://storage.example/e.zip?t=` + testProject + `"}}`,
		"escaped id":       `{"status":"ok","results":{"status":"PENDING","tracking_id":"` + esc + `"}}`,
		"destination":      `{"status":"ok","results":{"status":"PENDING","destination_url":"https://x.example/?k=` + percentAll(testSecret) + `"}}`,
	} {
		tk, err := check(b)
		if !errors.Is(err, ErrMalformedResponse) || tk != nil {
			t.Errorf("%s: %+v, %v; want a malformed answer", name, tk, err)
			continue
		}
		assertNoSecretDecoded(t, name, err.Error())
	}

	// Cleaned: a secret anywhere else is replaced, in every decoded value.
	tk, err := check(`{"status":"ok","results":{"status":"PENDING","tracking_id":"t1","requesting_user":"` + esc + `","result":"` + escapeAll(testSecret) + `","distinct_ids":["a","` + esc + `"],"` + esc + `":1}}`)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecretDecoded(t, "task", fmt.Sprintf("%+v %s", *tk, tk.Raw))
	if tk.TrackingID != "t1" || tk.Status != StatusPending || tk.DistinctIDs[0] != "a" {
		t.Errorf("task %+v", tk)
	}
	tk, err = check(`{"status":"ok","results":{"status":"PENDING","tracking_id":"t2","extra":"` + percentAll(testOAuth) + `"}}`)
	if err != nil || tk.TrackingID != "t2" {
		t.Fatalf("percent-encoded secret in a field of its own: %+v, %v", tk, err)
	}
	assertNoSecretDecoded(t, "percent task", fmt.Sprintf("%+v %s", *tk, tk.Raw))
	// A status made of a secret never reaches an error string either.
	body.Store(`{"status":"ok","results":{"status":"` + esc + `"}}`)
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = c.WaitRetrieval(wctx, "t1", WithPollInterval(time.Millisecond, time.Millisecond))
	cancel()
	if err == nil {
		t.Fatal("WaitRetrieval ended")
	}
	assertNoSecretDecoded(t, "wait error", err.Error())

	// A create accepted under a tainted id: the outcome is unknown (a task
	// may exist), and the id is never returned.
	body.Store(`{"status":"ok","results":{"task_id":"task-` + esc + `"}}`)
	id, err := c.CreateDeletion(ctx, DeletionRequest{DistinctIDs: []string{"a"}, ComplianceType: GDPR})
	if id != "" || !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrMalformedResponse) {
		t.Errorf("create: %q, %v", id, err)
	}

	// The Raw() client's parsed answers are cleaned too, of escaped and
	// percent-encoded secrets alike.
	body.Store(`{"status":"ok","results":{"status":"PENDING","download_url":"https://s.example/?k=` + percentAll(testSecret) + `","requesting_user":"` + esc + `"}}`)
	rr, err := c.Raw().CheckRetrievalWithResponse(ctx, "t1", nil)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecretDecoded(t, "raw body", string(rr.Body))
	if rr.JSON200 != nil {
		b, _ := json.Marshal(rr.JSON200)
		assertNoSecretDecoded(t, "raw parsed", string(b))
	}

	// Error bodies that are not valid JSON: cut at the 64 KiB limit, or
	// with one stray byte. Their escapes are decoded before redacting.
	for name, b := range map[string]string{
		"cut":        `ERR{"status":"error","error":"` + esc + strings.Repeat("x", maxErrorBody),
		"stray byte": `ERR{"status":"error","error":"bad token ` + esc + `"}}`,
		"text":       `ERRtoken \u006` + `F` + esc[6:] + ` refused`,
		"double":     `ERR{"status":"error","error":"` + strings.ReplaceAll(esc, `\`, `\\`) + `"}`,
	} {
		body.Store(b)
		_, err := c.CheckDeletion(ctx, "t1")
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%s: %v", name, err)
		}
		assertNoSecretDecoded(t, name, err.Error())
		rr, err := c.Raw().CheckDeletionWithResponse(ctx, "t1", nil)
		if err != nil { // the generated parser refuses a body that is not JSON
			assertNoSecretDecoded(t, name+" raw error", err.Error())
			continue
		}
		assertNoSecretDecoded(t, name+" raw", string(rr.Body))
	}
}
