// Package specmerge merges the upstream Mixpanel GDPR OpenAPI documents into
// the one document the client is generated from. It starts from the recorded
// decisions in api/reconcile.yaml and pulls the sources into it; see
// api/RECONCILIATION.md for every decision.
package specmerge

import (
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"sort"
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

// mergeSchema merges src (resolved, from a source) into dst (from the
// skeleton, possibly a $ref into its components, which is then modified).
func (m *merger) mergeSchema(where string, dst, src map[string]any, request bool) error {
	dst = mapOf(m.skelResolve(dst))
	for _, k := range []string{"oneOf", "anyOf", "allOf"} {
		if _, ok := src[k]; ok {
			// A composition copied in earlier (a source using the same schema
			// twice) is fine; any other difference is a conflict.
			if reflect.DeepEqual(normalizeSchema(mapOf(m.inline(deepCopy(src))), request), dst) {
				return nil
			}
			return m.conflict(where, "the source's %s differs from the merged schema", k)
		}
	}
	if branches := listOf(dst["oneOf"]); len(branches) > 0 {
		st := schemaType(src)
		for _, b := range branches {
			if schemaType(mapOf(m.skelResolve(b))) == st {
				return m.mergeSchema(where, mapOf(b), src, request)
			}
		}
		return m.conflict(where, "type %q matches none of the recorded alternatives", st)
	}
	dt, st := schemaType(dst), schemaType(src)
	if dt != "" && st != "" && dt != st && !typeChanges[where] {
		return m.conflict(where, "type is %q in the source, %q in the merged document (recorded or from an earlier source; integer and number count as one type)", st, dt)
	}
	if dt == "" && st != "" {
		dst["type"] = st
	}
	if e := listOf(src["enum"]); len(e) > 0 {
		have := map[string]bool{}
		for _, v := range listOf(dst["enum"]) {
			have[fmt.Sprint(v)] = true
		}
		merged := listOf(dst["enum"])
		for _, v := range e {
			if !have[fmt.Sprint(v)] {
				merged = append(merged, v)
			}
		}
		dst["enum"] = merged
	}
	for _, k := range []string{"description", "example", "nullable", "minItems", "maxItems", "minLength", "maxLength"} {
		if _, ok := dst[k]; !ok && src[k] != nil {
			dst[k] = deepCopy(src[k])
		}
	}
	if f := str(src["format"]); f != "" && dst["format"] == nil && (request || !droppedFormats[f]) {
		dst["format"] = f
	}
	if request { // D05: strict in what is sent, so required fields add up
		req := map[string]bool{}
		for _, r := range listOf(dst["required"]) {
			req[str(r)] = true
		}
		for _, r := range listOf(src["required"]) {
			if !req[str(r)] {
				dst["required"] = append(listOf(dst["required"]), r)
				req[str(r)] = true
			}
		}
	}
	srcProps := mapOf(src["properties"])
	for _, name := range sortedKeys(srcProps) {
		sp := mapOf(m.resolve(srcProps[name]))
		props := mapOf(dst["properties"])
		if props == nil {
			props = map[string]any{}
			dst["properties"] = props
		}
		if dp, ok := props[name]; ok {
			if err := m.mergeSchema(where+"."+name, mapOf(dp), sp, request); err != nil {
				return err
			}
			continue
		}
		props[name] = normalizeSchema(mapOf(m.inline(deepCopy(sp))), request)
	}
	if si := src["items"]; si != nil {
		if di := mapOf(dst["items"]); di != nil {
			return m.mergeSchema(where+"[]", di, mapOf(m.resolve(si)), request)
		}
		dst["items"] = normalizeSchema(mapOf(m.inline(deepCopy(si))), request)
	}
	return nil
}

// normalizeSchema makes a copied source schema fit the merged document:
// 3.1 forms become 3.0 ones (D12), and response schemas become lenient (D05).
func normalizeSchema(s map[string]any, request bool) map[string]any {
	walk(s, func(n map[string]any) {
		if t, ok := n["type"].([]any); ok { // 3.1: type: [string, "null"]
			var rest []any
			for _, x := range t {
				if str(x) == "null" {
					n["nullable"] = true
				} else {
					rest = append(rest, x)
				}
			}
			if len(rest) == 1 {
				n["type"] = rest[0]
			} else {
				delete(n, "type")
			}
		}
		if c, ok := n["const"]; ok {
			n["enum"] = []any{c}
			delete(n, "const")
		}
		if ex, ok := n["examples"].([]any); ok && len(ex) > 0 {
			if _, has := n["example"]; !has {
				n["example"] = ex[0]
			}
			delete(n, "examples")
		}
		delete(n, "title")
		if !request {
			delete(n, "required")
			if ap, ok := n["additionalProperties"].(bool); ok && !ap {
				delete(n, "additionalProperties")
			}
			if droppedFormats[str(n["format"])] {
				delete(n, "format")
			}
		}
	})
	return s
}

// resolve follows a local $ref in the current source.
func (m *merger) resolve(v any) any {
	return resolveIn(m.srcDoc, v, 0)
}

// skelResolve follows a local $ref in the skeleton, returning the shared node.
func (m *merger) skelResolve(v any) any {
	return resolveIn(m.skel, v, 0)
}

func resolveIn(doc map[string]any, v any, depth int) any {
	n := mapOf(v)
	ref := str(n["$ref"])
	if ref == "" || depth > 32 {
		return v
	}
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		part, _ = url.PathUnescape(strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~"))
		cur = mapOf(cur)[part]
	}
	if cur == nil {
		return v
	}
	return resolveIn(doc, cur, depth+1)
}

// inline replaces every local $ref in v by a copy of its target.
func (m *merger) inline(v any) any {
	return inlineDepth(m.srcDoc, v, 0)
}

func inlineDepth(doc map[string]any, v any, depth int) any {
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x["$ref"]; ok && depth < 32 {
			return inlineDepth(doc, deepCopy(resolveIn(doc, x, 0)), depth+1)
		}
		for k, e := range x {
			x[k] = inlineDepth(doc, e, depth)
		}
	case []any:
		for i, e := range x {
			x[i] = inlineDepth(doc, e, depth)
		}
	}
	return v
}

func schemaType(s map[string]any) string {
	if t := str(s["type"]); t != "" {
		if t == "integer" {
			return "number" // D13: integer and number are one JSON type
		}
		return t
	}
	if s["properties"] != nil {
		return "object"
	}
	if s["items"] != nil {
		return "array"
	}
	return ""
}

func walk(v any, fn func(map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		fn(x)
		for _, k := range sortedKeys(x) {
			walk(x[k], fn)
		}
	case []any:
		for _, e := range x {
			walk(e, fn)
		}
	}
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

func mapOf(v any) map[string]any { m, _ := v.(map[string]any); return m }
func listOf(v any) []any         { l, _ := v.([]any); return l }
func str(v any) string           { s, _ := v.(string); return s }

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func sortedNames(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
