package words

import (
	"testing"
	"time"
)

func TestCountAndNoun(t *testing.T) {
	for _, c := range []struct {
		n    int
		noun string
		want string
	}{
		{0, "ID", "0 IDs"},
		{1, "ID", "1 ID"},
		{2, "ID", "2 IDs"},
		{1, "repeated ID", "1 repeated ID"},
		{3, "repeated ID", "3 repeated IDs"},
	} {
		if got := Count(c.n, c.noun); got != c.want {
			t.Errorf("Count(%d, %q) = %q, want %q", c.n, c.noun, got, c.want)
		}
	}
	if Noun(1, "request") != "request" || Noun(2, "request") != "requests" {
		t.Errorf("Noun: %q, %q", Noun(1, "request"), Noun(2, "request"))
	}
	if got := Ints([]int{1, 4, 7}); got != "1, 4, 7" {
		t.Errorf("Ints: %q", got)
	}
	if got := Duration(1499 * time.Millisecond); got != "1s" {
		t.Errorf("Duration: %q", got)
	}
	if got := Duration(300400 * time.Microsecond); got != "300ms" {
		t.Errorf("Duration: %q", got)
	}
}
