package mpgdpr

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/runenames"
)

// validateIDs checks a request's distinct ids before anything is sent;
// verbatim is WithVerbatimDistinctIDs.
func validateIDs(ids []string, limit int, verbatim bool) error {
	if len(ids) == 0 {
		return &InputError{Field: "distinct ids", Problem: "the list is empty"}
	}
	if len(ids) > limit {
		return &InputError{Field: "distinct ids", Problem: fmt.Sprintf("%d ids, more than the %d one request may carry (the batch helpers split any number)", len(ids), limit)}
	}
	seen := make(map[string]int, len(ids))
	for i, id := range ids {
		if err := validateID(id, verbatim); err != nil {
			return &InputError{Field: fmt.Sprintf("distinct id #%d", i+1), Problem: err.Error()}
		}
		if j, dup := seen[id]; dup {
			return &InputError{Field: fmt.Sprintf("distinct id #%d", i+1), Problem: fmt.Sprintf("duplicate of #%d", j+1)}
		}
		seen[id] = i
	}
	return nil
}

// ValidateDistinctID checks one distinct ID as every call that sends IDs
// does, before anything is sent: it must not be blank, must be valid UTF-8,
// and must hold no character that is invisible or means nothing on its own:
// control characters (a stray "\r" from a CRLF file), format characters
// (Unicode category Cf: U+FEFF BYTE ORDER MARK, U+200B-U+200D zero-width
// characters, U+2060 WORD JOINER, the bidirectional controls, soft hyphen…),
// line and paragraph separators, private-use, surrogate and noncharacter
// code points, and code points unassigned in Unicode (as of the Go release's
// unicode.Version). Such an ID names no one in Mixpanel: the request would
// be accepted and that person's data would silently stay.
//
// The error is an *InputError (errors.Is(err, ErrInvalidInput)) that names
// the character and its position, e.g. "contains U+200B ZERO WIDTH SPACE at
// rune 4", and never the ID itself: an error may be logged, and a distinct
// ID is personal data.
func ValidateDistinctID(id string) error {
	if err := validateID(id, false); err != nil {
		return &InputError{Field: "distinct id", Problem: err.Error()}
	}
	return nil
}

// ValidateVerbatimDistinctID checks one distinct ID as a client made with
// WithVerbatimDistinctIDs does: it must not be blank and must be valid
// UTF-8; any other character, controls and invisible ones included, is
// accepted and sent as it is. See WithVerbatimDistinctIDs for the risk.
func ValidateVerbatimDistinctID(id string) error {
	if err := validateID(id, true); err != nil {
		return &InputError{Field: "distinct id", Problem: err.Error()}
	}
	return nil
}

// validateID is the one check of a distinct ID; verbatim accepts every
// character of a non-blank, valid UTF-8 ID.
func validateID(id string, verbatim bool) error {
	if strings.TrimSpace(id) == "" {
		return fmt.Errorf("empty or blank")
	}
	// JSON encoding would silently replace invalid UTF-8 with U+FFFD: the
	// request would name someone else, and this person's data would stay.
	if !utf8.ValidString(id) {
		return fmt.Errorf("not valid UTF-8")
	}
	if verbatim {
		return nil
	}
	return invisibleRune(id)
}

// invisibleRune reports the first character of s that cannot be part of
// an identifier a person typed or a system generated on purpose, by its
// code point, name and 1-based rune position.
func invisibleRune(s string) error {
	pos := 0
	for _, r := range s {
		pos++
		if kind := unseen(r); kind != "" {
			return fmt.Errorf("contains %s (%s) at rune %d", runeName(r), kind, pos)
		}
	}
	return nil
}

// unseen classifies a rune that must not be in an ID, or returns "".
// Printable ASCII, the common case, returns at once.
func unseen(r rune) string {
	if r >= 0x20 && r < 0x7f {
		return ""
	}
	switch {
	case unicode.Is(unicode.Cc, r):
		return "a control character"
	case unicode.Is(unicode.Cf, r):
		return "an invisible format character"
	case unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r):
		return "a line or paragraph separator"
	case unicode.Is(unicode.Co, r):
		return "a private-use character"
	case unicode.Is(unicode.Cs, r) || isNoncharacter(r):
		return "a noncharacter"
	case !assigned(r):
		return "a code point unassigned in Unicode " + unicode.Version
	}
	return ""
}

// isNoncharacter: U+FDD0-U+FDEF and the last two code points of every plane.
func isNoncharacter(r rune) bool {
	return r >= 0xFDD0 && r <= 0xFDEF || r&0xFFFE == 0xFFFE
}

// assignedTables are the general categories of every assigned code point.
// Cn (unassigned) has no table of its own, and Go's unicode.C includes it,
// so C is listed by its assigned parts.
var assignedTables = []*unicode.RangeTable{unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs}

func assigned(r rune) bool { return unicode.In(r, assignedTables...) }

// runeName renders r as "U+200B ZERO WIDTH SPACE", or just the code point
// when Unicode gives it no name (controls, unassigned code points).
func runeName(r rune) string {
	name := runenames.Name(r)
	if name == "" || strings.HasPrefix(name, "<") {
		return fmt.Sprintf("U+%04X", r)
	}
	return fmt.Sprintf("U+%04X %s", r, name)
}

// validateTrackingID checks a task id. Characters that mean something in a
// URL ('/', '?', '#', '%') are escaped by the generated client; a bare "." or
// ".." would be resolved away as a path segment, so it is refused.
func validateTrackingID(id string) error {
	switch {
	case strings.TrimSpace(id) == "":
		return &InputError{Field: "tracking id", Problem: "empty or blank"}
	case id == "." || id == "..":
		return &InputError{Field: "tracking id", Problem: fmt.Sprintf("%q is a path segment, not a task id", id)}
	case !utf8.ValidString(id):
		return &InputError{Field: "tracking id", Problem: "not valid UTF-8"}
	}
	if err := invisibleRune(id); err != nil {
		return &InputError{Field: "tracking id", Problem: err.Error()}
	}
	return nil
}

func validateCompliance(ct ComplianceType) error {
	switch ct {
	case GDPR, CCPA:
		return nil
	case "":
		return &InputError{Field: "compliance type", Problem: "missing: choose GDPR or CCPA"}
	}
	return &InputError{Field: "compliance type", Problem: fmt.Sprintf("%q is not GDPR or CCPA", string(ct))}
}

func validateDisclosure(ct ComplianceType, dt DisclosureType) error {
	if dt == "" {
		return nil
	}
	switch dt {
	case DisclosureData, DisclosureCategories, DisclosureSources:
	default:
		return &InputError{Field: "disclosure type", Problem: fmt.Sprintf("%q is not Data, Categories or Sources", string(dt))}
	}
	if ct != CCPA {
		return &InputError{Field: "disclosure type", Problem: fmt.Sprintf("only CCPA retrievals take one; this is %s", ct)}
	}
	return nil
}

// validateSecret checks a credential as given to New: present when
// required, and with nothing a file or a copy-paste adds around it. A
// token with a trailing newline fails every request inside net/http; the
// error names which credential, never its value.
func validateSecret(field, v string, required bool) error {
	switch {
	case v == "" && !required:
		return nil
	case strings.TrimSpace(v) == "":
		return &InputError{Field: field, Problem: "empty"}
	case strings.TrimSpace(v) != v:
		return &InputError{Field: field, Problem: "has leading or trailing whitespace (a trailing newline from a file?): trim it"}
	case !utf8.ValidString(v):
		return &InputError{Field: field, Problem: "not valid UTF-8"}
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return &InputError{Field: field, Problem: "contains a control character"}
	}
	return nil
}

// validHeaderValue reports a byte net/http would refuse to send in a
// header value (a control character other than tab), as
// golang.org/x/net/http/httpguts.ValidHeaderFieldValue does.
func validHeaderValue(v string) error {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < ' ' && b != '\t' || b == 0x7f {
			return fmt.Errorf("control character 0x%02X at byte %d", b, i+1)
		}
	}
	return nil
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0 {
			continue
		}
		return false
	}
	return true
}
