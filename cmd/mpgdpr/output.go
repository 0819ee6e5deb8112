package main

import (
	"strconv"

	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/words"
)

// trimLib drops the library's "mpgdpr: " prefix, which the command's own
// prefix already says.
func trimLib(err error) string { return words.LibText(err.Error()) }

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
