// Package exitcode holds the exit statuses of the mpgdpr command, which
// scripts rely on (the command's help lists them), and the rule that picks
// the one that says more when a run ends several ways.
package exitcode

import (
	"errors"

	"github.com/privacykit/mpgdpr"
)

// Exit statuses.
const (
	OK          = 0   // everything done
	Local       = 1   // a local failure: journal, files
	Usage       = 2   // bad usage or bad input; nothing was sent
	API         = 3   // Mixpanel refused a request, or could not be reached
	Incomplete  = 4   // tasks failed, or IDs are left unknown or unsent
	Interrupted = 130 // SIGINT/SIGTERM; the journal is consistent
)

// Worse returns the status that says more: interrupted, then usage, local,
// API, incomplete, success.
func Worse(a, b int) int {
	if rank(b) > rank(a) {
		return b
	}
	return a
}

func rank(c int) int {
	switch c {
	case Interrupted:
		return 6
	case Usage:
		return 5
	case Local:
		return 4
	case API:
		return 3
	case Incomplete:
		return 2
	case OK:
		return 0
	}
	return 1
}

// ForAPI is the status of a failed API call: input the library refused
// before sending is usage, anything else an API or network error.
func ForAPI(err error) int {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, mpgdpr.ErrInvalidInput):
		return Usage
	}
	return API
}
