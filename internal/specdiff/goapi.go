package specdiff

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"sort"
	"strings"
)

// GoAPI is the exported surface of one Go file: each exported top-level
// type, func, const and var, each method on an exported type, each field of
// an exported struct type and each method of an exported interface type,
// mapped to its Go type as written, without parameter names ("*int64",
// "func(context.Context, ...RequestEditorFn) (*http.Response, error)").
//
// The keys read "type Task", "field Task.EtaSeconds", "method Client.ListDeletions",
// "interface ServerInterface.ListDeletions", "func NewClient", "const ServerUrlUS"
// and "var X".
type GoAPI map[string]string

// ParseGoAPI collects the exported surface of a Go source file.
func ParseGoAPI(filename string, src []byte) (GoAPI, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filename, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	api := GoAPI{}
	show := func(n ast.Node) string {
		unnameParams(n)
		var b bytes.Buffer
		if err := printer.Fprint(&b, fset, n); err != nil {
			return fmt.Sprintf("<%v>", err)
		}
		return strings.Join(strings.Fields(b.String()), " ")
	}
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() {
				continue
			}
			if d.Recv == nil {
				api["func "+d.Name.Name] = show(d.Type)
				continue
			}
			if recv := receiverType(d.Recv); ast.IsExported(recv) {
				api["method "+recv+"."+d.Name.Name] = show(d.Type)
			}
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if !s.Name.IsExported() {
						continue
					}
					name := s.Name.Name
					switch t := s.Type.(type) {
					case *ast.StructType:
						api["type "+name] = "struct"
						for _, fl := range t.Fields.List {
							for _, fn := range fieldNames(fl) {
								if ast.IsExported(fn) {
									api["field "+name+"."+fn] = show(fl.Type)
								}
							}
						}
					case *ast.InterfaceType:
						api["type "+name] = "interface"
						for _, m := range t.Methods.List {
							for _, mn := range fieldNames(m) {
								if ast.IsExported(mn) {
									api["interface "+name+"."+mn] = show(m.Type)
								}
							}
						}
					default:
						sig := show(s.Type)
						if s.Assign.IsValid() {
							sig = "= " + sig
						}
						api["type "+name] = sig
					}
				case *ast.ValueSpec:
					kind := "var"
					if d.Tok == token.CONST {
						kind = "const"
					}
					typ := ""
					if s.Type != nil {
						typ = show(s.Type)
					}
					for _, n := range s.Names {
						if n.IsExported() {
							api[kind+" "+n.Name] = typ
						}
					}
				}
			}
		}
	}
	return api, nil
}

// unnameParams drops parameter and result names from every function type in
// n, so that renaming a parameter (oapi-codegen names them after the
// document) does not read as a change of type.
func unnameParams(n ast.Node) {
	strip := func(fl *ast.FieldList) {
		if fl == nil {
			return
		}
		var out []*ast.Field
		for _, f := range fl.List {
			for range max(len(f.Names), 1) {
				out = append(out, &ast.Field{Type: f.Type})
			}
		}
		fl.List = out
	}
	ast.Inspect(n, func(n ast.Node) bool {
		if ft, ok := n.(*ast.FuncType); ok {
			strip(ft.Params)
			strip(ft.Results)
		}
		return true
	})
}

// receiverType names a method's receiver type without pointer or type
// parameters.
func receiverType(recv *ast.FieldList) string {
	if recv == nil || len(recv.List) == 0 {
		return ""
	}
	t := recv.List[0].Type
	for {
		switch x := t.(type) {
		case *ast.StarExpr:
			t = x.X
		case *ast.IndexExpr:
			t = x.X
		case *ast.IndexListExpr:
			t = x.X
		case *ast.ParenExpr:
			t = x.X
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}

// fieldNames returns a field's names, or for an embedded field the name of
// its type.
func fieldNames(f *ast.Field) []string {
	if len(f.Names) > 0 {
		var out []string
		for _, n := range f.Names {
			out = append(out, n.Name)
		}
		return out
	}
	t := f.Type
	for {
		switch x := t.(type) {
		case *ast.StarExpr:
			t = x.X
		case *ast.SelectorExpr:
			return []string{x.Sel.Name}
		case *ast.Ident:
			return []string{x.Name}
		case *ast.IndexExpr:
			t = x.X
		case *ast.IndexListExpr:
			t = x.X
		default:
			return nil
		}
	}
}

// GoAPIDiff is the difference between two exported surfaces. Each list is
// sorted; Changed entries read "field Task.DateRequested: *string -> *int".
type GoAPIDiff struct {
	Added   []string
	Removed []string
	Changed []string
	// InterfaceGrown lists methods added to exported interfaces (also in
	// Added). Callers are unaffected, but a type outside the module that
	// implements the interface (a fake ServerInterface, a mock
	// ClientInterface) stops compiling until it gains the method.
	InterfaceGrown []string
}

// Breaking reports whether code that compiled against base may not compile
// against revision because a name went away or its type changed. Methods
// added to interfaces are not counted: see InterfaceGrown.
func (d GoAPIDiff) Breaking() bool { return len(d.Removed) > 0 || len(d.Changed) > 0 }

// Empty reports whether the surfaces are the same.
func (d GoAPIDiff) Empty() bool { return len(d.Added)+len(d.Removed)+len(d.Changed) == 0 }

// DiffGoAPI compares two exported surfaces.
func DiffGoAPI(base, revision GoAPI) GoAPIDiff {
	var d GoAPIDiff
	for name, sig := range base {
		rsig, ok := revision[name]
		switch {
		case !ok:
			d.Removed = append(d.Removed, name)
		case rsig != sig:
			d.Changed = append(d.Changed, fmt.Sprintf("%s: %s -> %s", name, orNone(sig), orNone(rsig)))
		}
	}
	for name := range revision {
		if _, ok := base[name]; !ok {
			d.Added = append(d.Added, name)
			if strings.HasPrefix(name, "interface ") {
				d.InterfaceGrown = append(d.InterfaceGrown, name)
			}
		}
	}
	sort.Strings(d.Added)
	sort.Strings(d.Removed)
	sort.Strings(d.Changed)
	sort.Strings(d.InterfaceGrown)
	return d
}

// CompareGo parses two versions of a generated Go file and compares their
// exported surfaces.
func CompareGo(base, revision []byte) (GoAPIDiff, error) {
	b, err := ParseGoAPI("base.go", base)
	if err != nil {
		return GoAPIDiff{}, fmt.Errorf("base: %w", err)
	}
	r, err := ParseGoAPI("revision.go", revision)
	if err != nil {
		return GoAPIDiff{}, fmt.Errorf("revision: %w", err)
	}
	return DiffGoAPI(b, r), nil
}
