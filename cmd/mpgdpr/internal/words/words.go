// Package words phrases counts, lists and durations for the messages of
// the mpgdpr command, so that every message says "1 ID" and "2 IDs" the
// same way.
package words

import (
	"strconv"
	"strings"
	"time"
)

// Count is n and the noun, singular for 1: "1 task", "2 tasks", "0 IDs".
// The plural adds "s" to the last word: "1 repeated ID", "3 repeated IDs".
func Count(n int, noun string) string {
	return strconv.Itoa(n) + " " + Noun(n, noun)
}

// Noun is the noun in the singular for 1, else the plural: for phrases
// that put the count elsewhere ("request 3", "requests 3, 4").
func Noun(n int, noun string) string {
	if n == 1 {
		return noun
	}
	return noun + "s"
}

// Ints lists numbers: "1, 4, 7".
func Ints(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// Duration is d to the second (to the millisecond below a second), e.g.
// "16s", "2m5s", "300ms".
func Duration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
