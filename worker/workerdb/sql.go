package workerdb

import (
	"strconv"
	"strings"
	"time"
)

// Rebind turns a query's '?' placeholders into Postgres's $1, $2, …. The
// worker's queries are written with '?' (SQLite's) and have no '?'
// anywhere else.
func Rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// TimeLayout is how the worker stores times: fixed-width UTC text
// (microseconds), which sorts and compares the same way on both databases
// and reads plainly.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// FormatTime writes t as the worker stores it.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// ParseTime reads a stored time; anything else (an empty column) is the
// zero time.
func ParseTime(s string) time.Time {
	t, err := time.Parse(TimeLayout, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
