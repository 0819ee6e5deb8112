package specdiff

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/privacykit/mpgdpr/internal/specdiff/gotool"
)

func TestIsBreaking(t *testing.T) {
	for _, tc := range []struct {
		f    Finding
		want bool
	}{
		{Finding{ID: "response-property-type-changed", Level: LevelErr}, true},
		{Finding{ID: "api-removed-without-deprecation", Level: LevelErr}, true},
		{Finding{ID: "request-property-removed", Level: LevelWarn}, true},
		{Finding{ID: "response-property-pattern-changed", Level: LevelWarn}, true},
		{Finding{ID: "response-optional-property-removed", Level: LevelInfo}, true},
		{Finding{ID: "api-removed-with-deprecation", Level: LevelInfo}, true},
		{Finding{ID: "response-optional-property-added", Level: LevelInfo}, false},
		{Finding{ID: "endpoint-added", Level: LevelInfo}, false},
		{Finding{ID: "api-version-not-bumped", Level: LevelInfo}, false},
		{Finding{ID: "response-property-enum-value-added", Level: LevelInfo}, false},
	} {
		if got := IsBreaking(tc.f); got != tc.want {
			t.Errorf("IsBreaking(%s at level %d) = %v, want %v", tc.f.ID, tc.f.Level, got, tc.want)
		}
	}
}

func TestParseFindings(t *testing.T) {
	out := `[
 {"id":"response-optional-property-removed","text":"removed b","level":1,"operation":"GET","path":"/b"},
 {"id":"response-property-type-changed","text":"type of a","level":3,"operation":"GET","path":"/b"},
 {"id":"request-property-removed","text":"removed c","level":2,"operation":"POST","path":"/a"},
 {"id":"response-property-type-changed","text":"type of a","level":3,"operation":"GET","path":"/a"}
]`
	fs, err := ParseFindings([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, f.String())
	}
	want := []string{
		"error   [response-property-type-changed] GET /a: type of a",
		"error   [response-property-type-changed] GET /b: type of a",
		"warning [request-property-removed] POST /a: removed c",
		"info    [response-optional-property-removed] GET /b: removed b",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if fs, err := ParseFindings([]byte("  \n")); err != nil || len(fs) != 0 {
		t.Errorf("empty output: %v, %v", fs, err)
	}
	if _, err := ParseFindings([]byte("error: something")); err == nil {
		t.Error("text output parsed as findings")
	}
}

// TestOasdiffChangelog runs the oasdiff pinned in tools/go.mod, the way
// internal/tools/updatespec does.
func TestOasdiffChangelog(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs oasdiff")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base, rev := filepath.Join(dir, "base.yaml"), filepath.Join(dir, "rev.yaml")
	if err := os.WriteFile(base, []byte(baseDoc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rev, []byte(revisionDoc), 0o644); err != nil {
		t.Fatal(err)
	}
	modfile := filepath.Join(root, "tools", "go.mod")
	// Built once under gotool's lock, so that the other packages' tests
	// running beside this one do not compile oasdiff at the same time.
	bin, err := gotool.Path(context.Background(), modfile, root, "oasdiff")
	if err != nil {
		t.Fatal(err)
	}
	// Through go tool, as updatespec runs it (a shim: see gotool.WriteShim).
	goCmd, goLog, err := gotool.WriteShim(t.TempDir(), map[string]string{"oasdiff": bin})
	if err != nil {
		t.Fatal(err)
	}
	o := Oasdiff{Go: goCmd, Modfile: modfile, Dir: root}
	fs, err := o.Changelog(context.Background(), base, rev)
	if err != nil {
		t.Fatal(err)
	}
	if calls, err := os.ReadFile(goLog); err != nil || !strings.HasPrefix(string(calls), "tool -modfile="+modfile+" oasdiff changelog "+base+" "+rev) {
		t.Errorf("go commands run: %q, %v", calls, err)
	}
	if direct, err := (Oasdiff{Bin: bin}).Changelog(context.Background(), base, rev); err != nil || !reflect.DeepEqual(direct, fs) {
		t.Errorf("the built executable gives %v, %v; go tool gives %v", direct, err, fs)
	}
	o = Oasdiff{Bin: bin}
	byID := map[string]Finding{}
	for _, f := range fs {
		byID[f.ID] = f
	}
	for id, level := range map[string]int{
		"api-removed-without-deprecation":    LevelErr,  // DELETE /tasks/{id}
		"response-property-type-changed":     LevelErr,  // Task.when
		"response-optional-property-removed": LevelInfo, // Task.user: breaking for Go users all the same
		"endpoint-added":                     LevelInfo, // GET /tasks
	} {
		f, ok := byID[id]
		if !ok {
			t.Errorf("no %s finding in %v", id, fs)
			continue
		}
		if f.Level != level {
			t.Errorf("%s at level %d, want %d", id, f.Level, level)
		}
	}
	if IsBreaking(byID["endpoint-added"]) || !IsBreaking(byID["response-optional-property-removed"]) {
		t.Error("the rule misclassifies an added endpoint or a removed response field")
	}

	same, err := o.Changelog(context.Background(), base, base)
	if err != nil || len(same) != 0 {
		t.Errorf("a document against itself: %v, %v", same, err)
	}
	if _, err := o.Changelog(context.Background(), base, filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("a missing revision gave no error")
	}
}
