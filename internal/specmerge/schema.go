package specmerge

import (
	"fmt"
	"net/url"
	"reflect"
	"sort"
	"strings"
)

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

func listOf(v any) []any { l, _ := v.([]any); return l }

func str(v any) string { s, _ := v.(string); return s }

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
