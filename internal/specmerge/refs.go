package specmerge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// parseSource turns a source as published into its document: the page
// wrapping peeled (Extract), the text repairs made, and every $ref into
// another file replaced by what it points to. It returns the repairs made and
// the files the $refs pulled in (relative to the source's directory).
func parseSource(s Source) (doc map[string]any, repairs, included []string, err error) {
	body, err := Extract(s.Raw)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	body, repairs = repairText(s.Name, body)
	if err := unmarshal(body, &doc); err != nil {
		return nil, nil, nil, fmt.Errorf("%s: not valid YAML or JSON after repairs: %w", s.Name, err)
	}
	if doc == nil {
		return nil, nil, nil, fmt.Errorf("%s: the document is empty", s.Name)
	}
	r := &refResolver{source: s.Name, root: s.Dir, files: map[string]any{}}
	out, err := r.resolve(doc, file{dir: s.Dir, name: s.Name}, nil, 0)
	if err != nil {
		return nil, nil, nil, err
	}
	return mapOf(out), repairs, r.order, nil
}

// Bundle returns a source's document with its $refs into other files
// resolved, as YAML, and the files they pulled in; files is empty (and data
// nil) when the document has no such $ref. updatespec installs the bundled
// form, so that api/sources stays self-contained.
func Bundle(s Source) (data []byte, files []string, err error) {
	doc, _, files, err := parseSource(Source{Name: s.Name, Raw: s.Raw, Dir: s.Dir})
	if err != nil || len(files) == 0 {
		return nil, nil, err
	}
	data, err = marshalOrdered(doc)
	return data, files, err
}

// refResolver replaces $refs into other files by copies of their targets.
// The merge itself only follows local refs ("#/components/..."), inside one
// document; kin-openapi's loader follows external ones but needs the whole
// document to be OpenAPI 3.0 it accepts, which the 3.1 source is not, and
// turns it into typed values the merge does not work on.
type refResolver struct {
	source string         // for messages
	root   string         // the source's directory
	files  map[string]any // parsed files, by absolute path
	order  []string       // the files read, as named in messages
}

// maxRefDepth bounds chains of $refs (a file referring to another, and so on).
const maxRefDepth = 32

// file is where a node being resolved lives: the source itself (doc nil,
// whose local refs the merge follows) or a file a $ref pulled in.
type file struct {
	dir  string // for its relative $refs
	name string // for messages and cycle checks
	doc  any    // its parsed content; nil for the source
}

// resolve walks v, which lives in f, inlining every $ref that leaves the
// source. Local refs inside an included file are inlined too: once copied
// into the source they would point elsewhere.
func (r *refResolver) resolve(v any, f file, stack []string, depth int) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["$ref"].(string); ok {
			if strings.HasPrefix(ref, "#") && f.doc == nil {
				return x, nil // a local ref of the source: the merge follows it
			}
			if depth > maxRefDepth {
				return nil, fmt.Errorf("%s: $ref %q: more than %d nested $refs", r.source, ref, maxRefDepth)
			}
			target, tf, where, err := r.follow(ref, f)
			if err != nil {
				return nil, err
			}
			if stackHas(stack, where) {
				return nil, fmt.Errorf("%s: $ref %q refers to itself through %s", r.source, ref, strings.Join(append(stack, where), " -> "))
			}
			return r.resolve(deepCopy(target), tf, append(stack, where), depth+1)
		}
		for _, k := range sortedKeys(x) {
			e, err := r.resolve(x[k], f, stack, depth)
			if err != nil {
				return nil, err
			}
			x[k] = e
		}
	case []any:
		for i, e := range x {
			e, err := r.resolve(e, f, stack, depth)
			if err != nil {
				return nil, err
			}
			x[i] = e
		}
	}
	return v, nil
}

// follow finds a $ref's target: a JSON pointer into the current file, or a
// file (relative to the current one) and a pointer into it.
func (r *refResolver) follow(ref string, f file) (target any, tf file, where string, err error) {
	path, frag, _ := strings.Cut(ref, "#")
	tf = f
	if path != "" {
		if u, perr := url.Parse(path); perr == nil && len(u.Scheme) > 1 {
			// Named without the $ref itself: a URL may carry a password.
			return nil, tf, "", fmt.Errorf("%s: a $ref points to %s, which is not followed: save that file beside the document and refer to it by a relative path", r.source, u.Redacted())
		}
		if r.root == "" {
			return nil, tf, "", fmt.Errorf("%s: $ref %q refers to the file %s, and the source has no directory to find it in", r.source, ref, path)
		}
		abs := filepath.Join(f.dir, filepath.FromSlash(path))
		name := abs
		if rel, rerr := filepath.Rel(r.root, abs); rerr == nil {
			name = filepath.ToSlash(rel)
		}
		doc, err := r.load(abs, name, ref)
		if err != nil {
			return nil, tf, "", err
		}
		tf = file{dir: filepath.Dir(abs), name: name, doc: doc}
	}
	target, err = pointer(tf.doc, frag)
	if err != nil {
		return nil, tf, "", fmt.Errorf("%s: $ref %q: %w", r.source, ref, err)
	}
	return target, tf, tf.name + "#" + frag, nil
}

// load reads and parses a referenced file once.
func (r *refResolver) load(path, name, ref string) (any, error) {
	if d, ok := r.files[path]; ok {
		return d, nil
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: $ref %q refers to the file %s, which does not exist: save the files the document refers to beside it, or take the bundled document", r.source, ref, name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: $ref %q: %w", r.source, ref, err)
	}
	var d any
	if err := unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("%s: $ref %q: %s is not valid YAML or JSON: %w", r.source, ref, name, err)
	}
	r.files[path] = d
	r.order = append(r.order, name)
	return d, nil
}

// unmarshal decodes a document or a referenced file. JSON is decoded as JSON:
// YAML parsers reject some of its escapes ("\/", which JSON encoders may
// write), and its numbers become int or float64, as YAML's do, so that both
// forms of one document merge alike.
func unmarshal(data []byte, out any) error {
	t := bytes.TrimSpace(data)
	if len(t) == 0 || (t[0] != '{' && t[0] != '[') || !json.Valid(t) {
		return yaml.Unmarshal(data, out)
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	v = fromJSONNumbers(v)
	switch o := out.(type) {
	case *any:
		*o = v
	case *map[string]any:
		m, ok := v.(map[string]any)
		if !ok {
			return errors.New("the document is not a JSON object")
		}
		*o = m
	default:
		return fmt.Errorf("unmarshal: unsupported %T", out)
	}
	return nil
}

func fromJSONNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = fromJSONNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = fromJSONNumbers(e)
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

// pointer follows a JSON pointer ("/components/schemas/X", or "" for the
// whole document).
func pointer(doc any, frag string) (any, error) {
	cur := doc
	if frag == "" || frag == "/" {
		return cur, nil
	}
	for _, part := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
		part, _ = url.PathUnescape(strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~"))
		switch c := cur.(type) {
		case map[string]any:
			next, ok := c[part]
			if !ok {
				return nil, fmt.Errorf("no %q at #%s", part, frag)
			}
			cur = next
		default:
			return nil, fmt.Errorf("no %q at #%s", part, frag)
		}
	}
	return cur, nil
}

func stackHas(stack []string, s string) bool {
	for _, e := range stack {
		if e == s {
			return true
		}
	}
	return false
}
