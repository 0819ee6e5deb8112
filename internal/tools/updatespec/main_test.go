package main

// These tests drive the command on scratch copies of the repository layout
// (go.mod, oapi-codegen.yaml, api/, gen/) built from the fixture sources in
// internal/specmerge/testdata, with the real api/reconcile.yaml and the real
// tools/go.mod. The repository's own api/ and gen/ are only read.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/privacykit/mpgdpr/internal/specdiff/gotool"
	"github.com/privacykit/mpgdpr/internal/specmerge"
)

const (
	fixtures   = "../../specmerge/testdata"
	docs       = "api/sources/mixpanel-docs-gdpr.openapi.txt"
	thirdParty = "api/sources/third-party-gdpr-ccpa.openapi.txt"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func drill(t *testing.T, name, file string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(fixtures, "drills", name, filepath.Base(file)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// baseline is the merged document and generated code of the fixture
// sources, computed once: what a clean checkout would hold.
var baseline = sync.OnceValues(func() ([2][]byte, error) {
	var out [2][]byte
	root, err := filepath.Abs("../../..")
	if err != nil {
		return out, err
	}
	bins, err := tools()
	if err != nil {
		return out, err
	}
	u := &update{config: config{Root: root, ToolsModfile: filepath.Join(root, "tools", "go.mod"), OasdiffBin: bins[0], CodegenBin: bins[1]}}
	skel, err := os.ReadFile(filepath.Join(root, skeletonPath))
	if err != nil {
		return out, err
	}
	var srcs []specmerge.Source
	for _, n := range []string{docs, thirdParty} {
		raw, err := os.ReadFile(filepath.Join(fixtures, "sources", filepath.Base(n)))
		if err != nil {
			return out, err
		}
		srcs = append(srcs, specmerge.Source{Name: filepath.Base(n), Raw: raw})
	}
	res, err := specmerge.Merge(skel, srcs)
	if err != nil {
		return out, err
	}
	if out[0], err = specmerge.Marshal(res.Doc); err != nil {
		return out, err
	}
	tmp, err := os.MkdirTemp("", "updatespec-test-")
	if err != nil {
		return out, err
	}
	defer os.RemoveAll(tmp)
	spec := filepath.Join(tmp, "openapi.yaml")
	if err := os.WriteFile(spec, out[0], 0o644); err != nil {
		return out, err
	}
	out[1], err = u.generate(context.Background(), tmp, spec)
	return out, err
})

// newTree lays out a scratch repository holding the fixture sources and the
// merged document and generated code they give.
func newTree(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs oasdiff, oapi-codegen and go build")
	}
	base, err := baseline()
	if err != nil {
		t.Fatalf("baseline: %v", err)
	}
	real, dir := repoRoot(t), t.TempDir()
	copyFile := func(from, to string) {
		t.Helper()
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, to), data)
	}
	for _, f := range []string{"go.mod", "go.sum", codegenCfg, skeletonPath} {
		copyFile(filepath.Join(real, f), f)
	}
	for _, f := range []string{docs, thirdParty} {
		copyFile(filepath.Join(fixtures, "sources", filepath.Base(f)), f)
	}
	write(t, filepath.Join(dir, mergedPath), base[0])
	write(t, filepath.Join(dir, "gen", "mpgdpr.gen.go"), base[1])
	return dir
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// state fingerprints every file under api/ and gen/, modes included.
func state(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range []string{"api", "gen"} {
		err := filepath.WalkDir(filepath.Join(root, d), func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			fi, err := e.Info()
			if err != nil {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			out[rel] = fmt.Sprintf("%v %x", fi.Mode(), sha256.Sum256(data))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func sameState(t *testing.T, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed (or vanished)", k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s appeared", k)
		}
	}
}

// tools are the oasdiff and oapi-codegen executables, built once for every
// test binary of the run (gotool), so that the tests do not pay for `go tool`
// on each call.
var tools = sync.OnceValues(func() ([2]string, error) {
	var out [2]string
	root, err := filepath.Abs("../../..")
	if err != nil {
		return out, err
	}
	for i, name := range []string{"oasdiff", "oapi-codegen"} {
		if out[i], err = gotool.Path(context.Background(), filepath.Join(root, "tools", "go.mod"), root, name); err != nil {
			return out, err
		}
	}
	return out, nil
})

// runTool runs the command on a scratch tree, with the built tools.
func runTool(t *testing.T, root string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	bins, err := tools()
	if err != nil {
		t.Fatal(err)
	}
	return runToolGo(t, root, append([]string{"-oasdiff", bins[0], "-oapi-codegen", bins[1]}, args...)...)
}

// goShim is a go command for runToolGo's -go (see gotool.WriteShim).
func goShim(t *testing.T) (goCmd, log string) {
	t.Helper()
	bins, err := tools()
	if err != nil {
		t.Fatal(err)
	}
	goCmd, log, err = gotool.WriteShim(t.TempDir(), map[string]string{"oasdiff": bins[0], "oapi-codegen": bins[1]})
	if err != nil {
		t.Fatal(err)
	}
	return goCmd, log
}

// runToolGo runs the command on a scratch tree as make update-spec does,
// with the tools through go tool (or through -go's command).
func runToolGo(t *testing.T, root string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	all := append([]string{"-root", root, "-tools-modfile", filepath.Join(repoRoot(t), "tools", "go.mod")}, args...)
	code = run(context.Background(), all, &o, &e)
	return code, o.String(), e.String()
}

func mustContain(t *testing.T, what, text string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(text, s) {
			t.Errorf("%s lacks %q:\n%s", what, s, text)
		}
	}
}

func TestReportOnCleanTree(t *testing.T) {
	t.Parallel()
	root := newTree(t)
	before := state(t, root)
	goCmd, goLog := goShim(t)
	code, out, errOut := runToolGo(t, root, "-go", goCmd) // through go tool, as make update-spec runs
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	calls, err := os.ReadFile(goLog)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, "go commands run", string(calls),
		"tool -modfile="+filepath.Join(repoRoot(t), "tools", "go.mod")+" oapi-codegen -config ")
	mustContain(t, "report", out,
		"== Merged document: api/openapi.yaml ==\nunchanged",
		"== Generated Go API: gen/mpgdpr.gen.go ==\nunchanged",
		"none: the merged document and the generated code are unchanged",
		"Nothing to write")
	sameState(t, before, state(t, root))

	// Replacing a source by the same document is a no-op too.
	same, err := filepath.Abs(filepath.Join(fixtures, "sources", filepath.Base(thirdParty)))
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runTool(t, root, "-replace", thirdParty, "-with", same)
	if code != exitOK || !strings.Contains(out, "Nothing to write") {
		t.Errorf("same document: exit %d\n%s%s", code, out, errOut)
	}
	sameState(t, before, state(t, root))
}

// Drill 1 through the command: an additive update installs and is a minor
// release.
func TestAdditiveUpdateInstalls(t *testing.T) {
	t.Parallel()
	root := newTree(t)
	newDoc := drill(t, "eta-seconds", thirdParty)
	code, out, errOut := runTool(t, root, "-replace", thirdParty, "-with", newDoc)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "report", out,
		"added   property  Task.eta_seconds: required no, type integer",
		"added (1):\n  field Task.EtaSeconds",
		"oasdiff (rule", "  none",
		"MINOR",
		"Wrote api/sources/third-party-gdpr-ccpa.openapi.txt, api/openapi.yaml, gen/mpgdpr.gen.go.")
	if !bytes.Equal(read(t, filepath.Join(root, thirdParty)), read(t, newDoc)) {
		t.Error("the source was not replaced by the new document")
	}
	if !bytes.Contains(read(t, filepath.Join(root, mergedPath)), []byte("eta_seconds:")) {
		t.Error("api/openapi.yaml lacks eta_seconds")
	}
	if !regexp.MustCompile(`EtaSeconds\s+\*int `).Match(read(t, filepath.Join(root, "gen", "mpgdpr.gen.go"))) {
		t.Error("gen/mpgdpr.gen.go lacks Task.EtaSeconds")
	}
	// What was installed is what a fresh merge and generation give.
	code, out, errOut = runTool(t, root)
	if code != exitOK || !strings.Contains(out, "none: the merged document and the generated code are unchanged") {
		t.Errorf("after the update, a report run says (exit %d):\n%s%s", code, out, errOut)
	}
}

// Drill 2 through the command, dry: the new client method is reported and
// nothing is written.
func TestDryRunReportsNewOperation(t *testing.T) {
	t.Parallel()
	root := newTree(t)
	before := state(t, root)
	code, out, errOut := runTool(t, root, "-dry-run", "-replace", thirdParty, "-with", drill(t, "new-operation", thirdParty))
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "report", out,
		"added   operation GET /data-deletions/v3.0: operationId listDeletions",
		"  method Client.ListDeletions\n",
		"  method ClientWithResponses.ListDeletionsWithResponse\n",
		"note: 3 method(s) added to exported interfaces",
		"MINOR", "Dry run: nothing was changed.")
	sameState(t, before, state(t, root))
}

// Drill 3 through the command: breaking changes stop the update.
func TestBreakingUpdateRefused(t *testing.T) {
	t.Parallel()
	root := newTree(t)
	before := state(t, root)
	for _, dry := range []bool{false, true} {
		args := []string{"-replace", docs, "-with", drill(t, "breaking", docs)}
		if dry {
			args = append(args, "-dry-run")
		}
		code, out, errOut := runTool(t, root, args...)
		if code != exitBreaking {
			t.Fatalf("dry=%v: exit %d, want %d\n%s%s", dry, code, exitBreaking, out, errOut)
		}
		mustContain(t, "report", out,
			"changed property  Task.date_requested: type: string -> integer",
			"removed property  Task.requesting_user",
			"removed (1):\n  field Task.RequestingUser",
			"changed (1):\n  field Task.DateRequested: *string -> *int",
			"error   [response-property-type-changed] GET /data-deletions/v3.0/{tracking_id}",
			"info    [response-optional-property-removed] GET /data-deletions/v3.0/{tracking_id}",
			"Go API: 1 exported name(s) removed, 1 changed",
			"MAJOR", "new major version",
			"Refused", "-accept-breaking")
		sameState(t, before, state(t, root))
	}
}

func TestBreakingUpdateAccepted(t *testing.T) {
	t.Parallel()
	root := newTree(t)
	code, out, errOut := runTool(t, root, "-accept-breaking", "-replace", docs, "-with", drill(t, "breaking", docs))
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "report", out, "MAJOR", "Wrote api/sources/mixpanel-docs-gdpr.openapi.txt, api/openapi.yaml, gen/mpgdpr.gen.go.")
	gen := read(t, filepath.Join(root, "gen", "mpgdpr.gen.go"))
	if bytes.Contains(gen, []byte("RequestingUser")) || !regexp.MustCompile(`DateRequested\s+\*int `).Match(gen) {
		t.Error("gen/mpgdpr.gen.go does not have the accepted changes")
	}
}

// Drill 4 through the command: a conflict names itself and changes nothing.
func TestConflictLeavesTreeUntouched(t *testing.T) {
	t.Parallel()
	root := newTree(t)
	before := state(t, root)
	for _, tc := range []struct{ drill, file, want string }{
		{"renamed-param", thirdParty, `path parameter "taskID" is not a recorded name`},
		{"type-conflict", thirdParty, "response 200.results.date_requested: type is"},
	} {
		code, out, errOut := runTool(t, root, "-accept-breaking", "-replace", tc.file, "-with", drill(t, tc.drill, tc.file))
		if code != exitFailed {
			t.Fatalf("%s: exit %d, want %d\n%s%s", tc.drill, code, exitFailed, out, errOut)
		}
		mustContain(t, tc.drill+" stderr", errOut, "merge stopped: unrecorded conflict in "+filepath.Base(tc.file), tc.want, "nothing was changed")
		sameState(t, before, state(t, root))
	}
}

// An update whose generated code breaks the module's own callers, tests
// included, is undone.
func TestFailedBuildRestoresTree(t *testing.T) {
	t.Parallel()
	root := newTree(t)
	write(t, filepath.Join(root, "caller_test.go"), []byte("package mpgdpr\n\nimport \"github.com/privacykit/mpgdpr/gen\"\n\nvar _ = gen.Task{}.RequestingUser\n"))
	if err := os.Chmod(filepath.Join(root, docs), 0o600); err != nil { // the mode is restored too
		t.Fatal(err)
	}
	before := state(t, root)
	code, out, errOut := runTool(t, root, "-accept-breaking", "-replace", docs, "-with", drill(t, "breaking", docs))
	if code != exitFailed {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitFailed, out, errOut)
	}
	mustContain(t, "stderr", errOut, "does not compile", "RequestingUser", "are restored; nothing was changed")
	sameState(t, before, state(t, root))

	// -no-build installs anyway, for the callers to be fixed afterwards.
	code, out, errOut = runTool(t, root, "-no-build", "-accept-breaking", "-replace", docs, "-with", drill(t, "breaking", docs))
	if code != exitOK {
		t.Fatalf("-no-build: exit %d\n%s%s", code, out, errOut)
	}
	if bytes.Contains(read(t, filepath.Join(root, "gen", "mpgdpr.gen.go")), []byte("RequestingUser")) {
		t.Error("-no-build did not install")
	}
}

func TestAddSource(t *testing.T) {
	t.Parallel()
	root := newTree(t)
	added := "api/sources/zz-extra.openapi.txt"
	before := state(t, root)

	// A new source that conflicts is not added.
	code, out, errOut := runTool(t, root, "-add", added, "-with", drill(t, "renamed-param", thirdParty))
	if code != exitFailed {
		t.Fatalf("conflicting -add: exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "stderr", errOut, "unrecorded conflict in zz-extra.openapi.txt")
	sameState(t, before, state(t, root))

	code, out, errOut = runTool(t, root, "-add", added, "-with", drill(t, "eta-seconds", thirdParty))
	if code != exitOK {
		t.Fatalf("-add: exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "report", out, "Adding api/sources/zz-extra.openapi.txt", "field Task.EtaSeconds", "MINOR", "Wrote api/sources/zz-extra.openapi.txt")
	if _, err := os.Stat(filepath.Join(root, added)); err != nil {
		t.Error(err)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write(t, filepath.Join(root, thirdParty), []byte("openapi: 3.0.0\n"))
	notOpenAPI := filepath.Join(root, "page.html")
	write(t, notOpenAPI, []byte("<html>moved</html>\n"))
	doc := filepath.Join(root, thirdParty)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-replace", thirdParty}, "-with names the new document"},
		{[]string{"-with", doc}, "-with needs -replace or -add"},
		{[]string{"-replace", thirdParty, "-add", "api/sources/x.txt", "-with", doc}, "exclude each other"},
		{[]string{"-replace", "api/sources/missing.txt", "-with", doc}, "use -add for a new source"},
		{[]string{"-add", thirdParty, "-with", doc}, "exists (use -replace)"},
		{[]string{"-replace", "api/reconcile.yaml", "-with", doc}, "is not a file directly in api/sources"},
		{[]string{"-replace", thirdParty, "-with", notOpenAPI}, "no OpenAPI document found"},
		{[]string{"-replace", thirdParty, "-with", filepath.Join(root, "nope.txt")}, "no such file"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"-bogus"}, "flag provided but not defined"},
	} {
		var o, e bytes.Buffer
		code := run(context.Background(), append([]string{"-root", root}, tc.args...), &o, &e)
		if code != exitUsage || !strings.Contains(e.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and %q", tc.args, code, e.String(), exitUsage, tc.want)
		}
	}
}

func TestSnapshotRestore(t *testing.T) {
	dir := t.TempDir()
	existing, fresh := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write(t, existing, []byte("old"))
	if err := os.Chmod(existing, 0o600); err != nil {
		t.Fatal(err)
	}
	se, err := take(existing)
	if err != nil {
		t.Fatal(err)
	}
	sf, err := take(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if se.perm() != 0o600 || sf.perm() != 0o644 {
		t.Errorf("perm: existing %v, fresh %v", se.perm(), sf.perm())
	}
	write(t, existing, []byte("new"))
	if err := os.Chmod(existing, 0o644); err != nil {
		t.Fatal(err)
	}
	write(t, fresh, []byte("new"))
	if err := se.restore(); err != nil {
		t.Fatal(err)
	}
	if err := sf.restore(); err != nil {
		t.Fatal(err)
	}
	if got := string(read(t, existing)); got != "old" {
		t.Errorf("restored content %q", got)
	}
	if fi, _ := os.Stat(existing); fi.Mode().Perm() != 0o600 {
		t.Errorf("restored mode %v", fi.Mode().Perm())
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("a file the update created survives its restore: %v", err)
	}
}

// The command's output for the same update is the same every time.
func TestReportIsDeterministic(t *testing.T) {
	t.Parallel()
	root := newTree(t)
	args := []string{"-dry-run", "-replace", thirdParty, "-with", drill(t, "new-operation", thirdParty)}
	_, first, _ := runTool(t, root, args...)
	_, again, _ := runTool(t, root, args...)
	if first != again {
		t.Errorf("two runs differ:\n%s\n----\n%s", first, again)
	}
}
