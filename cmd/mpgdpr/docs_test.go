package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The README and CONTRIBUTING say which Go the CLI needs: what its go.mod
// says, never less.
func TestDocsStateTheCLIsGoVersion(t *testing.T) {
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (1\.(\d+))(\.\d+)?$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	goLine, minor := string(m[0][3:]), atoi(t, string(m[2]))
	lower := regexp.MustCompile(`CLI[^.;()]*?Go (?:≥ ?)?1\.(\d+)`)
	for _, doc := range []string{"../../README.md", "../../CONTRIBUTING.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(strings.Fields(string(b)), " ") // one line: sentences wrap
		for _, c := range lower.FindAllStringSubmatch(text, -1) {
			if atoi(t, c[1]) < minor {
				t.Errorf("%s: %q, but cmd/mpgdpr/go.mod says go %s", doc, c[0], goLine)
			}
		}
		if !strings.Contains(text, "cmd/mpgdpr") || !strings.Contains(text, "`go "+goLine+"`") {
			t.Errorf("%s does not say that the CLI (cmd/mpgdpr) says `go %s`", doc, goLine)
		}
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
