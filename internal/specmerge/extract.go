package specmerge

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Extract returns the OpenAPI document (YAML or JSON) in an upstream file.
// A user can get Mixpanel's description in several forms, and each is taken
// as it is, so that an update is a file replacement:
//
//   - a saved docs page, with the YAML (or JSON) in a Markdown fence (```yaml,
//     ````yaml, ```json); the first such fence is the document;
//   - the raw JSON file (the first non-blank character is "{");
//   - the raw YAML file: the whole file, if it is a YAML mapping with an
//     "openapi" key (wherever that key is);
//   - a page whose text comes before the YAML: everything from the first line
//     starting with "openapi:".
func Extract(raw []byte) ([]byte, error) {
	raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	lines := strings.SplitAfter(string(raw), "\n")
	// A fenced block wins: the page may continue after it.
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if !strings.HasPrefix(t, "```") {
			continue
		}
		lang := strings.Fields(strings.TrimLeft(t, "`") + " ")
		if len(lang) == 0 || !fenceLangs[strings.ToLower(lang[0])] {
			continue
		}
		fence := t[:strings.LastIndex(t, "`")+1]
		var b strings.Builder
		for _, m := range lines[i+1:] {
			if strings.HasPrefix(strings.TrimSpace(m), fence) {
				return []byte(b.String()), nil
			}
			b.WriteString(m)
		}
		return nil, fmt.Errorf("%s fence %q opened on line %d is never closed", lang[0], fence, i+1)
	}
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '{' {
		return raw, nil
	}
	var whole map[string]any
	if yaml.Unmarshal(raw, &whole) == nil && whole["openapi"] != nil {
		return raw, nil
	}
	for i, l := range lines {
		if strings.HasPrefix(l, "openapi:") {
			return []byte(strings.Join(lines[i:], "")), nil
		}
	}
	return nil, fmt.Errorf("no OpenAPI document found (no ```yaml or ```json fence, no JSON object, and no line starting with \"openapi:\")")
}

// fenceLangs are the fence languages that hold the document.
var fenceLangs = map[string]bool{"yaml": true, "yml": true, "json": true}

// cloudflareEmail matches an e-mail address replaced by Cloudflare's page
// obfuscation when the page was copied. It is not valid YAML as a scalar (it
// parses as a flow sequence) and the address itself is lost.
var cloudflareEmail = regexp.MustCompile(`(?m)^[ \t]*email:[ \t]*\[email[^\]\n]*protected\][ \t]*\r?\n`)

// repairText fixes extraction artefacts that stop the YAML from meaning what
// the page meant. Each repair is reported.
func repairText(name string, doc []byte) ([]byte, []string) {
	var notes []string
	if loc := cloudflareEmail.FindIndex(doc); loc != nil {
		line := bytes.Count(doc[:loc[0]], []byte("\n")) + 1
		notes = append(notes, fmt.Sprintf("%s: removed the contact e-mail on line %d of the extracted YAML, obfuscated by the page copy (R1)", name, line))
		doc = cloudflareEmail.ReplaceAll(doc, nil)
	}
	return doc, notes
}
