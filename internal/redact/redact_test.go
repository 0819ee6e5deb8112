package redact

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// The secrets of the table: realistic shapes, one with characters every
// escaping changes.
const (
	tok    = "3f9c2a1b7d4e6f8091a2b3c4d5e6f708"
	odd    = `s3c/r+e t"&<x>`
	bearer = "Zm9vYmFyLW9hdXRoLXRva2Vu"
)

// TestString is the one table every former redactor's cases went into:
// the library's (auth.go, transport.go, task.go, download.go, errors.go),
// internal/specload's Redactor (fake server, contract transport), the CLI's
// output writer (cmd/mpgdpr/cli.go) and export's entry errors.
func TestString(t *testing.T) {
	s := New(tok, odd, bearer)
	b64 := func(enc *base64.Encoding, v string) string { return enc.EncodeToString([]byte(v)) }
	jsonEsc := func(v string) string { j, _ := json.Marshal(v); return string(j[1 : len(j)-1]) }
	for _, tc := range []struct{ name, in, want string }{
		{"none", "nothing secret here", "nothing secret here"},
		{"raw", "a " + tok + " b", "a REDACTED b"},
		{"raw twice", tok + tok, "REDACTEDREDACTED"},
		{"query-escaped", "q=" + url.QueryEscape(odd), "q=REDACTED"},
		{"path-escaped", "/tasks/" + url.PathEscape(odd), "/tasks/REDACTED"},
		{"Go-quoted (export's %q names)", strconv.Quote("entry " + odd), `"entry REDACTED"`},
		{"JSON as encoding/json writes it", jsonEsc(odd), "REDACTED"},
		{"base64 std", b64(base64.StdEncoding, odd), "REDACTED"},
		{"base64 URL", b64(base64.URLEncoding, odd), "REDACTED"},
		{"base64 raw std", "x" + b64(base64.RawStdEncoding, tok) + "x", "xREDACTEDx"},
		{"base64 raw URL", b64(base64.RawURLEncoding, odd), "REDACTED"},
		{"bearer header (CLI sentinel)", "x Bearer " + bearer + " y", "x Bearer REDACTED y"},
		{"short value kept (under MinLen)", "en eng", "en eng"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := s.String(tc.in)
			if got != tc.want {
				t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if b, _ := s.Bytes([]byte(tc.in)); string(b) != got {
				t.Errorf("Bytes(%q) = %q, String gives %q", tc.in, b, got)
			}
			if s.Contains(tc.in) != (got != tc.in) {
				t.Errorf("Contains(%q) = %v, String changed it: %v", tc.in, s.Contains(tc.in), got != tc.in)
			}
		})
	}
}

// TestBase64AnyOffset: a secret inside a longer base64 text (a Basic
// header's user:secret) is found whatever its offset, leaving at most two
// bytes of it either side.
func TestBase64AnyOffset(t *testing.T) {
	s := New(tok)
	for pre := range 6 {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding} {
			text := enc.EncodeToString([]byte(strings.Repeat("p", pre) + tok + "suffix"))
			if got := s.String(text); !strings.Contains(got, Mask) {
				t.Errorf("prefix %d: %q not masked", pre, text)
			}
		}
	}
}

func TestMinLen(t *testing.T) {
	if !New("abc").Empty() || !New("", "").Empty() || New("abcd").Empty() {
		t.Fatal("values under MinLen bytes are not secrets; MinLen and longer are")
	}
	if got := New("abcd").String("xabcdx"); got != "xREDACTEDx" {
		t.Errorf("a MinLen-byte secret: %q", got)
	}
	var nilSet *Set
	if nilSet.String("abcd") != "abcd" || nilSet.Contains("abcd") || !nilSet.Empty() {
		t.Error("a nil set holds no secret")
	}
	if s := New("abcd").With("efgh", "abcd"); s.String("abcd efgh") != "REDACTED REDACTED" || len(s.secrets) != 2 {
		t.Errorf("With: %v", s.secrets)
	}
}

// TestDeep: the library's redactDeep cases, values decoded from an answer.
func TestDeep(t *testing.T) {
	s := New(tok, odd)
	for _, tc := range []struct{ name, in string }{
		{"JSON escapes", "id " + u(tok)},
		{"percent escapes", "https://x/?a=" + pct(tok)},
		{"percent inside JSON escapes", u(pct(odd))},
		{"a broken escape beside", "%zz " + pct(tok) + " \\q"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.Deep(tc.in); !strings.Contains(got, Mask) || strings.Contains(got, tok) || strings.Contains(got, odd) {
				t.Errorf("Deep(%q) = %q", tc.in, got)
			}
			if !s.Contains(tc.in) || !s.ContainsBytes([]byte(tc.in)) {
				t.Errorf("Contains(%q) = false", tc.in)
			}
		})
	}
	if s.Deep(`plain \u0041 and %41`) != `plain \u0041 and %41` || s.Contains(`a%41\u0041`) {
		t.Error("escapes without a secret are left as they are")
	}
}

// TestBody: the library's cleanBody cases, an answer body before it is
// decoded.
func TestBody(t *testing.T) {
	s := New(tok)
	for _, tc := range []struct {
		name, in string
		valid    bool // still valid JSON after
	}{
		{"raw in JSON", `{"a":"` + tok + `"}`, true},
		{"JSON-escaped value", `{"a":"` + u(tok) + `"}`, true},
		{"JSON-escaped key", `{"` + u(tok) + `":1}`, true},
		{"escape of an escape", `{"a":"` + strings.ReplaceAll(u(tok), `\`, `\\`) + `"}`, true},
		{"percent-encoded in JSON", `{"a":"https://x/?t=` + pct(tok) + `"}`, true},
		{"not valid JSON (cut)", `{"a":"` + u(tok) + `","b":`, false},
		{"a text page", "<html>" + u(tok) + "</html>", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, found := s.Body([]byte(tc.in))
			if !found || strings.Contains(decodedView(out), tok) || !strings.Contains(string(out), Mask) {
				t.Errorf("Body(%s) = %s, %v", tc.in, out, found)
			}
			if tc.valid && !json.Valid(out) {
				t.Errorf("Body(%s) = %s: no longer valid JSON", tc.in, out)
			}
		})
	}
	in := []byte(`{"status":"ok","results":{"task_id":"a\u0041%41"}}`)
	if out, found := s.Body(in); found || &out[0] != &in[0] {
		t.Error("a body without a secret is returned as is, not copied")
	}
}

// TestURL: the worker's redactURL (evidence) and its Postgres test
// helper's cases, and the library's token parameter.
func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"sqlite:worker.db", "sqlite:worker.db"},
		{"postgres://dsr:hunter2@db.internal:5432/dsr?sslmode=disable", "postgres://dsr:REDACTED@db.internal:5432/dsr?sslmode=disable"},
		{"postgres://dsr:p@ss@db/dsr", "postgres://dsr:REDACTED@db/dsr"},
		{"https://" + tok + "@api.example.com/x", "https://REDACTED@api.example.com/x"},
		{"https://x.example.com/api/app/data-retrievals/v3.0?token=" + tok + "&a=1", "https://x.example.com/api/app/data-retrievals/v3.0?token=REDACTED&a=1"},
		{"postgres://db/dsr?password=hunter2&sslpassword=x&application_name=w#f", "postgres://db/dsr?password=REDACTED&sslpassword=REDACTED&application_name=w#f"},
		{"https://bucket.s3/x.zip?X-Amz-Signature=abc&X-Amz-Credential=k&X-Amz-Expires=60", "https://bucket.s3/x.zip?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&X-Amz-Expires=60"},
		{`failed to connect to "postgres://u:pw@h/db": refused; then 'mysql://a:b@c'`, `failed to connect to "postgres://u:REDACTED@h/db": refused; then 'mysql://a:REDACTED@c'`},
		{"no url at all", "no url at all"},
	} {
		if got := URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestRequest: specload's Redactor cases, the credentials a request carries.
func TestRequest(t *testing.T) {
	req, _ := http.NewRequest("GET", "https://u:"+url.PathEscape(odd)+"@x/v3.0/"+url.PathEscape(odd)+"?token="+tok, nil)
	req.Header.Set("Authorization", "Bearer "+bearer)
	s := Request(req, "extra-secret")
	for _, in := range []string{tok, odd, bearer, "Bearer " + bearer, "extra-secret", url.PathEscape(odd), url.QueryEscape(odd)} {
		if got := s.String("<" + in + ">"); got != "<REDACTED>" {
			t.Errorf("Request set leaves %q: %q", in, got)
		}
	}
	short, _ := http.NewRequest("GET", "https://x/?token=ab", nil)
	if got := Request(short).String("a tab b"); got != "a tab b" {
		t.Errorf("a value under MinLen is no secret: %q", got)
	}
}

func TestSecretKey(t *testing.T) {
	for name, want := range map[string]bool{"token": true, "API_KEY": true, "sslpassword": true, "X-Amz-Signature": true, "Authorization": true, "sslmode": false, "a": false, "distinct_id": false} {
		if SecretKey(name) != want {
			t.Errorf("SecretKey(%q) = %v", name, !want)
		}
	}
}

// u writes every character of v as a JSON \uXXXX escape.
func u(v string) string {
	var b strings.Builder
	for _, r := range v {
		b.WriteString(`\u` + strconv.FormatInt(int64(r)+0x10000, 16)[1:])
	}
	return b.String()
}

// pct writes every byte of v as a percent escape.
func pct(v string) string {
	var b strings.Builder
	for i := range len(v) {
		b.WriteString("%" + strings.ToUpper(strconv.FormatInt(int64(v[i])+0x100, 16)[1:]))
	}
	return b.String()
}
