package specmerge_test

// The regeneration drills of issue 7: each replaces one upstream document by
// an edited copy (testdata/drills/<drill>/) of the committed sources
// (testdata/sources/, copies of api/sources) and checks what the merge, the
// generator and the reports make of it. Everything runs in temporary
// directories; api/ and gen/ are only read.
//
//	go test ./internal/specmerge -run Golden -update   # rewrite the golden files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/privacykit/mpgdpr/internal/specdiff"
	"github.com/privacykit/mpgdpr/internal/specdiff/gotool"
	"github.com/privacykit/mpgdpr/internal/specmerge"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const (
	docsSource       = "mixpanel-docs-gdpr.openapi.txt"
	thirdPartySource = "third-party-gdpr-ccpa.openapi.txt"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// sources returns the fixture copies of the sources in name order (the order
// internal/tools/specmerge merges them in), with the files of a drill in
// place of the ones they replace.
func sources(t *testing.T, drill string) []specmerge.Source {
	t.Helper()
	files := map[string]string{}
	base, err := filepath.Glob("testdata/sources/*")
	if err != nil || len(base) == 0 {
		t.Fatalf("no fixture sources: %v", err)
	}
	for _, f := range base {
		files[filepath.Base(f)] = f
	}
	if drill != "" {
		replaced, _ := filepath.Glob(filepath.Join("testdata/drills", drill, "*.txt"))
		if len(replaced) == 0 {
			t.Fatalf("drill %s replaces no source", drill)
		}
		for _, f := range replaced {
			if _, ok := files[filepath.Base(f)]; !ok {
				t.Fatalf("drill %s: %s replaces no source", drill, filepath.Base(f))
			}
			files[filepath.Base(f)] = f
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []specmerge.Source
	for _, n := range names {
		raw, err := os.ReadFile(files[n])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, specmerge.Source{Name: n, Raw: raw})
	}
	return out
}

// merge runs the merge step as internal/tools/specmerge does, with the
// recorded decisions in api/reconcile.yaml.
func merge(t *testing.T, drill string) ([]byte, error) {
	t.Helper()
	skel, err := os.ReadFile(filepath.Join(repoRoot(t), "api", "reconcile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := specmerge.Merge(skel, sources(t, drill))
	if err != nil {
		return nil, err
	}
	data, err := specmerge.Marshal(res.Doc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := specmerge.Validate(context.Background(), data); err != nil {
		t.Fatalf("drill %q: %v", drill, err)
	}
	return data, nil
}

func mustMerge(t *testing.T, drill string) []byte {
	t.Helper()
	data, err := merge(t, drill)
	if err != nil {
		t.Fatalf("drill %q: merge: %v", drill, err)
	}
	return data
}

// TestMergeGolden pins the merged output of the fixture sources and of each
// drill that merges. A change to the merge step, the fixtures or
// api/reconcile.yaml shows up here as a diff to review; rerun with -update
// to accept it.
func TestMergeGolden(t *testing.T) {
	for _, tc := range []struct{ drill, golden string }{
		{"", "testdata/merged.golden.yaml"},
		{"eta-seconds", "testdata/drills/eta-seconds/merged.golden.yaml"},
		{"new-operation", "testdata/drills/new-operation/merged.golden.yaml"},
		{"breaking", "testdata/drills/breaking/merged.golden.yaml"},
	} {
		got := mustMerge(t, tc.drill)
		if *update {
			if err := os.WriteFile(tc.golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(tc.golden)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("drill %q: merged output differs from %s (rerun with -update and review the diff):\n%s", tc.drill, tc.golden, lineDiff(string(want), string(got)))
		}
	}
}

// The fixture sources are copies of api/sources; the golden file is what the
// merge made of them. When the committed sources are the fixtures, the
// committed api/openapi.yaml must be the golden file.
func TestGoldenMatchesCommittedSpecForTheSameSources(t *testing.T) {
	root := repoRoot(t)
	for _, name := range []string{docsSource, thirdPartySource} {
		committed, err := os.ReadFile(filepath.Join(root, "api", "sources", name))
		if err != nil {
			t.Fatal(err)
		}
		fixture, err := os.ReadFile(filepath.Join("testdata", "sources", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(committed, fixture) {
			t.Skipf("api/sources/%s has moved on from the fixture copy; nothing to compare", name)
		}
	}
	committed, err := os.ReadFile(filepath.Join(root, "api", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := mustMerge(t, ""); !bytes.Equal(got, committed) {
		t.Errorf("merging api/sources does not give api/openapi.yaml (run make generate):\n%s", lineDiff(string(committed), string(got)))
	}
}

// Drill 1: an optional field added to a status response reaches the merged
// document, the generated Task struct, and a decoded response.
func TestDrillNewOptionalFieldFlowsIntoGen(t *testing.T) {
	t.Parallel()
	merged := mustMerge(t, "eta-seconds")
	changes, err := specdiff.Compare(mustMerge(t, ""), merged)
	if err != nil {
		t.Fatal(err)
	}
	want := []specdiff.Change{{Kind: specdiff.Added, Category: specdiff.Property, Where: "Task.eta_seconds", Detail: "required no, type integer"}}
	if !slices.Equal(changes, want) {
		t.Errorf("spec changes = %v, want %v", changes, want)
	}
	if testing.Short() {
		t.Skip("generation and compilation skipped in -short mode")
	}
	gen := generate(t, merged)
	api, err := specdiff.CompareGo(generate(t, mustMerge(t, "")), gen)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(api.Added, []string{"field Task.EtaSeconds"}) || api.Breaking() {
		t.Errorf("Go API diff = %+v, want only field Task.EtaSeconds added", api)
	}
	runGenTest(t, gen, `package gen

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestDecodesEtaSeconds(t *testing.T) {
	body := `+"`"+`{"status":"ok","results":{"status":"PENDING","tracking_id":"t-1","eta_seconds":90}}`+"`"+`
	rsp := &http.Response{
		StatusCode: 200,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(body)),
	}
	r, err := ParseCheckDeletionResponse(rsp)
	if err != nil {
		t.Fatal(err)
	}
	if r.JSON200 == nil || r.JSON200.Results == nil || r.JSON200.Results.EtaSeconds == nil {
		t.Fatalf("eta_seconds not decoded: %+v", r.JSON200)
	}
	if got := *r.JSON200.Results.EtaSeconds; got != 90 {
		t.Fatalf("eta_seconds = %d, want 90", got)
	}
	if *r.JSON200.Results.TrackingId != "t-1" || *r.JSON200.Results.Status != PENDING {
		t.Fatalf("the other fields: %+v", r.JSON200.Results)
	}
}
`)
}

// Drill 2: a new upstream operation becomes a new method of the generated
// client, which calls it.
func TestDrillNewOperationInClient(t *testing.T) {
	t.Parallel()
	merged := mustMerge(t, "new-operation")
	changes, err := specdiff.Compare(mustMerge(t, ""), merged)
	if err != nil {
		t.Fatal(err)
	}
	if !hasChange(changes, specdiff.Added, specdiff.Operation, "GET /data-deletions/v3.0") ||
		!hasChange(changes, specdiff.Added, specdiff.Parameter, "GET /data-deletions/v3.0 query limit") {
		t.Errorf("spec changes lack the new operation and its limit parameter: %v", changes)
	}
	for _, c := range changes {
		if c.Kind != specdiff.Added {
			t.Errorf("a new operation changed or removed something: %v", c)
		}
	}
	if testing.Short() {
		t.Skip("generation and compilation skipped in -short mode")
	}
	gen := generate(t, merged)
	api, err := specdiff.CompareGo(generate(t, mustMerge(t, "")), gen)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"method Client.ListDeletions",
		"method ClientWithResponses.ListDeletionsWithResponse",
		"func NewListDeletionsRequest",
		"func ParseListDeletionsResponse",
		"field ListDeletionsParams.Limit",
		"interface ServerInterface.ListDeletions",
	} {
		if !slices.Contains(api.Added, name) {
			t.Errorf("generated API lacks %s; added: %v", name, api.Added)
		}
	}
	if api.Breaking() {
		t.Errorf("a new operation removed or changed names: %+v", api)
	}
	if !slices.Contains(api.InterfaceGrown, "interface ServerInterface.ListDeletions") {
		t.Errorf("the grown server interface is not flagged: %v", api.InterfaceGrown)
	}
	runGenTest(t, gen, `package gen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestListDeletions(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "GET" || r.URL.Path != "/data-deletions/v3.0" || r.URL.Query().Get("token") != "tok" || r.URL.Query().Get("limit") != "5" {
			t.Errorf("request %s %s", r.Method, r.URL)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`+"`"+`{"status":"ok","results":[{"tracking_id":"t-1","status":"SUCCESS"}]}`+"`"+`))
	}))
	defer srv.Close()
	c, err := NewClientWithResponses(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	limit := 5
	r, err := c.ListDeletionsWithResponse(context.Background(), &ListDeletionsParams{Token: "tok", Limit: &limit})
	if err != nil {
		t.Fatal(err)
	}
	if r.JSON200 == nil || r.JSON200.Results == nil || len(*r.JSON200.Results) != 1 || *(*r.JSON200.Results)[0].TrackingId != "t-1" {
		t.Fatalf("decoded %+v from %s", r.JSON200, r.Body)
	}
}
`)
}

// Drill 3: a removed field and a changed type merge without conflict (one
// source alone describes them) and are reported as breaking by the spec diff,
// by oasdiff under the update rule, and by the Go API diff.
func TestDrillBreakingChangesReported(t *testing.T) {
	t.Parallel()
	base, merged := mustMerge(t, ""), mustMerge(t, "breaking")
	changes, err := specdiff.Compare(base, merged)
	if err != nil {
		t.Fatal(err)
	}
	want := []specdiff.Change{
		{Kind: specdiff.Changed, Category: specdiff.Property, Where: "Task.date_requested", Detail: "type: string -> integer"},
		{Kind: specdiff.Removed, Category: specdiff.Property, Where: "Task.requesting_user", Detail: "required no, type string"},
	}
	if !slices.Equal(changes, want) {
		t.Errorf("spec changes = %v, want %v", changes, want)
	}
	if testing.Short() {
		t.Skip("oasdiff and generation skipped in -short mode")
	}
	dir := t.TempDir()
	basePath, revPath := filepath.Join(dir, "base.yaml"), filepath.Join(dir, "revision.yaml")
	writeFile(t, basePath, base)
	writeFile(t, revPath, merged)
	findings, err := specdiff.Oasdiff{Bin: tool(t, "oasdiff")}.Changelog(context.Background(), basePath, revPath)
	if err != nil {
		t.Fatal(err)
	}
	var typeChanged, fieldRemoved bool
	for _, f := range findings {
		switch {
		case f.ID == "response-property-type-changed" && strings.Contains(f.Text, "date_requested"):
			typeChanged = f.Level == specdiff.LevelErr && specdiff.IsBreaking(f)
		case strings.Contains(f.ID, "property-removed") && strings.Contains(f.Text, "requesting_user"):
			fieldRemoved = specdiff.IsBreaking(f)
		}
	}
	if !typeChanged || !fieldRemoved {
		t.Errorf("oasdiff: date_requested type change breaking = %v, requesting_user removal breaking = %v; findings:\n%v", typeChanged, fieldRemoved, findings)
	}
	api, err := specdiff.CompareGo(generate(t, base), generate(t, merged))
	if err != nil {
		t.Fatal(err)
	}
	if !api.Breaking() || !slices.Equal(api.Removed, []string{"field Task.RequestingUser"}) ||
		!slices.Equal(api.Changed, []string{"field Task.DateRequested: *string -> *int"}) {
		t.Errorf("Go API diff = %+v", api)
	}
}

// Drill 4: a source that contradicts the recorded decisions, or another
// source, stops the merge with a *ConflictError naming the conflict.
func TestDrillUnrecordedConflictStopsMerge(t *testing.T) {
	for _, tc := range []struct {
		drill, source string
		where, what   []string // each must appear in the message
	}{
		{ // the path parameter renamed again (D01 records tracking_id and taskId)
			drill: "renamed-param", source: thirdPartySource,
			where: []string{"paths./data-deletions/v3.0/{taskID}"},
			what:  []string{`path parameter "taskID" is not a recorded name`},
		},
		{ // the two sources disagree on a field's type
			drill: "type-conflict", source: thirdPartySource,
			where: []string{"GET /data-deletions/v3.0/{tracking_id} response 200.results.date_requested"},
			what:  []string{"type is", `"string" in the merged document`},
		},
		{ // a source contradicts a recorded type (D13: project_id is an integer)
			drill: "recorded-type-conflict", source: docsSource,
			where: []string{"response 200.results.project_id"},
			what:  []string{`type is "string" in the source`},
		},
	} {
		t.Run(tc.drill, func(t *testing.T) {
			_, err := merge(t, tc.drill)
			var ce *specmerge.ConflictError
			if !errors.As(err, &ce) {
				t.Fatalf("merge error = %v, want a *ConflictError", err)
			}
			if ce.Source != tc.source {
				t.Errorf("Source = %q, want %q", ce.Source, tc.source)
			}
			msg := err.Error()
			for _, s := range append(append(tc.where, tc.what...), tc.source, "record a decision") {
				if !strings.Contains(msg, s) {
					t.Errorf("message lacks %q: %s", s, msg)
				}
			}
			for _, s := range tc.where {
				if !strings.Contains(ce.Where, s) {
					t.Errorf("Where = %q, want it to contain %q", ce.Where, s)
				}
			}
		})
	}
}

func hasChange(cs []specdiff.Change, k specdiff.Kind, cat specdiff.Category, where string) bool {
	for _, c := range cs {
		if c.Kind == k && c.Category == cat && c.Where == where {
			return true
		}
	}
	return false
}

var (
	genMu    sync.Mutex
	genCache = map[[32]byte][]byte{}
)

// generate runs the oapi-codegen pinned in tools/go.mod with the
// repository's oapi-codegen.yaml on spec, writing into a temporary file, and
// returns the generated code.
func generate(t *testing.T, spec []byte) []byte {
	t.Helper()
	genMu.Lock()
	defer genMu.Unlock()
	key := sha256.Sum256(spec)
	if g, ok := genCache[key]; ok {
		return g
	}
	root := repoRoot(t)
	dir := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(root, "oapi-codegen.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := regexp.MustCompile(`(?m)^output:.*$`)
	if n := len(out.FindAll(cfg, -1)); n != 1 {
		t.Fatalf("oapi-codegen.yaml has %d output lines, want 1", n)
	}
	genFile := filepath.Join(dir, "gen.go")
	cfg = out.ReplaceAll(cfg, []byte("output: "+genFile))
	cfgPath, specPath := filepath.Join(dir, "oapi-codegen.yaml"), filepath.Join(dir, "openapi.yaml")
	writeFile(t, cfgPath, cfg)
	writeFile(t, specPath, spec)
	bin := tool(t, "oapi-codegen")
	cmd := exec.Command(bin, "-config", cfgPath, specPath)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oapi-codegen: %v\n%s", err, b)
	}
	g, err := os.ReadFile(genFile)
	if err != nil {
		t.Fatal(err)
	}
	genCache[key] = g
	return g
}

// tool returns the executable of a tool pinned in tools/go.mod, built once
// for every test binary of the run (gotool).
func tool(t *testing.T, name string) string {
	t.Helper()
	root := repoRoot(t)
	p, err := gotool.Path(context.Background(), filepath.Join(root, "tools", "go.mod"), root, name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runGenTest compiles generated code with a test file in a scratch module
// that has the repository's requirements, and runs the test.
func runGenTest(t *testing.T, gen []byte, testSrc string) {
	t.Helper()
	root := repoRoot(t)
	dir := t.TempDir()
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	mod = regexp.MustCompile(`(?m)^module .*$`).ReplaceAll(mod, []byte("module drill"))
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "go.mod"), mod)
	writeFile(t, filepath.Join(dir, "go.sum"), sum)
	if err := os.Mkdir(filepath.Join(dir, "gen"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "gen", "gen.go"), gen)
	writeFile(t, filepath.Join(dir, "gen", "drill_test.go"), []byte(testSrc))
	cmd := exec.Command("go", "test", "-count=1", "./gen")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("generated code with the drill test: %v\n%s", err, b)
	}
	if !bytes.Contains(b, []byte("ok")) {
		t.Fatalf("go test output: %s", b)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// lineDiff lists the lines of want missing from got and the other way round,
// enough to see what moved without a diff tool.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}
