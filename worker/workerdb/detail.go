package workerdb

import (
	"strings"
	"time"
)

// createSentPrefix begins the detail of an EventUnknown about a retrieval.
const createSentPrefix = "create sent at "

// UnknownCreateDetail is the detail of the EventUnknown the worker records
// for a retrieval whose create's outcome is unknown: the time the create
// was sent, then why. That time is what Mixpanel support needs to find a
// task the API cannot list; the evidence report reads it back with
// CreateSentAt.
func UnknownCreateDetail(sentAt time.Time, why string) string {
	return createSentPrefix + FormatTime(sentAt) + ": " + why
}

// CreateSentAt reads the create's time from an UnknownCreateDetail (false
// for any other detail).
func CreateSentAt(detail string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(detail, createSentPrefix)
	if !ok || len(rest) < len(TimeLayout) {
		return time.Time{}, false
	}
	t := ParseTime(rest[:len(TimeLayout)])
	return t, !t.IsZero()
}
