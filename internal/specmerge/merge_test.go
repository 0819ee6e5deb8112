package specmerge

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func skeleton(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../api/reconcile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// src wraps a YAML body the way the 3P page copy does.
func src(name, body string) Source {
	return Source{Name: name, Raw: []byte("Page text\n\n" + body)}
}

const srcHead = "openapi: 3.1.0\ninfo: {title: t, version: '1'}\n"

func TestSourceOneOfUsedTwiceMerges(t *testing.T) {
	body := srcHead + `paths:
  /data-deletions/v3.0/{taskId}:
    get:
      operationId: a
      parameters: [{name: taskId, in: path, required: true, schema: {type: string}}]
      responses:
        '200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/S'}}}}
  /data-retrievals/v3.0/{taskId}:
    get:
      operationId: b
      parameters: [{name: taskId, in: path, required: true, schema: {type: string}}]
      responses:
        '200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/S'}}}}
components:
  schemas:
    S:
      type: object
      properties:
        results:
          type: object
          properties:
            eta: {oneOf: [{type: string}, {type: integer}]}
`
	res, err := Merge(skeleton(t), []Source{src("s.txt", body)})
	if err != nil {
		t.Fatalf("a oneOf field used by two operations: %v", err)
	}
	task := mapOf(mapOf(mapOf(res.Doc["components"])["schemas"])["Task"])
	if _, ok := mapOf(task["properties"])["eta"]; !ok {
		t.Fatal("eta did not flow into Task")
	}
	// A different composition at the second use is a conflict.
	other := strings.Replace(body, "{$ref: '#/components/schemas/S'}}}}\ncomponents", "{$ref: '#/components/schemas/T'}}}}\ncomponents", 1)
	other += "    T:\n      type: object\n      properties:\n        results:\n          type: object\n          properties:\n            eta: {oneOf: [{type: string}, {type: boolean}]}\n"
	var ce *ConflictError
	if _, err := Merge(skeleton(t), []Source{src("s.txt", other)}); !errors.As(err, &ce) || !strings.Contains(ce.What, "oneOf") {
		t.Fatalf("err = %v, want a oneOf conflict", err)
	}
}

func TestParameterTypeConflict(t *testing.T) {
	op := func(typ string) string {
		return srcHead + `paths:
  /data-deletions/v3.0/{tracking_id}:
    get:
      operationId: x
      parameters:
        - {name: tracking_id, in: path, required: true, schema: {type: string}}
        - {name: limit, in: query, schema: {type: ` + typ + `}}
      responses: {'200': {description: ok}}
`
	}
	if _, err := Merge(skeleton(t), []Source{src("a.txt", op("integer")), src("b.txt", op("integer"))}); err != nil {
		t.Fatalf("same parameter twice: %v", err)
	}
	var ce *ConflictError
	_, err := Merge(skeleton(t), []Source{src("a.txt", op("integer")), src("b.txt", op("string"))})
	if !errors.As(err, &ce) || !strings.Contains(ce.What, `"limit"`) || ce.Source != "b.txt" {
		t.Fatalf("err = %v, want a conflict on limit from b.txt", err)
	}
}

func TestUnsourcedOperationsReported(t *testing.T) {
	body := srcHead + `paths:
  /data-deletions/v3.0:
    post:
      operationId: c
      responses: {'200': {description: ok}}
`
	res, err := Merge(skeleton(t), []Source{src("s.txt", body)})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(res.Unsourced, "; ")
	for _, want := range []string{"POST /data-retrievals/v3.0", "GET /data-deletions/v3.0/{tracking_id}"} {
		if !strings.Contains(got, want) {
			t.Errorf("Unsourced %q lacks %q", got, want)
		}
	}
	for _, not := range []string{"POST /data-deletions/v3.0", "DELETE"} {
		if strings.Contains(got, not+" ") || strings.HasSuffix(got, not) {
			t.Errorf("Unsourced %q names %q", got, not)
		}
	}
}

// TestDecisionsDocumented: every decision or repair cited in the code and
// the skeleton has a row in api/RECONCILIATION.md.
func TestDecisionsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../api/RECONCILIATION.md")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("*.go")
	files = append(files, "../../api/reconcile.yaml")
	id := regexp.MustCompile(`\b[DR][0-9]{1,2}\b`)
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, _ := os.ReadFile(f)
		for _, m := range id.FindAllString(string(b), -1) {
			n++
			if !strings.Contains(string(doc), "| "+m+" |") {
				t.Errorf("%s cites %s, which api/RECONCILIATION.md has no row for", f, m)
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d citations found: the test is not looking", n)
	}
}
