package redact

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Body replaces every secret in an answer body by Mask, and reports whether
// it found one. It looks at the bytes as they came (every literal form) and,
// when the body holds a backslash or a percent sign, at what JSON escapes
// (\u0053…) and then percent escapes (%53…) decode to: in a valid JSON body
// every string (keys too) is then decoded, cleaned and the body re-encoded;
// a body that is not valid JSON (cut at a limit, a stray byte, a text page)
// is replaced by its decoded, cleaned text. A body with no secret and none
// of those two characters, the usual case, costs one scan per form and no
// copy.
func (s *Set) Body(b []byte) ([]byte, bool) {
	b, cleaned := s.Bytes(b)
	if s.Empty() || !bytes.ContainsAny(b, "\\%") {
		return b, cleaned
	}
	if !s.hidden(b) {
		return b, cleaned // nothing hidden by the escapes
	}
	if json.Valid(b) {
		if out, ok := s.jsonBody(b); ok && !s.hidden(out) {
			return out, true
		}
	}
	// Not JSON (or still hiding one): the decoded, cleaned text, decoded
	// again while a pass still finds a secret, and the mask alone if four
	// passes do not get rid of it.
	out := b
	for range 4 {
		out = []byte(s.String(s.fullyDecoded(out)))
		if !s.hidden(out) {
			return out, true
		}
	}
	return []byte(Mask), true
}

// escapePasses bounds the JSON-unescape passes: an escape of an escape
// (\\u0053) decodes in a later pass.
const escapePasses = 3

// hidden reports whether a secret shows in b once its JSON escapes, then
// its percent escapes, are decoded, after any of up to escapePasses passes.
// Every pass is looked at, not only the last: a later pass can consume the
// start of a secret an earlier one revealed ("\u3" + "\u0066" decodes to
// "\u3f", which decodes again to one rune).
func (s *Set) hidden(b []byte) bool {
	dec := b
	for range escapePasses {
		if bytes.IndexByte(dec, '\\') < 0 {
			break
		}
		dec = unescapeJSONLenient(dec)
		if s.containsLiteral(string(dec)) || s.containsLiteral(percentDecodeLenient(string(dec))) {
			return true
		}
	}
	return s.containsLiteral(percentDecodeLenient(string(dec)))
}

// fullyDecoded is b after escapePasses JSON-unescape passes and one
// percent-decoding pass.
func (s *Set) fullyDecoded(b []byte) string {
	dec := b
	for range escapePasses {
		if bytes.IndexByte(dec, '\\') < 0 {
			break
		}
		dec = unescapeJSONLenient(dec)
	}
	return percentDecodeLenient(string(dec))
}

// decodedView is b with JSON escapes, then percent escapes, decoded.
func decodedView(b []byte) string {
	return percentDecodeLenient(string(unescapeJSONLenient(b)))
}

// jsonBody decodes a valid JSON body, masks every string in it and
// re-encodes it; ok is false when nothing needed masking.
func (s *Set) jsonBody(b []byte) ([]byte, bool) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return nil, false
	}
	v, changed := s.jsonValue(v)
	if !changed {
		return nil, false
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) != nil {
		return []byte(`"` + Mask + `"`), true // cannot happen for decoded JSON; never return the secret
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), true
}

// jsonValue masks every string (keys included) of a decoded JSON value,
// looking through escapes a string may still hold once decoded.
func (s *Set) jsonValue(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		r := s.Deep(x)
		return r, r != x
	case []any:
		changed := false
		for i := range x {
			var ch bool
			x[i], ch = s.jsonValue(x[i])
			changed = changed || ch
		}
		return x, changed
	case map[string]any:
		changed := false
		out := make(map[string]any, len(x))
		for k, val := range x {
			nv, ch := s.jsonValue(val)
			nk := s.Deep(k)
			out[nk] = nv
			changed = changed || ch || nk != k
		}
		return out, changed
	}
	return v, false
}

// unescapeJSONLenient decodes every JSON string escape in b (\n, \", \\,
// \/, \uXXXX with surrogate pairs) wherever it is, leaving anything that is
// not a complete escape as it is. It is for looking for secrets in bodies
// that json cannot decode, not for reading them.
func unescapeJSONLenient(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		switch e := b[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
			i++
		case 'b', 'f', 'n', 'r', 't':
			out = append(out, map[byte]byte{'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}[e])
			i++
		case 'u':
			r, n := hex4(b[i+2:])
			if n == 0 {
				out = append(out, b[i])
				continue
			}
			i += 1 + n
			if utf16.IsSurrogate(r) {
				if i+2 < len(b) && b[i+1] == '\\' && b[i+2] == 'u' {
					if r2, n2 := hex4(b[i+3:]); n2 != 0 {
						if dr := utf16.DecodeRune(r, r2); dr != utf8.RuneError {
							r = dr
							i += 2 + n2
						}
					}
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			out = append(out, b[i])
		}
	}
	return out
}

// hex4 reads 4 hex digits; n is 4, or 0 if b does not start with them.
func hex4(b []byte) (r rune, n int) {
	if len(b) < 4 {
		return 0, 0
	}
	for _, c := range b[:4] {
		if !isHex(c) {
			return 0, 0
		}
		r = r<<4 | rune(unhex(c))
	}
	return r, 4
}

// percentDecodeLenient decodes every %XX in s (and + as a space), leaving
// anything else as it is: url.QueryUnescape gives up on the first bad
// escape, which a hostile server could add on purpose.
func percentDecodeLenient(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		case s[i] == '+':
			out = append(out, ' ')
		default:
			out = append(out, s[i])
		}
	}
	return string(out)
}

func isHex(b byte) bool { return b >= '0' && b <= '9' || b >= 'a' && b <= 'f' || b >= 'A' && b <= 'F' }

func unhex(b byte) byte {
	switch {
	case b >= 'a':
		return b - 'a' + 10
	case b >= 'A':
		return b - 'A' + 10
	}
	return b - '0'
}
