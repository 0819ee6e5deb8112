// Package safefile holds the file rules every module shares: the one way a
// server's text (a task id) becomes a file name, and exclusive file locks
// that fail loudly where the system has none.
package safefile

import "github.com/privacykit/mpgdpr/internal/digest"

// MaxName is the longest id Name keeps as it is, in bytes: with a suffix
// such as ".zip.part-XXXX" it stays within every file system's 255.
const MaxName = 128

// Name turns id, text from a server such as a task id, into a file name that
// cannot leave its directory, hide, or be too long: an id of 1 to MaxName
// ASCII letters, digits, '-', '_' and '.', not starting with a dot, is kept
// as it is (so existing export paths stay stable); any other becomes
// "task-" and 16 hex digits of a SHA-256 digest of it (the CLI's rule: the
// digest of its journal, over the id's length as a uvarint then the id), so
// two unsafe ids get different names.
func Name(id string) string {
	if safe(id) {
		return id
	}
	return "task-" + digest.Parts(id)[:16]
}

func safe(id string) bool {
	if id == "" || len(id) > MaxName || id[0] == '.' {
		return false
	}
	for i := range len(id) {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
