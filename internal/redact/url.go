package redact

import "strings"

// URL returns s, a URL or a text holding URLs (such as a database driver's
// error), with what they carry of credentials masked: a user info with a
// password shows as user:REDACTED (one without, as REDACTED: a token is
// often sent as the user name), and the value of every query parameter
// whose name looks secret (SecretKey) as REDACTED. The rest, the host and
// the database included, is left as it is, so the text still says where.
// It does not know the secrets themselves: callers holding some also apply
// a Set.
func URL(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			break
		}
		end := i + 3 + strings.IndexFunc(s[i+3:], endOfURL)
		if end < i+3 {
			end = len(s)
		}
		b.WriteString(s[:i+3])
		b.WriteString(maskURLRest(s[i+3 : end]))
		s = s[end:]
	}
	if b.Len() == 0 {
		return s // no URL: no copy
	}
	b.WriteString(s)
	return b.String()
}

// endOfURL ends a URL inside a text.
func endOfURL(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '"', '\'', '`', '<', '>':
		return true
	}
	return false
}

// maskURLRest masks the user info and secret-looking query values of what
// follows a URL's "://".
func maskURLRest(rest string) string {
	// The user info ends at the last '@' (a sloppy password may hold one):
	// masking too much beats showing a password.
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		user, _, hasPassword := strings.Cut(rest[:at], ":")
		if hasPassword {
			rest = user + ":" + Mask + rest[at:]
		} else {
			rest = Mask + rest[at:]
		}
	}
	q := strings.IndexByte(rest, '?')
	if q < 0 {
		return rest
	}
	query, frag, hasFrag := strings.Cut(rest[q+1:], "#")
	params := strings.Split(query, "&")
	for i, p := range params {
		if k, _, ok := strings.Cut(p, "="); ok && SecretKey(k) {
			params[i] = k + "=" + Mask
		}
	}
	rest = rest[:q+1] + strings.Join(params, "&")
	if hasFrag {
		rest += "#" + frag
	}
	return rest
}

// SecretKey reports whether a parameter of this name (a query parameter, a
// header) carries a credential: its name, case aside, contains token,
// secret, password, passwd, pwd, key, signature, credential or auth.
func SecretKey(name string) bool {
	n := strings.ToLower(name)
	for _, w := range [...]string{"token", "secret", "password", "passwd", "pwd", "key", "signature", "credential", "auth"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}
