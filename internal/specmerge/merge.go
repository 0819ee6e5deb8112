// Package specmerge merges the upstream Mixpanel GDPR OpenAPI documents into
// the one document the client is generated from. It starts from the recorded
// decisions in api/reconcile.yaml and pulls the sources into it; see
// api/RECONCILIATION.md for every decision.
package specmerge

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Source is one upstream document as published.
type Source struct {
	Name string // file name, for messages
	Raw  []byte // the page copy, unmodified
	// Dir is the directory $refs into other files are resolved against (the
	// source's own directory). Empty: such a $ref is refused.
	Dir string
}

// ConflictError reports something a source says that contradicts the
// skeleton and that no recorded decision covers.
type ConflictError struct {
	Source string // the source file
	Where  string // where in the merged document
	What   string // what disagrees
}

// Error names the source, the place and the disagreement.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("unrecorded conflict in %s at %s: %s (record a decision in api/RECONCILIATION.md and api/reconcile.yaml or internal/specmerge/decisions.go)", e.Source, e.Where, e.What)
}

// Result is the merged document and what the merge repaired on the way.
type Result struct {
	Doc     map[string]any
	Repairs []string
	// Unsourced lists recorded operations that no source mentions (other
	// than those added by a decision, like D08's cancel): an upstream
	// document may have dropped them.
	Unsourced []string
	// Warnings lists what the merge left out of the sources without a
	// conflict, such as security schemes no operation uses (D25).
	Warnings []string
	// Included lists the files other than the sources that their $refs
	// pulled in, as "source: file".
	Included []string
}

// addedByDecision lists the operations the skeleton adds that no source has.
var addedByDecision = map[string]bool{"DELETE /data-deletions/v3.0/{tracking_id}": true} // D08

type merger struct {
	skel     map[string]any
	src      string          // current source name
	srcDoc   map[string]any  // current source document, for $ref resolution
	seen     map[string]bool // "METHOD /path" of every source operation
	warnings []string
}

// Merge applies the sources, highest priority first, to the skeleton.
func Merge(skeleton []byte, sources []Source) (*Result, error) {
	var skel map[string]any
	if err := yaml.Unmarshal(skeleton, &skel); err != nil {
		return nil, fmt.Errorf("skeleton: %w", err)
	}
	m := &merger{skel: skel, seen: map[string]bool{}}
	res := &Result{Doc: skel}
	for _, s := range sources {
		doc, notes, included, err := parseSource(s)
		if err != nil {
			return nil, err
		}
		res.Repairs = append(res.Repairs, notes...)
		for _, f := range included {
			res.Included = append(res.Included, s.Name+": "+f)
		}
		res.Repairs = append(res.Repairs, repairExamples(s.Name, doc)...)
		m.src, m.srcDoc = s.Name, doc
		if err := m.mergeSource(); err != nil {
			return nil, err
		}
	}
	res.Warnings = m.warnings
	skelPaths := mapOf(skel["paths"])
	for _, p := range sortedKeys(skelPaths) {
		for _, method := range methods {
			key := strings.ToUpper(method) + " " + p
			if _, ok := mapOf(skelPaths[p])[method]; ok && !m.seen[key] && !addedByDecision[key] {
				res.Unsourced = append(res.Unsourced, key)
			}
		}
	}
	return res, nil
}

func (m *merger) conflict(where, format string, args ...any) error {
	return &ConflictError{Source: m.src, Where: where, What: fmt.Sprintf(format, args...)}
}

func (m *merger) mergeSource() error {
	if err := m.mergeInfo(); err != nil {
		return err
	}
	if err := m.checkServers(); err != nil {
		return err
	}
	if err := m.checkSecurity(); err != nil {
		return err
	}
	paths := mapOf(m.srcDoc["paths"])
	for _, p := range sortedKeys(paths) {
		if err := m.mergePath(p, mapOf(paths[p])); err != nil {
			return err
		}
	}
	return nil
}

// mergeInfo fills info fields the skeleton leaves open, first source first.
func (m *merger) mergeInfo() error {
	info := mapOf(m.skel["info"])
	for k, v := range mapOf(m.srcDoc["info"]) {
		if k == "title" || k == "version" {
			continue // D10: the merged document has its own identity
		}
		if _, ok := info[k]; !ok {
			info[k] = v
		}
	}
	if ed, ok := m.srcDoc["externalDocs"]; ok {
		if _, have := m.skel["externalDocs"]; !have {
			m.skel["externalDocs"] = ed
		}
	}
	return nil
}

// checkServers expands every server template in the source and requires each
// URL to be a recorded region (D02, D09).
func (m *merger) checkServers() error {
	known := map[string]bool{}
	for _, s := range listOf(m.skel["servers"]) {
		known[str(mapOf(s)["url"])] = true
	}
	for _, s := range listOf(m.srcDoc["servers"]) {
		for _, u := range expandServer(mapOf(s)) {
			if !known[u] {
				return m.conflict("servers", "server URL %q is not a recorded region", u)
			}
		}
	}
	return nil
}

var serverVar = regexp.MustCompile(`\{([^}]+)\}`)

func expandServer(s map[string]any) []string {
	urls := []string{str(s["url"])}
	vars := mapOf(s["variables"])
	for _, name := range sortedKeys(vars) {
		v := mapOf(vars[name])
		values := []string{str(v["default"])}
		if e := listOf(v["enum"]); len(e) > 0 {
			values = values[:0]
			for _, x := range e {
				values = append(values, str(x))
			}
		}
		var next []string
		for _, u := range urls {
			for _, val := range values {
				next = append(next, strings.ReplaceAll(u, "{"+name+"}", val))
			}
		}
		urls = next
	}
	for _, u := range urls {
		if serverVar.MatchString(u) {
			return []string{u} // an undeclared variable: reported as unknown
		}
	}
	return urls
}

// checkSecurity compares the source's security schemes with the recorded
// ones (D03). A scheme no operation uses is left out with a warning (D25):
// Mixpanel bundles one shared file of schemes into every API's description.
// A scheme an operation uses that no decision covers stops the merge, naming
// its type and the operations, since it may be a new kind of credential the
// client should offer.
func (m *merger) checkSecurity() error {
	schemes := mapOf(mapOf(m.srcDoc["components"])["securitySchemes"])
	used := m.securityUse()
	for _, name := range sortedKeys(used) {
		if _, declared := schemes[name]; !declared && !securitySchemes[name] {
			return m.conflict("security", "security requirement of %s names scheme %q, which the source does not declare", strings.Join(used[name], ", "), name)
		}
	}
	for _, name := range sortedKeys(schemes) {
		s := mapOf(m.resolve(schemes[name]))
		kind := describeScheme(s)
		if !securitySchemes[name] {
			if ops := used[name]; len(ops) > 0 {
				return m.conflict("components.securitySchemes."+name,
					"security scheme %q (%s) is used by %s and is not a recorded name: Mixpanel may accept a new kind of credential, which the client would have to offer",
					name, kind, strings.Join(ops, ", "))
			}
			m.warnings = append(m.warnings, fmt.Sprintf("%s: security scheme %q (%s) is declared but no operation uses it; left out of the merged document (D25)", m.src, name, kind))
			continue
		}
		if str(s["type"]) != "http" || !strings.EqualFold(str(s["scheme"]), "bearer") {
			return m.conflict("components.securitySchemes."+name, "scheme is %v/%v, recorded is http/bearer", s["type"], s["scheme"])
		}
	}
	return nil
}

// securityUse maps every scheme named in a security requirement to where:
// the document-wide requirement, and each operation's own.
func (m *merger) securityUse() map[string][]string {
	used := map[string][]string{}
	note := func(reqs any, who string) {
		for _, r := range listOf(reqs) {
			for _, name := range sortedKeys(mapOf(r)) {
				if !slices.Contains(used[name], who) {
					used[name] = append(used[name], who)
				}
			}
		}
	}
	note(m.srcDoc["security"], "the document-wide security (every operation without its own)")
	paths := mapOf(m.srcDoc["paths"])
	for _, p := range sortedKeys(paths) {
		item := mapOf(paths[p])
		for _, method := range methods {
			op := mapOf(item[method])
			if op == nil {
				continue
			}
			who := strings.ToUpper(method) + " " + p
			if id := str(op["operationId"]); id != "" {
				who = id + " (" + who + ")"
			}
			note(op["security"], who)
		}
	}
	return used
}

// describeScheme says what kind of credential a security scheme is, for
// messages: "type http, scheme basic: Service Account".
func describeScheme(s map[string]any) string {
	var parts []string
	for _, k := range []string{"type", "scheme", "in", "name", "bearerFormat"} {
		if v := fmt.Sprint(s[k]); s[k] != nil && v != "" {
			parts = append(parts, k+" "+v)
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "no type")
	}
	out := strings.Join(parts, ", ")
	if d := str(s["description"]); d != "" {
		out += fmt.Sprintf(", described %q", d)
	}
	return out
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

func (m *merger) canonicalPath(p string) (string, error) {
	var err error
	out := pathParam.ReplaceAllStringFunc(p, func(seg string) string {
		name := seg[1 : len(seg)-1]
		canon, ok := pathParamNames[name]
		if !ok && err == nil {
			err = m.conflict("paths."+p, "path parameter %q is not a recorded name (recorded: %s)", name, strings.Join(sortedNames(pathParamNames), ", "))
		}
		return "{" + canon + "}"
	})
	// D11: the docs' curl examples add a trailing slash; the merged paths do not.
	if len(out) > 1 {
		out = strings.TrimSuffix(out, "/")
	}
	return out, err
}

var methods = []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}

func (m *merger) mergePath(p string, item map[string]any) error {
	canon, err := m.canonicalPath(p)
	if err != nil {
		return err
	}
	skelPaths := mapOf(m.skel["paths"])
	for _, method := range methods {
		op, ok := item[method]
		if !ok {
			continue
		}
		where := fmt.Sprintf("%s %s", strings.ToUpper(method), canon)
		m.seen[where] = true
		srcOp := mapOf(op)
		params := append(listOf(item["parameters"]), listOf(srcOp["parameters"])...)
		skelItem := mapOf(skelPaths[canon])
		if skelOp, ok := skelItem[method]; ok {
			if err := m.mergeOperation(where, mapOf(skelOp), srcOp, params); err != nil {
				return err
			}
			continue
		}
		newOp, err := m.newOperation(where, srcOp, params)
		if err != nil {
			return err
		}
		if skelItem == nil {
			skelItem = map[string]any{}
			skelPaths[canon] = skelItem
		}
		skelItem[method] = newOp
	}
	return nil
}

// mergeOperation pulls a source operation into a recorded one.
func (m *merger) mergeOperation(where string, dst, src map[string]any, params []any) error {
	for _, k := range []string{"description", "summary"} {
		if _, ok := dst[k]; !ok && src[k] != nil {
			dst[k] = src[k]
		}
	}
	if err := m.mergeParams(where, dst, params); err != nil {
		return err
	}
	if rb := mapOf(src["requestBody"]); rb != nil {
		rb = mapOf(m.resolve(rb))
		srcSchema := mapOf(m.resolve(mapOf(mapOf(mapOf(rb["content"])["application/json"])["schema"])))
		dstSchema := mapOf(mapOf(mapOf(mapOf(dst["requestBody"])["content"])["application/json"])["schema"])
		if dstSchema == nil {
			return m.conflict(where, "the source declares a request body; none is recorded")
		}
		if err := m.mergeSchema(where+" request body", dstSchema, srcSchema, true); err != nil {
			return err
		}
	}
	dstResponses := mapOf(dst["responses"])
	srcResponses := mapOf(src["responses"])
	for _, code := range sortedKeys(srcResponses) {
		r := mapOf(m.resolve(srcResponses[code]))
		w := where + " response " + code
		d, ok := dstResponses[code]
		if !ok {
			if !strings.HasPrefix(code, "4") && !strings.HasPrefix(code, "5") {
				return m.conflict(w, "success code %s is not recorded for this operation", code)
			}
			// A new error code flows in with the recorded error body (D07).
			dstResponses[code] = map[string]any{
				"description": orDefault(str(r["description"]), "Error"),
				"content": map[string]any{"application/json": map[string]any{
					"schema": map[string]any{"$ref": "#/components/schemas/ErrorResponse"},
				}},
			}
			continue
		}
		srcSchema := mapOf(m.resolve(mapOf(mapOf(mapOf(r["content"])["application/json"])["schema"])))
		if srcSchema == nil {
			continue
		}
		dr := mapOf(m.skelResolve(d))
		dstSchema := mapOf(mapOf(mapOf(dr["content"])["application/json"])["schema"])
		if dstSchema == nil {
			return m.conflict(w, "the source declares a body; the recorded response has none")
		}
		if err := m.mergeSchema(w, dstSchema, srcSchema, false); err != nil {
			return err
		}
	}
	return nil
}

// mergeParams checks the path and token parameters against the recorded ones
// and lets any other parameter flow in.
func (m *merger) mergeParams(where string, dst map[string]any, params []any) error {
	for _, p := range params {
		pm := mapOf(m.resolve(p))
		name, in := str(pm["name"]), str(pm["in"])
		switch {
		case in == "path":
			if _, ok := pathParamNames[name]; !ok {
				return m.conflict(where, "path parameter %q is not a recorded name", name)
			}
		case in == "query" && name == "token":
			if pm["required"] != true {
				return m.conflict(where, "the token query parameter is optional here; it is recorded as required")
			}
		default:
			if have := findParam(m, dst, in, name); have != nil {
				a, b := mapOf(have["schema"]), mapOf(pm["schema"])
				if schemaType(a) != schemaType(b) || str(a["format"]) != str(b["format"]) || (have["required"] == true) != (pm["required"] == true) {
					return m.conflict(where, "parameter %s %q is %s/%s required=%v in the source, %s/%s required=%v in the merged document",
						in, name, schemaType(b), str(b["format"]), pm["required"] == true, schemaType(a), str(a["format"]), have["required"] == true)
				}
				continue
			}
			cp := normalizeSchema(deepCopy(pm).(map[string]any), false)
			dst["parameters"] = append(listOf(dst["parameters"]), cp)
		}
	}
	return nil
}

func findParam(m *merger, op map[string]any, in, name string) map[string]any {
	for _, p := range listOf(op["parameters"]) {
		pm := mapOf(m.skelResolve(p))
		if str(pm["in"]) == in && str(pm["name"]) == name {
			return pm
		}
	}
	return nil
}

// newOperation copies an operation the skeleton does not know, with its
// references resolved, so a new upstream call appears in the client.
func (m *merger) newOperation(where string, src map[string]any, params []any) (map[string]any, error) {
	if str(src["operationId"]) == "" {
		return nil, m.conflict(where, "a new operation without an operationId")
	}
	op := mapOf(m.inline(deepCopy(src)))
	var out []any
	for _, p := range params {
		pm := mapOf(m.inline(deepCopy(p)))
		switch {
		case str(pm["in"]) == "path":
			out = append(out, map[string]any{"$ref": "#/components/parameters/TrackingId"})
		case str(pm["in"]) == "query" && str(pm["name"]) == "token":
			out = append(out, map[string]any{"$ref": "#/components/parameters/ProjectToken"})
		default:
			out = append(out, pm)
		}
	}
	op["parameters"] = out
	if rb := mapOf(op["requestBody"]); rb != nil {
		normalizeSchema(rb, true)
	}
	for _, r := range mapOf(op["responses"]) {
		normalizeSchema(mapOf(r), false)
	}
	delete(op, "security") // the document-wide bearer scheme applies
	return op, nil
}
