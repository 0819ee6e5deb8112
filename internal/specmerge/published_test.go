package specmerge_test

// The drills of issue 17: Mixpanel's published description (fixtures of our
// own in its shape, testdata/published/) in place of the docs page, in every
// form a user can get it. It must merge to the same document whatever the
// form, with the two unused security schemes left out (D25), and change no
// operation, field or generated Go name: a patch release.

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/privacykit/mpgdpr/internal/specdiff"
	"github.com/privacykit/mpgdpr/internal/specmerge"
)

const publishedDir = "testdata/published"

// mergeReplacing merges the fixture sources with the docs source replaced.
func mergeReplacing(t *testing.T, docs specmerge.Source) (*specmerge.Result, []byte, error) {
	t.Helper()
	skel, err := os.ReadFile(filepath.Join(repoRoot(t), "api", "reconcile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	srcs := sources(t, "")
	i := slices.IndexFunc(srcs, func(s specmerge.Source) bool { return s.Name == docsSource })
	if i < 0 {
		t.Fatalf("no %s among the fixture sources", docsSource)
	}
	docs.Name = docsSource
	srcs[i] = docs
	res, err := specmerge.Merge(skel, srcs)
	if err != nil {
		return nil, nil, err
	}
	data, err := specmerge.Marshal(res.Doc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := specmerge.Validate(t.Context(), data); err != nil {
		t.Fatal(err)
	}
	return res, data, nil
}

// publishedForms is the fixture in every form a user can get it.
func publishedForms(t *testing.T) map[string]specmerge.Source {
	t.Helper()
	bundled, err := os.ReadFile(filepath.Join(publishedDir, "gdpr.openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(bundled, &doc); err != nil {
		t.Fatal(err)
	}
	asJSON, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	// As some encoders write it: tabs, and "/" escaped (which YAML parsers reject).
	tabbed, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	tabbed = bytes.ReplaceAll(tabbed, []byte("https://"), []byte(`https:\/\/`))
	split, err := os.ReadFile(filepath.Join(publishedDir, "src", "gdpr.openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	page := func(lang string, body []byte) []byte {
		return []byte("> ## Documentation Index\n> Fetch the complete documentation index at: https://docs.mixpanel.com/llms.txt\n\n# Create a Deletion\n\n## OpenAPI\n\n````" +
			lang + " openapi/gdpr.openapi.yaml POST /data-deletions/v3.0\n" + strings.TrimSuffix(string(body), "\n") + "\n````\n\nMore page text.\n")
	}
	dir := publishedDir
	return map[string]specmerge.Source{
		"yaml":                           {Raw: bundled, Dir: dir},
		"json":                           {Raw: asJSON, Dir: dir},
		"json, tabs and escaped slashes": {Raw: tabbed, Dir: dir},
		"docs page yaml":                 {Raw: page("yaml", bundled), Dir: dir},
		"docs page json":                 {Raw: page("json", asJSON), Dir: dir},
		"split with refs":                {Raw: split, Dir: filepath.Join(dir, "src")},
	}
}

func TestDrillPublishedDocumentIsAPatch(t *testing.T) {
	t.Parallel()
	base := mustMerge(t, "")
	forms := publishedForms(t)
	_, want, err := mergeReplacing(t, forms["yaml"])
	if err != nil {
		t.Fatalf("the published document does not merge: %v", err)
	}
	for _, name := range sortedNames(forms) {
		t.Run(name, func(t *testing.T) {
			res, got, err := mergeReplacing(t, forms[name])
			if err != nil {
				t.Fatalf("merge: %v", err)
			}
			if string(got) != string(want) {
				t.Errorf("merged output differs from the YAML form's:\n%s", lineDiff(string(want), string(got)))
			}
			if len(res.Warnings) != 2 {
				t.Errorf("warnings = %q, want the two unused schemes", res.Warnings)
			}
			for i, scheme := range []string{"ProjectSecret", "ServiceAccount"} {
				if i < len(res.Warnings) {
					mustHave(t, res.Warnings[i], docsSource, `security scheme "`+scheme+`"`, "type http, scheme basic", "no operation uses it", "(D25)")
				}
			}
			var included []string
			if name == "split with refs" {
				included = []string{docsSource + ": common/app-api.yaml", docsSource + ": common/responses.yaml", docsSource + ": common/securitySchemes.yaml"}
			}
			if got := slices.Sorted(slices.Values(res.Included)); !slices.Equal(got, included) {
				t.Errorf("Included = %q, want %q", got, included)
			}
		})
	}

	// No operation, parameter, schema or field changes; the text does.
	changes, err := specdiff.Compare(base, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 0 {
		t.Errorf("spec changes = %v, want none", changes)
	}
	if string(base) == string(want) {
		t.Error("the merged document did not change at all: the drill would report release none, not PATCH")
	}
	var merged struct {
		Paths map[string]map[string]struct {
			OperationID string `yaml:"operationId"`
		}
		Components struct {
			SecuritySchemes map[string]any `yaml:"securitySchemes"`
		}
	}
	if err := yaml.Unmarshal(want, &merged); err != nil {
		t.Fatal(err)
	}
	// Mixpanel's operationIds (create-retrieval, ...) do not rename the recorded operations.
	for path, ops := range map[string]map[string]string{
		"/data-retrievals/v3.0":               {"post": "createRetrieval"},
		"/data-retrievals/v3.0/{tracking_id}": {"get": "checkRetrieval"},
		"/data-deletions/v3.0":                {"post": "createDeletion"},
		"/data-deletions/v3.0/{tracking_id}":  {"get": "checkDeletion", "delete": "cancelDeletion"},
	} {
		for method, id := range ops {
			if got := merged.Paths[path][method].OperationID; got != id {
				t.Errorf("%s %s: operationId %q, want %q", method, path, got, id)
			}
		}
	}
	if got := slices.Sorted(func(yield func(string) bool) {
		for k := range merged.Components.SecuritySchemes {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(got, []string{"OAuthToken"}) {
		t.Errorf("merged security schemes = %v, want only OAuthToken", got)
	}

	if testing.Short() {
		t.Skip("generation skipped in -short mode")
	}
	api, err := specdiff.CompareGo(generate(t, base), generate(t, want))
	if err != nil {
		t.Fatal(err)
	}
	if !api.Empty() {
		t.Errorf("the generated Go API changes: %+v", api)
	}
}

// A bundled source merges like the split one it came from, and has no $ref
// into another file left.
func TestBundlePublishedSplitForm(t *testing.T) {
	split := publishedForms(t)["split with refs"]
	split.Name = docsSource
	data, files, err := specmerge.Bundle(split)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 || strings.Contains(string(data), "$ref: ./") || strings.Contains(string(data), "common/") {
		t.Fatalf("bundle: files %q; external refs left:\n%s", files, data)
	}
	_, fromSplit, err := mergeReplacing(t, split)
	if err != nil {
		t.Fatal(err)
	}
	_, fromBundle, err := mergeReplacing(t, specmerge.Source{Raw: data})
	if err != nil {
		t.Fatal(err)
	}
	if string(fromSplit) != string(fromBundle) {
		t.Errorf("the bundle merges differently:\n%s", lineDiff(string(fromSplit), string(fromBundle)))
	}
	// A document without external refs has nothing to bundle.
	if data, files, err := specmerge.Bundle(publishedForms(t)["yaml"]); err != nil || data != nil || files != nil {
		t.Errorf("bundled form: %d bytes, files %q, err %v; want none", len(data), files, err)
	}
}

// A $ref to a file that is not there refuses the document, naming the file.
func TestDrillPublishedMissingRefFile(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"gdpr.openapi.yaml", "common/app-api.yaml", "common/securitySchemes.yaml"} { // not common/responses.yaml
		data, err := os.ReadFile(filepath.Join(publishedDir, "src", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, f), data)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "gdpr.openapi.yaml"))
	_, _, err := mergeReplacing(t, specmerge.Source{Raw: raw, Dir: dir})
	var ce *specmerge.ConflictError
	if err == nil || errors.As(err, &ce) {
		t.Fatalf("err = %v, want a missing-file error", err)
	}
	mustHave(t, err.Error(), docsSource, "./common/responses.yaml#/401Unauthorized", "the file common/responses.yaml, which does not exist")
}

// Operations that name a scheme no decision covers stop the merge, and the
// message says what the scheme is and who uses it.
func TestDrillPublishedNewSchemeStopsMerge(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(publishedDir, "new-scheme.openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = mergeReplacing(t, specmerge.Source{Raw: raw, Dir: publishedDir})
	var ce *specmerge.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *ConflictError", err)
	}
	if ce.Source != docsSource || ce.Where != "components.securitySchemes.ServiceAccount" {
		t.Errorf("Source %q, Where %q", ce.Source, ce.Where)
	}
	mustHave(t, err.Error(), `security scheme "ServiceAccount" (type http, scheme basic, described "Service Account")`,
		"create-deletion (POST /data-deletions/v3.0)", "get-deletion (GET /data-deletions/v3.0/{tracking_id})",
		"not a recorded name", "new kind of credential", "record a decision")
	if strings.Contains(ce.What, "create-retrieval") || strings.Contains(ce.What, "ProjectSecret") {
		t.Errorf("the message names operations or schemes not involved: %s", ce.What)
	}
}

func mustHave(t *testing.T, text string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(text, s) {
			t.Errorf("%q lacks %q", text, s)
		}
	}
}

func sortedNames(m map[string]specmerge.Source) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
