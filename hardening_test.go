package mpgdpr

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
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

func TestRefusedUnsentIsNeitherRetriedNorUnknown(t *testing.T) {
	tr := &refusingTransport{}
	c, err := New(testOAuth, testProject, WithBaseURL("http://127.0.0.1:1/api/app"),
		WithHTTPClient(&http.Client{Transport: tr}), WithRateLimiter(nil), WithRetryPolicy(fastRetries(5)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateDeletion(context.Background(), DeletionRequest{DistinctIDs: []string{"a"}, ComplianceType: GDPR})
	if err == nil || errors.Is(err, ErrOutcomeUnknown) || !errors.As(err, new(refusedErr)) {
		t.Fatalf("create: err = %v, want the refusal, not an unknown outcome", err)
	}
	if _, err := c.CheckDeletion(context.Background(), "t"); err == nil {
		t.Fatal("check: no error")
	}
	if n := tr.calls.Load(); n != 2 {
		t.Fatalf("%d attempts for 2 refused calls: a refusal was retried", n)
	}
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
	if _, err := c.DownloadExport(context.Background(), h.task(), &buf); err != nil || !bytes.Equal(buf.Bytes(), content) {
		t.Fatalf("err = %v after %d requests", err, len(h.requests()))
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
