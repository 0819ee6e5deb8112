package budget

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestTransient: connection trouble and the retryable SQLSTATEs are
// retried; other SQL errors and errors of this side (an argument that does
// not encode) are returned.
func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "40001"}, true},
		{&pgconn.PgError{Code: "40P01"}, true},
		{&pgconn.PgError{Code: "57P01"}, true}, // admin shutdown
		{&pgconn.PgError{Code: "08006"}, true},
		{fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "53300"}), true}, // too many connections
		{&pgconn.PgError{Code: "42P01"}, false},                           // undefined table: run Migrate
		{&pgconn.PgError{Code: "22P02"}, false},
		{io.ErrUnexpectedEOF, true},
		{errors.New("failed to encode args[2]"), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestCeil: times and durations sent to Postgres round up to its
// microsecond, never down.
func TestCeil(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 1500, time.UTC)
	if got := ceilMicro(at); !got.Equal(at.Add(500)) {
		t.Errorf("ceilMicro(%v) = %v", at, got)
	}
	if got := ceilMicro(at.Add(500)); !got.Equal(at.Add(500)) {
		t.Errorf("ceilMicro of a whole microsecond moved it: %v", got)
	}
	if got := ceilDur(50*time.Millisecond + 1); got != 50*time.Millisecond+time.Microsecond {
		t.Errorf("ceilDur = %v", got)
	}
}
