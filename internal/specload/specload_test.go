package specload

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/routers"
)

func TestLoadOnce(t *testing.T) {
	a, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Load()
	if a != b {
		t.Error("Load parsed the document twice")
	}
	if got := a.ServerURLs(); len(got) != 3 || got[0] != "https://mixpanel.com/api/app" {
		t.Errorf("servers %v", got)
	}
	if len(a.Doc().Servers) != 0 {
		t.Error("the router's document still has servers: routing would depend on the host")
	}
}

// TestFind: routing ignores the host, strips the base path, and tells
// "not this API" from "no such operation".
func TestFind(t *testing.T) {
	v, _ := Load()
	cases := []struct {
		method, url, base, op string
		err                   error
	}{
		{"POST", "http://127.0.0.1:9/api/app/data-retrievals/v3.0", BasePath, "createRetrieval", nil},
		{"POST", "https://eu.mixpanel.com/api/app/data-deletions/v3.0/", BasePath, "createDeletion", nil}, // the docs' trailing slash
		{"DELETE", "https://proxy.example/mp/api/app/data-deletions/v3.0/t1", "/mp/api/app/", "cancelDeletion", nil},
		{"GET", "https://mixpanel.com/api/application/data-deletions/v3.0/t1", BasePath, "", ErrOutsideBase},
		{"GET", "https://mixpanel.com/exports/x.zip", BasePath, "", ErrOutsideBase},
		{"GET", "https://mixpanel.com/api/app/engage", BasePath, "", routers.ErrPathNotFound},
		// The legacy router reports a method missing on a templated path
		// as "not found" too.
		{"PUT", "https://mixpanel.com/api/app/data-deletions/v3.0/t1", BasePath, "", routers.ErrPathNotFound},
	}
	for _, c := range cases {
		u, _ := url.Parse(c.url)
		m, err := v.Find(c.method, u, c.base)
		switch {
		case c.err == ErrOutsideBase:
			if !errors.Is(err, ErrOutsideBase) {
				t.Errorf("%s %s: %v, want ErrOutsideBase", c.method, c.url, err)
			}
		case c.err != nil:
			if err == nil || err.Error() != c.err.Error() {
				t.Errorf("%s %s: %v, want %v", c.method, c.url, err, c.err)
			}
		case err != nil || m.OperationID() != c.op:
			t.Errorf("%s %s: %v, want %s", c.method, c.url, err, c.op)
		}
	}
}

// TestReasons: every problem is its own line, and values (personal data,
// credentials) stay out of them.
func TestReasons(t *testing.T) {
	v, _ := Load()
	r := httptest.NewRequest("POST", "/api/app/data-deletions/v3.0?token=", strings.NewReader(`{"compliance_type":"PERSON-SECRET","distinct_ids":["PERSON-SECRET"]}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Basic PERSON-SECRET")
	m, err := v.Find(r.Method, r.URL, BasePath)
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.ValidateRequest(context.Background(), r, m)
	reasons := Reasons(err)
	if len(reasons) != 3 {
		t.Errorf("want 3 reasons (bearer, token, body), got %q", reasons)
	}
	for _, s := range reasons {
		if strings.Contains(s, "PERSON-SECRET") || strings.Contains(s, "\n") {
			t.Errorf("reason shows a value or spans lines: %q", s)
		}
	}
	if Reasons(nil) != nil {
		t.Error("Reasons(nil) is not empty")
	}
	// The body is left readable for the handler.
	b, err := io.ReadAll(r.Body)
	if err != nil || !strings.Contains(string(b), "distinct_ids") {
		t.Errorf("body after validation: %q, %v", b, err)
	}
}
