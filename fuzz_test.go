package mpgdpr

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// Seeds: every response shape ../shared/MIXPANEL_GDPR_FACTS.md lists, and
// the edges around them. Run the fuzzers briefly in CI:
//
//	go test -run='^$' -fuzz='^FuzzDecodeTaskStatus$' -fuzztime=15s .
//	go test -run='^$' -fuzz='^FuzzDecodeCreate$' -fuzztime=15s .
//	go test -run='^$' -fuzz='^FuzzNewError$' -fuzztime=15s .
//
// A plain `go test` runs every seed (and anything saved under
// testdata/fuzz) as a regression test.
var (
	createSeeds = []string{
		`{"status":"ok","results":{"task_id":"abc"}}`,
		`{"status":"ok","results":{"task_id":12345}}`,
		`{"status":"ok","results":[{"status":"PENDING","tracking_id":"1584","project_id":1978118,"compliance_type":"ccpa","disclosure_type":"DATA","date_requested":"2020-03-09T22:28:55.078315","destination_url":null,"requesting_user":"a@b.c","distinct_id_count":1}]}`,
		`{"status":"ok","results":[{"tracking_id":"1"},{"tracking_id":"2"}]}`,
		`{"status":"ok","results":[{"tracking_id":"1"},{"tracking_id":"1"}]}`,
		`{"status":"ok","results":[]}`,
		`{"status":"ok","results":{}}`,
		`{"status":"ok","results":null}`,
		`{"status":"ok","results":"abc"}`,
		`{"status":"ok"}`,
		`{"task_id":"top"}`,
		`[]`, `null`, `""`, `0`, ``, `{`, `<html>ok</html>`,
	}
	statusSeeds = []string{
		// check deletion, the full field list
		`{"status":"ok","results":{"tracking_id":"t1","status":"SUCCESS","requesting_user":"u@mail.com","compliance_type":"GDPR","project_id":1978118,"date_requested":"2020-03-09T22:28:55.078315","distinct_ids":["a","b"]}}`,
		// check deletion, the prose example
		`{"status":"ok","results":{"status":"SUCCESS","result":"","distinct_ids":["a"]}}`,
		// check retrieval: the link as result, results, download_url, quoted
		`{"status":"ok","results":{"status":"SUCCESS","result":"https://storage.example.com/x.zip","distinct_ids":["a"]}}`,
		`{"status":"ok","results":{"status":"SUCCESS","results":"https://s.example.com/z.zip"}}`,
		`{"status":"ok","results":{"status":"SUCCESS","download_url":"https://s.example.com/y.zip"}}`,
		`{"status":"ok","results":{"status":"SUCCESS","result":"\"https://s.example.com/q.zip\""}}`,
		`{"status":"ok","results":{"status":"PENDING","result":"","download_url":""}}`,
		`{"status":"ok","results":{"status":"FAILURE","result":"scan failed"}}`,
		`{"status":"ok","results":{"status":"archived","extra":{"x":1}}}`,
		`{"status":"ok","results":{"status":"PENDING","project_id":"42","distinct_id_count":"3"}}`,
		`{"status":"ok","results":[{"status":"STAGING","tracking_id":"1584","project_id":1978118,"compliance_type":"ccpa","disclosure_type":"DATA","date_requested":"2020-03-09T22:28:55.078315","destination_url":null,"requesting_user":"a@b.c","distinct_id_count":1}]}`,
		`{"status":"STARTED","distinct_ids":["a"]}`,
		`{"status":"ok"}`,
		`{"status":"error","error":"task not found"}`,
		`{"status":"ok","results":{"status":" revoked "}}`,
		`{"status":"ok","results":{"status":"NOT_FOUND"}}`,
		`{"status":"ok","results":{"status":"UNKNOWN"}}`,
		`{"status":"ok","results":{"status":"\u00df"}}`,
		`{"status":"ok","results":{"status":"pending` + "\xff" + `"}}`,
		`{"status":"ok","results":{"status":1}}`,
		`{"status":"ok","results":{"status":["x"]}}`,
		`[]`, `null`, ``, `{`,
	}
	errorSeeds = []struct {
		code int
		body string
	}{
		{400, `{"status":"error","error":"distinct_ids is required"}`},
		{401, `{"status":"error","error":"Invalid token"}`},
		{403, `{"status":"error","error":"no access"}`},
		{404, `{"status":"error","error":"task not found"}`},
		{405, `{"status":"error","error":"cannot cancel"}`},
		{409, `{"status":"error","error":{"conflicting_distinct_ids":["a","b"],"conflicting_task_ids":["t9"]}}`},
		{409, `{"status":"error","error":{"conflicting_distinct_ids":["` + testOAuth + `"],"conflicting_task_ids":["\u0070roject-SENTINEL-51d2e8"]}}`},
		{429, `{"status":"error","error":"rate limited ` + testProject + `"}`},
		{400, `{"status":"error","error":"` + strings.Repeat("p", 505) + testOAuth + `"}`},
		{500, `oops ` + testSecret},
		{502, "<html>\x00\x01</html>"},
		{503, ``},
		{400, `{"status":"error","error":null}`},
		{400, `{"status":"error","error":42}`},
	}
)

// FuzzDecodeTaskStatus: any body either decodes to a task with a non-empty,
// trimmed, upper-case, valid UTF-8 status, or fails with
// ErrMalformedResponse; never a panic.
func FuzzDecodeTaskStatus(f *testing.F) {
	for _, s := range statusSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		task, err := decodeTaskStatus(body)
		if err != nil {
			if task != nil || !errors.Is(err, ErrMalformedResponse) {
				t.Fatalf("error %v with task %+v", err, task)
			}
			return
		}
		s := string(task.Status)
		if s == "" || s != strings.TrimSpace(s) || s != strings.ToUpper(s) || !utf8.ValidString(s) {
			t.Fatalf("status %q", s)
		}
		if task.Status.Terminal() && !task.Status.Known() {
			t.Fatalf("terminal but unknown status %q", s)
		}
		if task.DownloadURL != "" && (!isLink(task.DownloadURL) || strings.HasPrefix(task.DownloadURL, `"`)) {
			t.Fatalf("download url %q", task.DownloadURL)
		}
		again, err := decodeTaskStatus(body)
		if err != nil || again.Status != task.Status || again.TrackingID != task.TrackingID || again.DownloadURL != task.DownloadURL {
			t.Fatalf("decoding is not deterministic: %+v vs %+v (%v)", task, again, err)
		}
	})
}

// FuzzDecodeCreate: any body yields a non-empty task id or
// ErrMalformedResponse.
func FuzzDecodeCreate(f *testing.F) {
	for _, s := range createSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		id, err := decodeCreate(body)
		if err != nil {
			if id != "" || !errors.Is(err, ErrMalformedResponse) {
				t.Fatalf("id %q with error %v", id, err)
			}
			return
		}
		if id == "" {
			t.Fatal("empty task id without an error")
		}
		if again, _ := decodeCreate(body); again != id {
			t.Fatalf("decoding is not deterministic: %q vs %q", id, again)
		}
	})
}

// FuzzNewError: an error answer, cleaned as the pipeline cleans it, gives
// an *Error with the right status, a bounded message, a sane Retry-After
// and no secret in its text, whatever the body and header.
func FuzzNewError(f *testing.F) {
	for _, s := range errorSeeds {
		f.Add(s.code, []byte(s.body), "")
	}
	f.Add(429, []byte(`{"status":"error","error":"slow"}`), "120")
	f.Add(503, []byte(``), "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add(429, []byte(``), "99999999999999999999")
	f.Add(429, []byte(``), "-5")
	f.Add(400, []byte(`{"error":"`+escapeAll(testOAuth)+strings.Repeat("x", maxErrorBody)), "")
	f.Add(400, []byte(`{"error":"`+percentAll(testProject)+`"}`), "")
	f.Add(409, []byte(`{"error":{"conflicting_distinct_ids":["`+escapeAll(testSecret)+`"]}}x`), "")
	c, err := New(testOAuth, testProject, WithAPISecret(testSecret))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, code int, body []byte, retryAfter string) {
		if code < 400 || code > 599 {
			code = 400 + (code%200+200)%200
		}
		resp := &http.Response{StatusCode: code, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(body))}
		resp.Header.Set("Retry-After", retryAfter)
		if err := c.buffer(resp, maxErrorBody); err != nil {
			t.Fatal(err)
		}
		e := newError("CreateDeletion", resp, c.secrets.Deep)
		if e.StatusCode != code || e.Op != "CreateDeletion" {
			t.Fatalf("%+v", e)
		}
		if len(e.Message) > 512+len("…") {
			t.Fatalf("message of %d bytes", len(e.Message))
		}
		// Negative would make the pipeline retry at once. (A far HTTP date
		// is not capped here, only by RetryPolicy.MaxRetryAfter: see
		// testdata/fuzz/FuzzNewError.)
		if e.RetryAfter < 0 {
			t.Fatalf("Retry-After %q read as %v", retryAfter, e.RetryAfter)
		}
		text := e.Error() + " " + strings.Join(e.ConflictingDistinctIDs, " ") + " " + strings.Join(e.ConflictingTaskIDs, " ")
		assertNoSecretDecoded(t, "error", text) // raw, JSON-escaped or percent-encoded
		if !errors.Is(e, ErrServer) && code >= 500 {
			t.Fatalf("%d does not match ErrServer", code)
		}
	})
}

// FuzzCleanedTask: whatever a hostile server puts in a check's answer,
// the secrets in any form (raw, JSON-escaped, percent-encoded) reach
// neither the cleaned body nor any field of the task the client returns,
// and a task id or link that carried one is refused.
func FuzzCleanedTask(f *testing.F) {
	esc := escapeAll(testOAuth)
	for _, s := range statusSeeds {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		`{"status":"ok","results":{"status":"SUCCESS","result":"https://s.example/x?k=` + esc + `"}}`,
		`{"status":"ok","results":{"status":"PENDING","tracking_id":"` + percentAll(testProject) + `"}}`,
		`{"status":"ok","results":{"status":"` + escapeAll(testSecret) + `","requesting_user":"\\` + esc + `"}}`,
		`{"status":"ok","results":{"status":"PENDING","distinct_ids":["` + esc + `"]}` + "\xff",
	} {
		f.Add([]byte(s))
	}
	c, err := New(testOAuth, testProject, WithAPISecret(testSecret))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		resp := &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: -1}
		if err := c.buffer(resp, maxSuccessBody+1); err != nil {
			t.Fatal(err)
		}
		cleaned := wasCleaned(resp)
		b, _ := readBody(resp)
		if !utf8.Valid(b) {
			return // the test's decoder below works on text
		}
		assertNoSecretDecoded(t, "body", string(b))
		task, err := decodeTaskStatus(b)
		if err != nil {
			return
		}
		if err := c.checkTask(task, cleaned); err != nil {
			if !errors.Is(err, ErrMalformedResponse) {
				t.Fatalf("checkTask: %v", err)
			}
			return
		}
		assertNoSecretDecoded(t, "task", fmt.Sprintf("%+v %s", *task, task.Raw))
	})
}
