package specmerge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExtractForms(t *testing.T) {
	for _, tc := range []struct{ name, raw, want string }{
		{"raw yaml, openapi not first", "info: {title: t}\nopenapi: 3.0.2\n", "info: {title: t}\nopenapi: 3.0.2\n"},
		{"raw json", "\n  {\"openapi\": \"3.0.2\"}\n", "\n  {\"openapi\": \"3.0.2\"}\n"},
		{"byte order mark", "\xef\xbb\xbfopenapi: 3.0.2\n", "openapi: 3.0.2\n"},
		{"page text first", "Some page: text\nmore\nopenapi: 3.1.0\ninfo: {}\n", "openapi: 3.1.0\ninfo: {}\n"},
		{"json fence", "# Page\n```json\n{\"openapi\": \"3.0.2\"}\n```\n", "{\"openapi\": \"3.0.2\"}\n"},
		{"other fences are page text", "```sh\ncurl x\n```\n````YAML file.yaml\nopenapi: 3.0.2\n````\n", "openapi: 3.0.2\n"},
	} {
		got, err := Extract([]byte(tc.raw))
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: Extract = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	for _, raw := range []string{"<html>moved</html>\n", "```yaml\nopenapi: 3.0.2\n"} {
		if _, err := Extract([]byte(raw)); err == nil {
			t.Errorf("Extract(%q) accepted", raw)
		}
	}
}

func TestExternalRefsRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "A:\n  $ref: 'b.yaml#/B'\n")
	write("b.yaml", "B:\n  $ref: 'a.yaml#/A'\n")
	write("self.yaml", "X:\n  $ref: '#/Y'\nY:\n  $ref: '#/X'\n")
	doc := func(ref string) Source {
		return Source{Name: "s.yaml", Dir: dir, Raw: []byte("openapi: 3.0.2\ninfo: {title: t, version: '1'}\npaths: {}\ncomponents:\n  schemas:\n    S:\n      $ref: '" + ref + "'\n")}
	}
	for _, tc := range []struct {
		src  Source
		want []string
	}{
		{doc("https://user:secret@example.com/common.yaml#/S"), []string{"https://user:xxxxx@example.com/common.yaml", "is not followed", "relative path"}},
		{doc("a.yaml#/A"), []string{"refers to itself", "a.yaml#/A -> b.yaml#/B -> a.yaml#/A"}},
		{doc("self.yaml#/X"), []string{"refers to itself"}},
		{doc("b.yaml#/Nope"), []string{`no "Nope" at #/Nope`}},
		{doc("bad.yaml#/X"), []string{"the file bad.yaml, which does not exist"}},
		{Source{Name: "s.yaml", Raw: doc("a.yaml#/A").Raw}, []string{"no directory to find it in"}},
	} {
		_, _, _, err := parseSource(tc.src)
		if err == nil {
			t.Errorf("%s: accepted", tc.src.Raw)
			continue
		}
		for _, w := range append(tc.want, "s.yaml") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q lacks %q", err, w)
			}
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("error shows the URL's password: %v", err)
		}
	}
}
