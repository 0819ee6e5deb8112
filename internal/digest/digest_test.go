package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestParts(t *testing.T) {
	// The encoding is part of stored evidence and journals: pinned.
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	if got, want := Parts(), sum(nil); got != want {
		t.Errorf("no parts: %s, want %s", got, want)
	}
	if got, want := Parts("ab", ""), sum([]byte("\x02ab\x00")); got != want {
		t.Errorf(`"ab", "": %s, want %s`, got, want)
	}
	long := string(make([]byte, 300)) // a two-byte uvarint
	if got, want := Parts(long), sum(append([]byte{0xac, 0x02}, long...)); got != want {
		t.Errorf("300 bytes: %s, want %s", got, want)
	}
	if Parts("a", "bc") == Parts("ab", "c") {
		t.Error("moving a byte between parts kept the digest")
	}
}
