package evidence

import (
	"strings"
	"time"

	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// ExtensionDetail is the detail of the worker's "extended" event
// (workerdb.EventExtended): when the person was told, then why. It names
// no one.
func ExtensionDetail(reason string, noticeAt time.Time) string {
	return "notice " + workerdb.FormatTime(noticeAt) + ": " + reason
}

// ParseExtensionDetail reads back ExtensionDetail; ok is false for any
// other text.
func ParseExtensionDetail(detail string) (reason string, noticeAt time.Time, ok bool) {
	rest, found := strings.CutPrefix(detail, "notice ")
	if !found {
		return "", time.Time{}, false
	}
	at, reason, found := strings.Cut(rest, ": ")
	if !found {
		return "", time.Time{}, false
	}
	t := workerdb.ParseTime(at)
	if t.IsZero() || strings.TrimSpace(reason) == "" {
		return "", time.Time{}, false
	}
	return reason, t, true
}
