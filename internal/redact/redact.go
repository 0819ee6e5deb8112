// Package redact is the one place secrets are kept out of text: errors, log
// lines, reports, written files and response bodies, in every module of
// this repository (the library, the CLI, the worker, the fake server and
// the contract transport all use it).
//
// One rule set: a Set replaces each of its secrets by Mask in every literal
// form it can take in text (see Forms: raw, query-escaped, path-escaped,
// Go-quoted, JSON-escaped, and base64 in the standard and URL alphabets,
// padded or not, also inside a longer base64 text). Deep, Contains and Body
// also look through escapes a literal match cannot see: JSON string escapes
// (\u0053…, any mix) and percent escapes, decoded leniently so that a
// deliberately broken escape elsewhere does not hide one.
//
// One minimum length: a value shorter than MinLen bytes is not treated as a
// secret. Real credentials are far longer (Mixpanel's tokens and secrets
// are 32 characters), and replacing a two-letter value everywhere would
// garble every message without protecting anything.
package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Mask replaces a secret.
const Mask = "REDACTED"

// MinLen is the shortest value, in bytes, a Set treats as a secret.
const MinLen = 4

// minBase64Core is the shortest base64 text (in characters) taken as a
// secret's encoding inside a longer base64 text: shorter runs occur by
// chance.
const minBase64Core = 12

// Set is a fixed set of secrets. The zero value and nil hold none. A Set is
// immutable, so safe for concurrent use; With returns a larger one.
type Set struct {
	secrets []string
	forms   []string // every literal form of every secret, longest first
	bytes   [][]byte // forms as bytes
}

// New returns the set of the given secrets, leaving out empty and short
// (under MinLen) values and repeats.
func New(secrets ...string) *Set { return (*Set)(nil).With(secrets...) }

// With returns a new set holding s's secrets and more (s is unchanged). A
// caller that learns secrets as it goes keeps the latest set in an
// atomic.Pointer and replaces it under its own lock.
func (s *Set) With(more ...string) *Set {
	n := &Set{}
	if s != nil {
		n.secrets = slices.Clone(s.secrets)
	}
	for _, v := range more {
		if len(v) >= MinLen && !slices.Contains(n.secrets, v) {
			n.secrets = append(n.secrets, v)
		}
	}
	for _, v := range n.secrets {
		for _, f := range Forms(v) {
			if !slices.Contains(n.forms, f) {
				n.forms = append(n.forms, f)
			}
		}
	}
	// Longest first: a form inside a longer one (a base64 run inside the
	// whole encoding) must not leave the rest of the longer one behind.
	slices.SortStableFunc(n.forms, func(a, b string) int { return len(b) - len(a) })
	for _, f := range n.forms {
		n.bytes = append(n.bytes, []byte(f))
	}
	return n
}

// Request returns the set of the credentials req carries (the token query
// parameter, the Authorization header and its token, a URL's user info) and
// of extra: what the fake server and the contract transport keep out of
// what they report about a request.
func Request(req *http.Request, extra ...string) *Set {
	secrets := slices.Clone(extra)
	secrets = append(secrets, req.URL.Query()["token"]...)
	for _, h := range req.Header.Values("Authorization") {
		_, tok, _ := strings.Cut(h, " ")
		secrets = append(secrets, h, tok)
	}
	if u := req.URL.User; u != nil {
		if pw, ok := u.Password(); ok {
			secrets = append(secrets, pw)
		} else {
			secrets = append(secrets, u.Username()) // a token sent as the user name
		}
	}
	return New(secrets...)
}

// Empty reports whether the set holds no secret.
func (s *Set) Empty() bool { return s == nil || len(s.secrets) == 0 }

// Forms lists the literal forms secret can take in text: as is,
// query-escaped, path-escaped, inside a Go-quoted string (%q), inside a JSON
// string as encoding/json writes it, and base64-encoded (standard and URL
// alphabets, padded and raw), also as the run of characters it always
// encodes to inside a longer base64 text, whatever its offset (when that
// run is at least 12 characters).
func Forms(secret string) []string {
	if secret == "" {
		return nil
	}
	forms := []string{secret}
	add := func(f string) {
		if len(f) >= MinLen && !slices.Contains(forms, f) {
			forms = append(forms, f)
		}
	}
	add(url.QueryEscape(secret))
	add(url.PathEscape(secret))
	if q := strconv.Quote(secret); len(q) > 2 {
		add(q[1 : len(q)-1])
	}
	if j, err := json.Marshal(secret); err == nil && len(j) > 2 {
		add(string(j[1 : len(j)-1]))
	}
	for _, enc := range [...]*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		add(enc.EncodeToString([]byte(secret)))
		raw := enc.WithPadding(base64.NoPadding)
		add(raw.EncodeToString([]byte(secret)))
		// Inside a longer text, the secret starts at any offset; the
		// groups of 3 bytes that lie wholly inside it encode the same
		// whatever surrounds it.
		for skip := range 3 {
			if n := (len(secret) - skip) / 3 * 3; n > 0 {
				if core := raw.EncodeToString([]byte(secret[skip : skip+n])); len(core) >= minBase64Core {
					add(core)
				}
			}
		}
	}
	return forms
}

// String returns t with every literal form of every secret replaced by
// Mask. It does not allocate when t holds none.
func (s *Set) String(t string) string {
	if s == nil {
		return t
	}
	for _, f := range s.forms {
		if strings.Contains(t, f) {
			t = strings.ReplaceAll(t, f, Mask)
		}
	}
	return t
}

// Strings applies String to every element of ts, in place, and returns ts.
func (s *Set) Strings(ts []string) []string {
	for i, t := range ts {
		ts[i] = s.String(t)
	}
	return ts
}

// Bytes is String for bytes: b is returned as is (no copy) when it holds
// no secret; found says whether one was replaced.
func (s *Set) Bytes(b []byte) (out []byte, found bool) {
	if s == nil {
		return b, false
	}
	for _, f := range s.bytes {
		if bytes.Contains(b, f) {
			b = bytes.ReplaceAll(b, f, []byte(Mask))
			found = true
		}
	}
	return b, found
}

// containsLiteral reports whether t holds a literal form of a secret.
func (s *Set) containsLiteral(t string) bool {
	if s == nil {
		return false
	}
	for _, f := range s.forms {
		if strings.Contains(t, f) {
			return true
		}
	}
	return false
}

// Contains reports whether t carries a secret in any form the set can
// tell: a literal form, or one hidden by JSON or percent escapes (as a
// link's query would carry it to another host). It does not allocate when
// t holds no escape.
func (s *Set) Contains(t string) bool {
	if s.Empty() || t == "" {
		return false
	}
	if !strings.ContainsAny(t, "\\%+") {
		return s.containsLiteral(t)
	}
	for _, v := range decodedViews(t) {
		if s.containsLiteral(v) {
			return true
		}
	}
	return false
}

// ContainsBytes is Contains for bytes, without copying b when it holds no
// escape.
func (s *Set) ContainsBytes(b []byte) bool {
	if s.Empty() {
		return false
	}
	if !bytes.ContainsAny(b, "\\%+") {
		for _, f := range s.bytes {
			if bytes.Contains(b, f) {
				return true
			}
		}
		return false
	}
	return s.Contains(string(b))
}

// Deep is String for a text that may hold escapes (JSON or percent escapes,
// such as a value decoded from an answer): if decoding them shows a secret,
// the decoded, masked text is returned instead.
func (s *Set) Deep(t string) string {
	t = s.String(t)
	if s.Empty() || !strings.ContainsAny(t, "\\%+") {
		return t
	}
	views := decodedViews(t)
	for _, d := range views[1:] {
		if r := s.String(d); r != d {
			return r
		}
	}
	return t
}

// decodedViews lists t, t with JSON escapes decoded, t with percent escapes
// decoded, and t with both decoded (JSON first).
func decodedViews(t string) [4]string {
	j := string(unescapeJSONLenient([]byte(t)))
	return [4]string{t, j, percentDecodeLenient(t), percentDecodeLenient(j)}
}
