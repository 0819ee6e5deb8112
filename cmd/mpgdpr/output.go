package main

import (
	"strconv"

	"github.com/privacykit/mpgdpr"
)

// trimLib is err's text without the library's "mpgdpr: " prefixes
// (mpgdpr.Unprefixed), which the command's own prefix already says.
func trimLib(err error) string { return mpgdpr.Unprefixed(err).Error() }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func countOrDash(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}
