package main

// Issue 17 through the command: Mixpanel's published description (the
// fixtures in internal/specmerge/testdata/published) in place of the docs
// page.

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func published(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(fixtures, "published", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPublishedDocumentIsAPatch(t *testing.T) {
	t.Parallel()
	root := newTree(t)
	before := state(t, root)

	// The JSON form, written beside the test's tree.
	var doc any
	if err := yaml.Unmarshal(read(t, published(t, "gdpr.openapi.yaml")), &doc); err != nil {
		t.Fatal(err)
	}
	asJSON, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	jsonPath := filepath.Join(t.TempDir(), "gdpr.openapi.json")
	write(t, jsonPath, asJSON)

	for _, newDoc := range []string{published(t, "gdpr.openapi.yaml"), jsonPath, published(t, "src/gdpr.openapi.yaml")} {
		code, out, errOut := runTool(t, root, "-dry-run", "-replace", docs, "-with", newDoc)
		if code != exitOK {
			t.Fatalf("%s: exit %d\n%s%s", newDoc, code, out, errOut)
		}
		mustContain(t, "report", out,
			`warning: mixpanel-docs-gdpr.openapi.txt: security scheme "ProjectSecret" (type http, scheme basic, described "Project Secret") is declared but no operation uses it; left out of the merged document (D25)`,
			`warning: mixpanel-docs-gdpr.openapi.txt: security scheme "ServiceAccount"`,
			"== Merged document: api/openapi.yaml ==\nno change to operations, parameters, schemas or fields",
			"== Generated Go API: gen/mpgdpr.gen.go ==\nno exported name added, removed or changed",
			"oasdiff (rule", "  none",
			"== Release ==\nPATCH",
			"Dry run: nothing was changed.")
		sameState(t, before, state(t, root))
	}

	// -check: an update is there to take.
	code, out, errOut := runTool(t, root, "-check", "-replace", docs, "-with", published(t, "gdpr.openapi.yaml"))
	if code != exitUpdate {
		t.Fatalf("-check: exit %d, want %d\n%s%s", code, exitUpdate, out, errOut)
	}
	mustContain(t, "-check report", out, "Check: an update is there to take (release: PATCH)", "make update-spec SOURCE=api/sources/mixpanel-docs-gdpr.openapi.txt NEW=")
	sameState(t, before, state(t, root))

	// Installing the split form writes its bundled form: api/sources stands alone.
	code, out, errOut = runTool(t, root, "-replace", docs, "-with", published(t, "src/gdpr.openapi.yaml"))
	if code != exitOK {
		t.Fatalf("install: exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "install report", out,
		"resolved $refs into mixpanel-docs-gdpr.openapi.txt: common/responses.yaml",
		"would be written in bundled form",
		"PATCH", "Wrote api/sources/mixpanel-docs-gdpr.openapi.txt, api/openapi.yaml, gen/mpgdpr.gen.go.")
	installed := read(t, filepath.Join(root, docs))
	if !bytes.HasPrefix(installed, []byte("# mixpanel-docs-gdpr.openapi.txt as published (gdpr.openapi.yaml), bundled")) ||
		bytes.Contains(installed, []byte("$ref: ./")) || !bytes.Contains(installed, []byte("ServiceAccount:")) {
		t.Errorf("installed source is not the bundled form:\n%.600s", installed)
	}
	// The installed tree is what a fresh merge and generation give, and
	// checking the same document again finds nothing to take.
	if code, out, errOut := runTool(t, root); code != exitOK || !strings.Contains(out, "none: the merged document and the generated code are unchanged") {
		t.Errorf("after the update, a report run says (exit %d):\n%s%s", code, out, errOut)
	}
	code, out, errOut = runTool(t, root, "-check", "-replace", docs, "-with", published(t, "src/gdpr.openapi.yaml"))
	if code != exitOK || !strings.Contains(out, "Check: up to date") {
		t.Errorf("-check after the update: exit %d\n%s%s", code, out, errOut)
	}
}

func TestPublishedDocumentRefused(t *testing.T) {
	t.Parallel()
	root := newTree(t)
	before := state(t, root)

	code, out, errOut := runTool(t, root, "-dry-run", "-replace", docs, "-with", published(t, "new-scheme.openapi.yaml"))
	if code != exitFailed {
		t.Fatalf("new scheme: exit %d, want %d\n%s%s", code, exitFailed, out, errOut)
	}
	mustContain(t, "stderr", errOut,
		"merge stopped: unrecorded conflict in mixpanel-docs-gdpr.openapi.txt at components.securitySchemes.ServiceAccount",
		`security scheme "ServiceAccount" (type http, scheme basic, described "Service Account") is used by create-deletion (POST /data-deletions/v3.0), get-deletion (GET /data-deletions/v3.0/{tracking_id})`,
		"nothing was changed")
	sameState(t, before, state(t, root))

	// A $ref into a file that is not there names it.
	dir := t.TempDir()
	write(t, filepath.Join(dir, "gdpr.openapi.yaml"), read(t, published(t, "src/gdpr.openapi.yaml")))
	code, out, errOut = runTool(t, root, "-replace", docs, "-with", filepath.Join(dir, "gdpr.openapi.yaml"))
	if code != exitFailed {
		t.Fatalf("missing file: exit %d, want %d\n%s%s", code, exitFailed, out, errOut)
	}
	mustContain(t, "stderr", errOut, "refers to the file common/", "which does not exist", "nothing was changed")
	sameState(t, before, state(t, root))
	if _, err := os.Stat(filepath.Join(root, "api", "sources", "common")); err == nil {
		t.Error("a common/ folder appeared in api/sources")
	}
}
