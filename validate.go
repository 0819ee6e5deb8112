package mpgdpr

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// validateIDs checks a request's distinct ids before anything is sent.
func validateIDs(ids []string, limit int) error {
	if len(ids) == 0 {
		return &InputError{Field: "distinct ids", Problem: "the list is empty"}
	}
	if len(ids) > limit {
		return &InputError{Field: "distinct ids", Problem: fmt.Sprintf("%d ids, more than the %d one request may carry (the batch helpers split any number)", len(ids), limit)}
	}
	seen := make(map[string]int, len(ids))
	for i, id := range ids {
		if err := validateID(id); err != nil {
			return &InputError{Field: fmt.Sprintf("distinct id #%d", i+1), Problem: err.Error()}
		}
		if j, dup := seen[id]; dup {
			return &InputError{Field: fmt.Sprintf("distinct id #%d", i+1), Problem: fmt.Sprintf("duplicate of #%d", j+1)}
		}
		seen[id] = i
	}
	return nil
}

func validateID(id string) error {
	if strings.TrimSpace(id) == "" {
		return fmt.Errorf("empty or blank")
	}
	// JSON encoding would silently replace invalid UTF-8 with U+FFFD: the
	// request would name someone else, and this person's data would stay.
	if !utf8.ValidString(id) {
		return fmt.Errorf("not valid UTF-8")
	}
	return nil
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
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return &InputError{Field: "tracking id", Problem: "contains control characters"}
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
