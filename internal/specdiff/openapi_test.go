package specdiff

import (
	"reflect"
	"sort"
	"strings"
	"testing"
)

const baseDoc = `
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /tasks/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    get:
      operationId: getTask
      parameters:
        - {name: token, in: query, required: true, schema: {type: string}}
        - {name: verbose, in: query, schema: {type: boolean}}
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Task'}
    delete:
      operationId: cancelTask
      responses:
        '204': {description: gone}
components:
  schemas:
    Task:
      type: object
      required: [id]
      properties:
        id: {type: string}
        status: {type: string, enum: [PENDING, DONE]}
        user: {type: string}
        when: {type: string}
        owner: {$ref: '#/components/schemas/Owner'}
    Owner:
      type: object
      properties:
        name: {type: string}
        emails:
          type: array
          items: {type: string}
`

const revisionDoc = `
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /tasks/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    get:
      operationId: getTask
      parameters:
        - {name: token, in: query, required: true, schema: {type: string}}
        - {name: verbose, in: query, required: true, schema: {type: boolean}}
        - {name: limit, in: query, schema: {type: integer}}
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Task'}
        '404': {description: missing}
  /tasks:
    get:
      operationId: listTasks
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema:
                type: object
                properties:
                  items: {type: array, items: {$ref: '#/components/schemas/Task'}}
components:
  schemas:
    Task:
      type: object
      required: [id, status]
      properties:
        id: {type: string}
        status: {type: string, enum: [PENDING, DONE, FAILED]}
        when: {type: integer, format: int64, nullable: true}
        eta: {type: integer}
`

func TestCompare(t *testing.T) {
	got, err := Compare([]byte(baseDoc), []byte(revisionDoc))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range got {
		lines = append(lines, c.String())
	}
	want := []string{
		"removed operation DELETE /tasks/{id}: operationId cancelTask, responses 204",
		"added   operation GET /tasks: operationId listTasks, responses 200",
		"changed operation GET /tasks/{id}: responses: 200 -> 200 404",
		"added   parameter GET /tasks/{id} query limit: required no, type integer",
		"changed parameter GET /tasks/{id} query verbose: required: no -> yes",
		"added   schema    GET /tasks response 200: type object",
		"removed schema    Owner: type object",
		"added   property  GET /tasks response 200.items: required no, type array",
		"added   property  GET /tasks response 200.items[]: $ref Task",
		"added   property  Task.eta: required no, type integer",
		"removed property  Task.owner: required no, $ref Owner",
		"changed property  Task.status: required: no -> yes; enum: +FAILED",
		"removed property  Task.user: required no, type string",
		"changed property  Task.when: type: string -> integer; format: (none) -> int64; nullable: (none) -> yes",
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// Backwards, additions become removals listed alone and removals become
// additions listed with what they contain.
func TestCompareBackwards(t *testing.T) {
	got, err := Compare([]byte(revisionDoc), []byte(baseDoc))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range got {
		lines = append(lines, c.String())
	}
	want := []string{
		"added   operation DELETE /tasks/{id}: operationId cancelTask, responses 204",
		"removed operation GET /tasks: operationId listTasks, responses 200",
		"changed operation GET /tasks/{id}: responses: 200 404 -> 200",
		"added   parameter DELETE /tasks/{id} path id: required yes, type string",
		"removed parameter GET /tasks/{id} query limit: required no, type integer",
		"changed parameter GET /tasks/{id} query verbose: required: yes -> no",
		"added   schema    Owner: type object",
		"added   property  Owner.emails: required no, type array",
		"added   property  Owner.emails[]: type string",
		"added   property  Owner.name: required no, type string",
		"removed property  Task.eta: required no, type integer",
		"added   property  Task.owner: required no, $ref Owner",
		"changed property  Task.status: required: yes -> no; enum: -FAILED",
		"added   property  Task.user: required no, type string",
		"changed property  Task.when: type: integer -> string; format: int64 -> (none); nullable: yes -> (none)",
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestCompareIdenticalAndDeterministic(t *testing.T) {
	same, err := Compare([]byte(baseDoc), []byte(baseDoc))
	if err != nil {
		t.Fatal(err)
	}
	if len(same) != 0 {
		t.Errorf("a document compared with itself: %v", same)
	}
	first, _ := Compare([]byte(baseDoc), []byte(revisionDoc))
	for range 20 { // map iteration differs between runs; the output must not
		again, _ := Compare([]byte(baseDoc), []byte(revisionDoc))
		if !reflect.DeepEqual(first, again) {
			t.Fatalf("output differs between runs:\n%v\n%v", first, again)
		}
	}
	if !sort.SliceIsSorted(first, func(i, j int) bool {
		a, b := first[i], first[j]
		if a.Category != b.Category {
			return categoryOrder[a.Category] < categoryOrder[b.Category]
		}
		return a.Where < b.Where
	}) {
		t.Errorf("not sorted by category and place: %v", first)
	}
}

func TestCompareRejectsInvalidDocuments(t *testing.T) {
	if _, err := Compare([]byte("openapi: [\n"), []byte(baseDoc)); err == nil || !strings.Contains(err.Error(), "base") {
		t.Errorf("broken base: err = %v", err)
	}
	noPaths := "openapi: 3.0.3\ninfo: {title: t}\n" // no version: invalid
	if _, err := Compare([]byte(baseDoc), []byte(noPaths)); err == nil || !strings.Contains(err.Error(), "revision") {
		t.Errorf("invalid revision: err = %v", err)
	}
}
