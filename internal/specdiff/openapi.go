// Package specdiff reports what a regeneration changes: between two merged
// OpenAPI documents (operations, parameters, schemas and their properties
// added, removed or changed) and between two generated Go files (exported
// names added, removed or changed). internal/tools/updatespec prints both
// when an upstream document is replaced. The output is sorted, so the same
// two inputs always give the same report.
package specdiff

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Kind says whether something was added, removed or changed.
type Kind string

// The kinds of change.
const (
	Added   Kind = "added"
	Removed Kind = "removed"
	Changed Kind = "changed"
)

// Category is what a change is about.
type Category string

// The categories, in report order.
const (
	Operation Category = "operation"
	Parameter Category = "parameter"
	Schema    Category = "schema"
	Property  Category = "property"
)

var categoryOrder = map[Category]int{Operation: 0, Parameter: 1, Schema: 2, Property: 3}
var kindOrder = map[Kind]int{Removed: 0, Changed: 1, Added: 2}

// Change is one difference between two documents.
type Change struct {
	Kind     Kind
	Category Category
	// Where names the element: "GET /data-deletions/v3.0" for an operation,
	// "GET /data-deletions/v3.0 query limit" for a parameter, "Task" for a
	// component schema, "Task.eta_seconds" for a property ("[]" steps into
	// array items, "oneOf[1]" into an alternative). Schemas written inline in
	// an operation are named after it: "GET /x response 200".
	Where string
	// Detail describes the element (for added and removed) or what changed:
	// "type: string -> integer; required: no -> yes".
	Detail string
}

// String renders the change on one line.
func (c Change) String() string {
	s := fmt.Sprintf("%-7s %-9s %s", c.Kind, c.Category, c.Where)
	if c.Detail != "" {
		s += ": " + c.Detail
	}
	return s
}

// Compare loads two merged documents with kin-openapi and returns their
// differences, sorted by category, place and kind.
func Compare(base, revision []byte) ([]Change, error) {
	b, err := load(base)
	if err != nil {
		return nil, fmt.Errorf("base: %w", err)
	}
	r, err := load(revision)
	if err != nil {
		return nil, fmt.Errorf("revision: %w", err)
	}
	return CompareDocs(b, r), nil
}

func load(data []byte) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	return doc, nil
}

// CompareDocs returns the differences between two loaded documents. An
// added element is listed with everything in it (a new operation with its
// parameters and inline schemas, a new schema with its properties); a
// removed one is listed alone.
func CompareDocs(base, revision *openapi3.T) []Change {
	b, r := index(base), index(revision)
	var out []Change
	for key, bi := range b {
		ri, ok := r[key]
		switch {
		case !ok:
			if bi.parent != "" && b[bi.parent] != nil && r[bi.parent] == nil {
				continue // reported with its parent
			}
			out = append(out, Change{Removed, bi.cat, bi.where, bi.summary()})
		default:
			if d := bi.diff(ri); d != "" {
				out = append(out, Change{Changed, bi.cat, bi.where, d})
			}
		}
	}
	for key, ri := range r {
		if _, ok := b[key]; !ok {
			out = append(out, Change{Added, ri.cat, ri.where, ri.summary()})
		}
	}
	Sort(out)
	return out
}

// Sort orders changes by category, place, kind and detail.
func Sort(cs []Change) {
	sort.Slice(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		if a.Category != b.Category {
			return categoryOrder[a.Category] < categoryOrder[b.Category]
		}
		if a.Where != b.Where {
			return a.Where < b.Where
		}
		if a.Kind != b.Kind {
			return kindOrder[a.Kind] < kindOrder[b.Kind]
		}
		return a.Detail < b.Detail
	})
}

// item is one comparable element of a document.
type item struct {
	cat    Category
	where  string
	parent string // key of the enclosing item, "" at the top
	attrs  []attr // what is compared, in a fixed order
}

type attr struct{ name, value string }

func (it *item) summary() string {
	var parts []string
	for _, a := range it.attrs {
		if a.value != "" {
			parts = append(parts, a.name+" "+a.value)
		}
	}
	return strings.Join(parts, ", ")
}

func (it *item) diff(other *item) string {
	var parts []string
	for i, a := range it.attrs {
		b := other.attrs[i]
		switch {
		case a.value == b.value:
		case a.name == "enum" && a.value != "" && b.value != "":
			parts = append(parts, "enum: "+enumDiff(a.value, b.value))
		default:
			parts = append(parts, fmt.Sprintf("%s: %s -> %s", a.name, orNone(a.value), orNone(b.value)))
		}
	}
	return strings.Join(parts, "; ")
}

// enumDiff lists the values added to and removed from an enum.
func enumDiff(base, revision string) string {
	b, r := strings.Split(base, enumSep), strings.Split(revision, enumSep)
	var parts []string
	for _, v := range b {
		if !contains(r, v) {
			parts = append(parts, "-"+v)
		}
	}
	for _, v := range r {
		if !contains(b, v) {
			parts = append(parts, "+"+v)
		}
	}
	return strings.Join(parts, " ")
}

const enumSep = ", "

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

type indexer map[string]*item

func (ix indexer) add(cat Category, where, parent string, attrs ...attr) {
	ix[string(cat)+" "+where] = &item{cat: cat, where: where, parent: parent, attrs: attrs}
}

func key(cat Category, where string) string { return string(cat) + " " + where }

func index(doc *openapi3.T) indexer {
	ix := indexer{}
	if doc.Paths != nil {
		for path, pi := range doc.Paths.Map() {
			for method, op := range pi.Operations() {
				ix.operation(strings.ToUpper(method)+" "+path, pi, op)
			}
		}
	}
	if doc.Components != nil {
		for name, s := range doc.Components.Schemas {
			ix.schema(Schema, name, "", s, "")
		}
		for name, r := range doc.Components.Responses {
			if r == nil || r.Value == nil || r.Ref != "" {
				continue
			}
			ix.content("response "+name, "", r.Value.Content)
		}
		for name, rb := range doc.Components.RequestBodies {
			if rb == nil || rb.Value == nil || rb.Ref != "" {
				continue
			}
			ix.content("requestBody "+name, "", rb.Value.Content)
		}
	}
	return ix
}

func (ix indexer) operation(where string, pi *openapi3.PathItem, op *openapi3.Operation) {
	var codes []string
	if op.Responses != nil {
		for code := range op.Responses.Map() {
			codes = append(codes, code)
		}
	}
	sort.Strings(codes)
	body := ""
	if op.RequestBody != nil && op.RequestBody.Value != nil {
		body = "optional " + mediaTypes(op.RequestBody.Value.Content)
		if op.RequestBody.Value.Required {
			body = "required " + mediaTypes(op.RequestBody.Value.Content)
		}
	}
	ix.add(Operation, where, "",
		attr{"operationId", op.OperationID},
		attr{"deprecated", yesIf(op.Deprecated)},
		attr{"request body", body},
		attr{"responses", strings.Join(codes, " ")},
	)
	opKey := key(Operation, where)

	// Effective parameters: the operation's override the path item's.
	params := map[string]*openapi3.Parameter{}
	for _, list := range []openapi3.Parameters{pi.Parameters, op.Parameters} {
		for _, p := range list {
			if p != nil && p.Value != nil {
				params[p.Value.In+" "+p.Value.Name] = p.Value
			}
		}
	}
	for id, p := range params {
		ix.add(Parameter, where+" "+id, opKey,
			append([]attr{{"required", yesNo(p.Required)}}, schemaAttrs(p.Schema)...)...)
	}
	if op.RequestBody != nil && op.RequestBody.Value != nil && op.RequestBody.Ref == "" {
		ix.content(where+" request", opKey, op.RequestBody.Value.Content)
	}
	if op.Responses != nil {
		for code, r := range op.Responses.Map() {
			if r == nil || r.Value == nil || r.Ref != "" {
				continue
			}
			ix.content(where+" response "+code, opKey, r.Value.Content)
		}
	}
}

// content indexes the inline schemas of a body. Media types other than JSON
// are named after their type.
func (ix indexer) content(where, parent string, c openapi3.Content) {
	for mt, m := range c {
		if m == nil || m.Schema == nil || m.Schema.Ref != "" {
			continue // a component, indexed on its own
		}
		w := where
		if mt != "application/json" {
			w += " " + mt
		}
		ix.schema(Schema, w, parent, m.Schema, "")
	}
}

// schema indexes a schema and, unless it is a $ref, everything inside it.
// required is "yes" or "no" for an object property, "" for anything else.
func (ix indexer) schema(cat Category, where, parent string, s *openapi3.SchemaRef, required string) {
	ix.add(cat, where, parent, append([]attr{{"required", required}}, schemaAttrs(s)...)...)
	if s == nil || s.Ref != "" || s.Value == nil {
		return
	}
	self := key(cat, where)
	v := s.Value
	for name, p := range v.Properties {
		ix.schema(Property, where+"."+name, self, p, yesNo(contains(v.Required, name)))
	}
	if v.Items != nil {
		ix.schema(Property, where+"[]", self, v.Items, "")
	}
	for kw, list := range map[string]openapi3.SchemaRefs{"oneOf": v.OneOf, "anyOf": v.AnyOf, "allOf": v.AllOf} {
		for i, b := range list {
			ix.schema(Property, fmt.Sprintf("%s.%s[%d]", where, kw, i), self, b, "")
		}
	}
	if ap := v.AdditionalProperties.Schema; ap != nil {
		ix.schema(Property, where+".{*}", self, ap, "")
	}
}

// schemaAttrs are the properties of a schema that change the wire contract
// or the generated Go type.
func schemaAttrs(s *openapi3.SchemaRef) []attr {
	var ref, typ, format, nullable, enum string
	if s != nil {
		if s.Ref != "" {
			ref = s.Ref[strings.LastIndex(s.Ref, "/")+1:]
		} else if v := s.Value; v != nil {
			typ = strings.Join(v.Type.Slice(), "|")
			format = v.Format
			nullable = yesIf(v.Nullable)
			var vals []string
			for _, e := range v.Enum {
				vals = append(vals, fmt.Sprint(e))
			}
			sort.Strings(vals) // the order of enum values means nothing
			enum = strings.Join(vals, enumSep)
		}
	}
	return []attr{{"$ref", ref}, {"type", typ}, {"format", format}, {"nullable", nullable}, {"enum", enum}}
}

func mediaTypes(c openapi3.Content) string {
	var out []string
	for mt := range c {
		out = append(out, mt)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func yesIf(b bool) string {
	if b {
		return "yes"
	}
	return ""
}
