package specmerge

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// Extract returns the OpenAPI YAML embedded in an upstream page copy. The
// sources are saved web pages: one wraps the document in a Markdown ```` fence,
// the other prints page text before it. Both stay byte-for-byte as published
// so an update is a file replacement; this is where their wrapping is peeled.
func Extract(raw []byte) ([]byte, error) {
	lines := strings.SplitAfter(string(raw), "\n")
	// A fenced block (```yaml or ````yaml) wins: the page may continue after it.
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "```") && strings.Contains(t, "yaml") {
			fence := t[:strings.LastIndex(t, "`")+1]
			var b strings.Builder
			for _, m := range lines[i+1:] {
				if strings.HasPrefix(strings.TrimSpace(m), fence) {
					return []byte(b.String()), nil
				}
				b.WriteString(m)
			}
			return nil, fmt.Errorf("yaml fence %q opened on line %d is never closed", fence, i+1)
		}
	}
	for i, l := range lines {
		if strings.HasPrefix(l, "openapi:") {
			return []byte(strings.Join(lines[i:], "")), nil
		}
	}
	return nil, fmt.Errorf("no OpenAPI document found (no ```yaml fence and no line starting with \"openapi:\")")
}

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
