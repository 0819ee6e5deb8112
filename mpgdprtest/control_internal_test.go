package mpgdprtest

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestControlDocument: the embedded control document parses and passes
// kin-openapi's validation, names every operation the handler serves, and
// a broken document is refused rather than served.
func TestControlDocument(t *testing.T) {
	d, err := parseControlDoc(ControlOpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if ids := d.operationIDs(); len(ids) != 14 {
		t.Errorf("%d operations: %v", len(ids), ids)
	}
	broken := bytes.Replace(ControlOpenAPI, []byte(`$ref: "#/components/schemas/TaskList"`), []byte(`$ref: "#/components/schemas/NoSuchSchema"`), 1)
	if _, err := parseControlDoc(broken); err == nil {
		t.Error("a document with a dangling $ref was accepted")
	}
	invalid := bytes.Replace(ControlOpenAPI, []byte("type: integer, minimum: 0, maximum: 600000"), []byte("type: integer, minimum: 0, maximum: nine"), 1)
	if _, err := parseControlDoc(invalid); err == nil {
		t.Error("an invalid document was accepted")
	}
}

// TestControlHandlersMatchDocument: a handler missing for an operation of
// the document is caught at start.
func TestControlHandlersMatchDocument(t *testing.T) {
	s := &Server{}
	c, err := newControl(s)
	if err != nil {
		t.Fatal(err)
	}
	delete(c.ops, "reset")
	if err := c.checkOps(); err == nil || !strings.Contains(err.Error(), "reset") {
		t.Errorf("a missing handler: %v", err)
	}
	c.ops["reset"], c.ops["extra"] = c.reset, c.reset
	if err := c.checkOps(); err == nil {
		t.Error("a handler without an operation was accepted")
	}
}

// TestControlAnswersValidated: an answer of the control API that breaks
// its own document is not sent; the caller gets a 500 saying so.
func TestControlAnswersValidated(t *testing.T) {
	s, err := Start(WithControlAPI())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.control.ops["listTasks"] = func(*http.Request, map[string]string) (int, any) {
		return http.StatusOK, map[string]any{"tasks": "not an array"}
	}
	s.control.ops["reset"] = func(*http.Request, map[string]string) (int, any) {
		return http.StatusTeapot, nil // not a status the document lists
	}
	for _, c := range []struct{ method, path string }{{"GET", "/_fake/tasks"}, {"POST", "/_fake/reset"}} {
		w := httptest.NewRecorder()
		s.ControlHandler().ServeHTTP(w, httptest.NewRequest(c.method, c.path, nil))
		body, _ := io.ReadAll(w.Result().Body)
		if w.Code != http.StatusInternalServerError || !strings.Contains(string(body), "breaks control.openapi.yaml") {
			t.Errorf("%s %s: %d %s", c.method, c.path, w.Code, body)
		}
	}
}
