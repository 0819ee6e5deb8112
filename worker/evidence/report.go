package evidence

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Writer writes a report, one record at a time.
type Writer interface {
	// Write adds one evaluated record.
	Write(r *Record) error
	// Close finishes the report (the HTML page is written here) and flushes
	// it; it does not close the underlying io.Writer.
	Close() error
}

// Generate evaluates every record of src matching f against pol as of now
// and writes it to w, then closes w. It returns how many records it wrote.
// Memory stays constant for the CSV and JSON Lines writers whatever the
// number of records.
func Generate(ctx context.Context, src Source, pol *Policy, f Filter, now time.Time, w Writer) (int, error) {
	if pol == nil {
		pol = NewPolicy()
	}
	if !ValidState(f.State) {
		return 0, fmt.Errorf("evidence: state %q is not overdue, open or done", f.State)
	}
	n := 0
	err := src.Records(ctx, f, func(r *Record) error {
		pol.Evaluate(r, now)
		if !f.Match(r) {
			return nil
		}
		n++
		return w.Write(r)
	})
	if err != nil {
		return n, err
	}
	return n, w.Close()
}

// Time layout of every time in the CSV and JSON Lines reports: RFC 3339 in
// UTC, to the second.
const timeLayout = "2006-01-02T15:04:05Z"

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

// hashIDsIn replaces the record's distinct IDs in free text by their hashes
// when IDs are hashed, so that no note gives a person away.
func hashIDsIn(h *IDHasher, ids []string, s string) string {
	if h == nil || s == "" {
		return s
	}
	for _, id := range ids {
		if id != "" && strings.Contains(s, id) {
			s = strings.ReplaceAll(s, id, h.Hash(id))
		}
	}
	return s
}

// days is d in days, to two decimals.
func days(d time.Duration) string {
	return fmt.Sprintf("%.2f", d.Hours()/24)
}
