package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/privacykit/mpgdpr/mpgdprtest"
)

func TestReadIDs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name  string
		in    idInput
		stdin string
		want  []string
		dups  int
		err   string
	}{
		{"args", idInput{args: []string{"a", "b", "a"}}, "", []string{"a", "b"}, 1, ""},
		{"lines with CRLF and a BOM", idInput{file: write("crlf.txt", "\ufeffa\r\nb\r\nc"), stripBOM: true}, "", []string{"a", "b", "c"}, 0, ""},
		{"a BOM refused when asked", idInput{file: write("bom.txt", "\ufeffa\nb\n")}, "", nil, 0, "line 1: starts with U+FEFF BYTE ORDER MARK"},
		{"a BOM on stdin", idInput{file: "-", stripBOM: true}, "\ufeffa\n", []string{"a"}, 0, ""},
		{"a BOM inside the list", idInput{file: "-", stripBOM: true}, "a\n\ufeffb\n", nil, 0, "line 2: contains U+FEFF ZERO WIDTH NO-BREAK SPACE"},
		{"a zero-width space", idInput{file: "-"}, "a\nbo\u200bb\n", nil, 0, "line 2: contains U+200B ZERO WIDTH SPACE (an invisible format character) at rune 3"},
		{"a word joiner", idInput{file: "-"}, "x\u2060\n", nil, 0, "line 1: contains U+2060 WORD JOINER"},
		{"a bidirectional control", idInput{file: "-"}, "\u202eabc\n", nil, 0, "line 1: contains U+202E RIGHT-TO-LEFT OVERRIDE"},
		{"an unassigned code point", idInput{file: "-"}, "a\U000E0080\n", nil, 0, "line 1: contains U+E0080"},
		{"an invisible argument", idInput{args: []string{"a", "b\u200d"}}, "", nil, 0, "argument 2: contains U+200D ZERO WIDTH JOINER"},
		{"a CSV cell", idInput{file: write("z.csv", "\ufeffid,x\nu\u200b1,2\n"), csvColumn: "id", stripBOM: true}, "", nil, 0, `line 2, column "id": contains U+200B`},
		{"stdin", idInput{file: "-"}, "x\ny\nx\n", []string{"x", "y"}, 1, ""},
		{"IDs are exact", idInput{file: "-"}, "a \n", nil, 0, "line 1: leading or trailing whitespace"},
		{"unless trimmed", idInput{file: "-", trimSpace: true}, " a \n\tb\n", []string{"a", "b"}, 0, ""},
		{"trimmed to nothing is blank", idInput{file: "-", trimSpace: true}, "a\n  \n", nil, 0, "line 2: blank"},
		{"a final blank line", idInput{file: "-"}, "a\n\n", nil, 0, "line 2: blank"},
		{"not UTF-8", idInput{file: "-"}, "a\n\xff\xfe\n", nil, 0, "line 2: not valid UTF-8"},
		{"unicode is fine", idInput{file: "-"}, "Zoë\n用户\n", []string{"Zoë", "用户"}, 0, ""},
		{"CSV", idInput{file: write("a.csv", "id,x\n\"u,1\",2\nu2,3\n"), csvColumn: "id"}, "", []string{"u,1", "u2"}, 0, ""},
		{"CSV header spaces", idInput{file: write("b.csv", " id ,x\nu1,2\n"), csvColumn: "id"}, "", []string{"u1"}, 0, ""},
		{"CSV newline in a cell", idInput{file: write("c.csv", "id\n\"u\n1\"\n"), csvColumn: "id"}, "", nil, 0, "control character"},
		{"CSV bare quote", idInput{file: write("d.csv", "id\nu\"1\n"), csvColumn: "id"}, "", nil, 0, "malformed CSV at line 2"},
		{"too long a line", idInput{file: "-"}, strings.Repeat("x", maxLine+1), nil, 0, "longer than"},
		{"ten problems and more", idInput{file: "-"}, strings.Repeat(" a\n", 13), nil, 0, "13 problems, nothing sent"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := readIDs(c.in, strings.NewReader(c.stdin))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				if exitFor(err) != exitUsage {
					t.Errorf("exit %d for %v", exitFor(err), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.ids, c.want) || got.duplicates != c.dups {
				t.Errorf("got %q (%d repeats), want %q (%d)", got.ids, got.duplicates, c.want, c.dups)
			}
		})
	}
}

// Flags go anywhere among the arguments, as users expect ("mpgdpr status
// deletion ID --json"); "--" ends the flags, for IDs that begin with "-";
// single-dash long flags, which the standard library's flag package took
// before the move to cobra, still work.
func TestArgsIntersperseAndNormalize(t *testing.T) {
	root := newRootCmd(newCLI(nil, io.Discard, io.Discard, nil))
	got := normalizeArgs(root, []string{"status", "-json", "deletion", "-rate", "-5", "t1", "-poll-max=3s", "-v", "--token", "-json", "--", "-rate", "-json"})
	want := []string{"status", "--json", "deletion", "--rate", "-5", "t1", "--poll-max=3s", "-v", "--token", "-json", "--", "-rate", "-json"}
	if !slices.Equal(got, want) {
		t.Errorf("normalizeArgs:\n got %q\nwant %q", got, want)
	}
	var gotArgs []string
	var gotJSON bool
	c := newCheckCmd(newCLI(nil, io.Discard, io.Discard, nil), "status", "", "", func(_ context.Context, _ string, o *checkOpts, args []string) int {
		gotArgs, gotJSON = args, o.api.json
		return exitOK
	})
	c.SetArgs([]string{"deletion", "--json", "t1", "--rate", "3", "t2", "--", "-t3", "--json"})
	if err := c.Execute(); err != nil {
		t.Fatal(err)
	}
	if !gotJSON || !slices.Equal(gotArgs, []string{"deletion", "t1", "t2", "-t3", "--json"}) {
		t.Errorf("json %v args %q", gotJSON, gotArgs)
	}
}

func TestWorse(t *testing.T) {
	order := []int{exitOK, exitIncomplete, exitAPI, exitLocal, exitUsage, exitInterrupted}
	for i, a := range order {
		for j, b := range order {
			if got, want := worse(a, b), order[max(i, j)]; got != want {
				t.Errorf("worse(%d, %d) = %d, want %d", a, b, got, want)
			}
		}
	}
}

// --verbatim-ids sends an ID holding a tab (or another control or invisible
// character) byte for byte, which is refused without it; blank IDs are
// still refused, and a note counts the IDs it let through.
func TestVerbatimIDs(t *testing.T) {
	srv := newFake(t)
	dir := t.TempDir()
	args := func(extra ...string) []string {
		return append(append([]string{"delete", "--compliance", "GDPR", "--file", "-", "--journal", filepath.Join(dir, "j"+strings.Join(extra, ""))}, fast(srv)...), extra...)
	}
	in := "plain\ntab\there\nzw\u200bsp\n"
	if r := runCmd(t, credEnv(), in, args()...); r.code != exitUsage || !strings.Contains(r.stderr, "line 2: contains a tab") || len(srv.Tasks()) != 0 {
		t.Fatalf("without --verbatim-ids: %v", r)
	}
	r := runCmd(t, credEnv(), in, args("--verbatim-ids")...)
	if r.code != 0 || !strings.Contains(r.stderr, "note: --verbatim-ids: 2 IDs in stdin with a control or invisible character, sent byte for byte") {
		t.Fatalf("--verbatim-ids: %v", r)
	}
	filedOnce(t, srv, mpgdprtest.Deletion, []string{"plain", "tab\there", "zw\u200bsp"})
	if r := runCmd(t, credEnv(), "a\n \n", args("--verbatim-ids", "--dry-run")...); r.code != exitUsage || !strings.Contains(r.stderr, "line 2") {
		t.Errorf("a blank ID with --verbatim-ids: %v", r)
	}
	if r := runCmd(t, nil, "", "delete", "--help"); !strings.Contains(r.stdout, "--verbatim-ids") || !strings.Contains(r.stdout, "names no one, and that person's") {
		t.Errorf("delete --help does not explain --verbatim-ids and its risk: %v", r)
	}
}
