package mpgdpr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privacykit/mpgdpr/gen"
)

// TestServerErrors: 503 is retried for checks, and for creates only with a
// Retry-After (CreateRefused); 502 and 504 only for checks (a create gets
// ErrOutcomeUnknown, not a resend); 500 is never retried, and on a create
// its outcome is unknown too. Before the CreateRefused rule, a create
// answered 503 without Retry-After was retried, though a gateway may have
// passed it on.
func TestServerErrors(t *testing.T) {
	for _, tc := range []struct {
		code                    int
		retryAfter              string
		getRetried, postRetried bool
	}{{503, "0", true, true}, {503, "", true, false}, {502, "", true, false}, {504, "", true, false}, {500, "", false, false}} {
		for _, post := range []bool{false, true} {
			name := fmt.Sprintf("%d retry-after=%q post=%v", tc.code, tc.retryAfter, post)
			fail := jsonReply(tc.code, `{"status":"error","error":"down"}`)
			if tc.retryAfter != "" {
				inner := fail
				fail = func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Retry-After", tc.retryAfter)
					inner(w, r)
				}
			}
			rec := newRecorder(t, failFirst(1, fail))
			c, _ := faultClient(t, rec, fastRetries(3))
			retried := tc.getRetried
			call := checkDel
			if post {
				retried, call = tc.postRetried, createDel
			}
			err := call(c, context.Background())
			n := len(rec.requests())
			switch {
			case retried:
				if err != nil || n != 2 {
					t.Errorf("%s: %v after %d requests, want success after 2", name, err, n)
				}
			case post:
				if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrServer) || n != 1 {
					t.Errorf("%s: %v after %d requests, want outcome unknown after 1", name, err, n)
				}
			default:
				if !errors.Is(err, ErrServer) || errors.Is(err, ErrOutcomeUnknown) || n != 1 {
					t.Errorf("%s: %v after %d requests, want a server error after 1", name, err, n)
				}
			}
		}
	}
	// Retries run out: the last 503 becomes the error.
	rec := newRecorder(t, jsonReply(503, `{"status":"error","error":"down"}`))
	c, logs := faultClient(t, rec, fastRetries(4))
	var e *Error
	if err := checkDel(c, context.Background()); !errors.As(err, &e) || e.StatusCode != 503 {
		t.Fatalf("err = %v", err)
	}
	if n := len(rec.requests()); n != 4 || len(logs.retries(t)) != 3 {
		t.Fatalf("%d requests, %d retries logged", n, len(logs.retries(t)))
	}
}

// TestConnectionResets: a reset before any answer, after the request body
// was read, or in the middle of the answer's body: checks are retried and
// succeed; creates are not re-sent and report an unknown outcome.
func TestConnectionResets(t *testing.T) {
	midBody := func(w http.ResponseWriter, r *http.Request) {
		conn, buf, _ := w.(http.Hijacker).Hijack()
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"status\":\"ok\",\"res")
		_ = buf.Flush()
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = conn.Close()
	}
	faults := map[string]func(http.ResponseWriter, *http.Request){
		"before answer":   func(w http.ResponseWriter, _ *http.Request) { resetConn(w) },
		"after body read": func(w http.ResponseWriter, r *http.Request) { _, _ = io.ReadAll(r.Body); resetConn(w) },
		"mid answer":      midBody,
	}
	for name, fault := range faults {
		t.Run(name, func(t *testing.T) {
			rec := newRecorder(t, failFirst(1, fault))
			c, logs := faultClient(t, rec, fastRetries(3))
			if err := checkDel(c, context.Background()); err != nil {
				t.Fatalf("check: %v", err)
			}
			if n := len(rec.requests()); n != 2 || len(logs.retries(t)) != 1 {
				t.Fatalf("check: %d requests, want 2", n)
			}
			rec2 := newRecorder(t, failFirst(1, fault))
			c2, _ := faultClient(t, rec2, fastRetries(3))
			err := createDel(c2, context.Background())
			var ou *OutcomeUnknownError
			if !errors.As(err, &ou) || ou.Op != "CreateDeletion" {
				t.Fatalf("create: err = %v, want *OutcomeUnknownError", err)
			}
			if n := len(rec2.requests()); n != 1 {
				t.Fatalf("create sent %d times", n)
			}
		})
	}
}

// TestDialErrorsRetried: a request that never left (the dial failed) is
// retried, a create too; when dialling never works the error says so and
// is not an unknown outcome.
func TestDialErrorsRetried(t *testing.T) {
	rec := newRecorder(t, okReply)
	c, logs := faultClient(t, rec, fastRetries(3), WithHTTPClient(flakyDialer(2)))
	if err := createDel(c, context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.requests()); n != 1 || len(logs.retries(t)) != 2 {
		t.Fatalf("%d creates arrived, %d retries logged", n, len(logs.retries(t)))
	}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	_ = ln.Close()
	logs2 := &logSink{}
	c2, err := New(testOAuth, testProject, WithBaseURL("http://"+addr+"/api/app"), WithRateLimiter(nil), WithRetryPolicy(fastRetries(3)), WithLogger(logs2.logger()))
	if err != nil {
		t.Fatal(err)
	}
	err = createDel(c2, context.Background())
	var op *net.OpError
	if err == nil || errors.Is(err, ErrOutcomeUnknown) || !errors.As(err, &op) || !strings.Contains(err.Error(), "giving up after 3 attempts") {
		t.Fatalf("err = %v", err)
	}
	if n := len(logs2.retries(t)); n != 2 {
		t.Fatalf("%d retries logged", n)
	}
}

// TestCreateCancelled: a create cancelled before it could connect is known
// not to have been sent (even when the dialer reports the cancellation
// without a dial error), as is one whose TLS handshake failed; one
// cancelled while the server holds it is an unknown outcome, and still
// matches context.Canceled.
func TestCreateCancelled(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	c, _ := faultClient(t, rec, fastRetries(3))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := createDel(c, ctx); !errors.Is(err, context.Canceled) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("cancelled before sending: %v", err)
	}
	// net/http dials with a context of its own, not the request's: stop
	// the dial when the test ends so that it does not outlive it.
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	stuckDial := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-stop:
				return nil, context.Canceled
			}
		},
	}}
	c2, _ := faultClient(t, rec, fastRetries(3), WithHTTPClient(stuckDial))
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	if err := createDel(c2, ctx); !errors.Is(err, context.Canceled) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("cancelled while dialling: %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	err := createDel(c, ctx)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("cancelled in flight: %v", err)
	}
	if n := len(rec.requests()); n != 1 {
		t.Fatalf("%d creates arrived", n)
	}

	// An untrusted certificate: the handshake fails before anything is
	// sent, and a retry would fail the same way.
	var reached atomic.Int64
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Add(1) }))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake failure is expected
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	logs := &logSink{}
	c3, err := New(testOAuth, testProject, WithBaseURL(tlsSrv.URL+"/api/app"), WithRateLimiter(nil), WithRetryPolicy(fastRetries(3)), WithLogger(logs.logger()))
	if err != nil {
		t.Fatal(err)
	}
	err = createDel(c3, context.Background())
	if err == nil || errors.Is(err, ErrOutcomeUnknown) || reached.Load() != 0 || len(logs.retries(t)) != 0 {
		t.Fatalf("bad certificate: %v, %d reached, %d retries", err, reached.Load(), len(logs.retries(t)))
	}
	assertNoSecret(t, err.Error())
}

// TestTimeouts: a slow answer (headers, or the body after them) times out
// under the http.Client's Timeout; a check is retried, a create reports an
// unknown outcome. A context deadline ends a slow body promptly.
func TestTimeouts(t *testing.T) {
	// The holds end when the client goes away; they are long so that only
	// a timeout or deadline can end a call with these errors.
	slowHeaders := func(w http.ResponseWriter, r *http.Request) { holdUntil(r, time.Minute) }
	slowBody := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "200")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, `{"status":"ok",`)
		w.(http.Flusher).Flush()
		holdUntil(r, time.Minute)
	}
	for name, slow := range map[string]func(http.ResponseWriter, *http.Request){"headers": slowHeaders, "body": slowBody} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t, failFirst(1, slow))
			c, _ := faultClient(t, rec, fastRetries(3), WithHTTPClient(&http.Client{Timeout: 150 * time.Millisecond}))
			if err := checkDel(c, context.Background()); err != nil {
				t.Fatalf("check: %v", err)
			}
			if n := len(rec.requests()); n != 2 {
				t.Fatalf("check: %d requests", n)
			}
			rec2 := newRecorder(t, failFirst(1, slow))
			c2, _ := faultClient(t, rec2, fastRetries(3), WithHTTPClient(&http.Client{Timeout: 150 * time.Millisecond}))
			if err := createDel(c2, context.Background()); !errors.Is(err, ErrOutcomeUnknown) || len(rec2.requests()) != 1 {
				t.Fatalf("create: %v after %d requests", err, len(rec2.requests()))
			}
			rec3 := newRecorder(t, slow)
			c3, _ := faultClient(t, rec3, fastRetries(3))
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
			defer cancel()
			var err error
			returnsWithin(t, 30*time.Second, func() { err = checkDel(c3, ctx) })
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("deadline: %v", err)
			}
		})
	}
}

// countingTransport counts the response body bytes the client reads.
type countingTransport struct {
	rt   http.RoundTripper
	read atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(r)
	if resp != nil {
		resp.Body = &countingBody{resp.Body, &c.read}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// TestHugeBodies: a 10 MiB error body costs at most 64 KiB of reading,
// retried ones at most 4 KiB each; a success body over 8 MiB is refused
// after reading just past the limit.
func TestHugeBodies(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("x", 10<<20)
	for _, tc := range []struct {
		name  string
		code  int
		limit int64
		want  error
	}{
		{"error", 400, 64 << 10, ErrBadRequest},
		{"retried 503", 503, 3*(4<<10) + 64<<10, ErrServer},
		{"success", 200, maxSuccessBody + 1, ErrMalformedResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(t, jsonReply(tc.code, huge))
			ct := &countingTransport{rt: http.DefaultTransport.(*http.Transport).Clone()}
			c, _ := faultClient(t, rec, fastRetries(4), WithHTTPClient(&http.Client{Transport: ct}))
			err := checkDel(c, context.Background())
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v", err)
			}
			if got := ct.read.Load(); got > tc.limit {
				t.Fatalf("read %d bytes of a 10 MiB body, limit %d", got, tc.limit)
			} else {
				t.Logf("read %d bytes of a 10 MiB body", got)
			}
			if len(err.Error()) > 2048 {
				t.Fatalf("error text of %d bytes", len(err.Error()))
			}
		})
	}
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

// TestInvalidHeaderIsPermanent: a header net/http cannot send (set by a
// per-call editor) fails at once: never sent, never retried, not an
// unknown outcome, and the value is not shown.
func TestInvalidHeaderIsPermanent(t *testing.T) {
	rec := newRecorder(t, okReply)
	c, logs := faultClient(t, rec, fastRetries(5))
	badHeader := func(_ context.Context, req *http.Request) error {
		req.Header["X-Note"] = []string{"line1\nSENTINEL-value"}
		return nil
	}
	_, err := c.Raw().CheckDeletion(context.Background(), "t1", nil, badHeader)
	if !errors.Is(err, ErrInvalidInput) || strings.Contains(err.Error(), "SENTINEL-value") || !strings.Contains(err.Error(), "X-Note") {
		t.Fatalf("check: %v", err)
	}
	_, err = c.Raw().CreateDeletion(context.Background(), nil, gen.CreateDeletionRequest{DistinctIds: []string{"a"}, ComplianceType: "GDPR"}, badHeader)
	if err == nil || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("create: %v", err)
	}
	if n := len(logs.retries(t)); n != 0 {
		t.Errorf("%d retries of a request that cannot be sent", n)
	}
	if n := len(rec.requests()); n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
}
