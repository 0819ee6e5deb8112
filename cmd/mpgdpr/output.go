package main

import (
	"strconv"
	"strings"
)

// trimLib drops the library's "mpgdpr: " prefix, which the command's own
// prefix already says.
func trimLib(err error) string {
	s := err.Error()
	if len(s) > 8 && s[:8] == "mpgdpr: " {
		return s[8:]
	}
	return s
}

// trimLibMsg is trimLib for a message already turned into text.
func trimLibMsg(s string) string {
	return strings.ReplaceAll(strings.TrimPrefix(s, "mpgdpr: "), ": mpgdpr: ", ": ")
}

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
