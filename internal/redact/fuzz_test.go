package redact

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

// FuzzBody: whatever a hostile server sends, the secret is not in the body
// Body returns, as it comes or with its JSON and percent escapes decoded
// once (what a decoder of the answer would see).
func FuzzBody(f *testing.F) {
	s := New(tok)
	for _, seed := range []string{
		`{"a":"` + tok + `"}`, `{"a":"` + u(tok) + `"}`, `{"` + u(tok) + `":[1,"x"]}`,
		`{"a":"` + pct(tok) + `"`, "<p>" + u(pct(tok)) + "</p>", base64.StdEncoding.EncodeToString([]byte("x" + tok)),
		url.QueryEscape(tok), `\\u0033` + tok[1:], `{"a":"\ud83d\ude00` + u(tok) + `"}`,
		// A later pass eats the start of what an earlier one revealed:
		// "\u3" + u("f") decodes to "\u3f9c…", which decodes to one rune.
		`\u3` + u(tok[1:2]) + tok[2:],
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, _ := s.Body(body)
		if strings.Contains(string(out), tok) || strings.Contains(decodedView(out), tok) {
			t.Fatalf("Body(%q) = %q: the secret is left", body, out)
		}
	})
}
