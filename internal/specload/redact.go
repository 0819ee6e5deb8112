package specload

import (
	"net/http"
	"net/url"
	"strings"
)

// Redactor returns a function that removes from a text the credentials req
// carries (the token query parameter, the Authorization header and its
// bearer token, a URL password) and every extra secret, raw or URL-escaped.
// The fake server and the validating transport both run violation reasons
// through it before keeping them.
func Redactor(req *http.Request, extra ...string) func(string) string {
	secrets := append([]string(nil), extra...)
	secrets = append(secrets, req.URL.Query()["token"]...)
	for _, h := range req.Header.Values("Authorization") {
		_, tok, _ := strings.Cut(h, " ")
		secrets = append(secrets, h, tok)
	}
	if pw, ok := req.URL.User.Password(); ok {
		secrets = append(secrets, pw)
	}
	return func(s string) string {
		for _, x := range secrets {
			if len(x) < 4 { // too short to be a credential; replacing would garble the text
				continue
			}
			s = strings.ReplaceAll(s, x, "REDACTED")
			if e := url.QueryEscape(x); e != x {
				s = strings.ReplaceAll(s, e, "REDACTED")
			}
			if e := url.PathEscape(x); e != x {
				s = strings.ReplaceAll(s, e, "REDACTED")
			}
		}
		return s
	}
}
