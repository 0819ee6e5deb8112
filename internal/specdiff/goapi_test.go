package specdiff

import (
	"reflect"
	"testing"
)

const baseGo = `package gen

import "net/http"

const ServerUrlUS = "https://mixpanel.com/api/app"

const (
	PENDING TaskStatus = "PENDING"
	DONE    TaskStatus = "DONE"
)

type TaskStatus string

type Task struct {
	DateRequested  *string ` + "`json:\"date_requested,omitempty\"`" + `
	RequestingUser *string
	Status         *TaskStatus
	internal       int
}

type TrackingId = string

type ServerInterface interface {
	CheckDeletion(w http.ResponseWriter, r *http.Request, trackingId TrackingId)
}

type Client struct{ Server string }

func NewClient(server string) (*Client, error) { return nil, nil }

func (c *Client) CheckDeletion(trackingId TrackingId) (*http.Response, error) { return nil, nil }

func (c *Client) helper() {}

type unexported struct{ Exported int }

func (u unexported) Method() {}

func unexportedFunc() {}
`

const revisionGo = `package gen

import "net/http"

const ServerUrlUS = "https://us.mixpanel.com/api/app" // a value change is not an API change

const (
	PENDING TaskStatus = "PENDING"
	FAILED  TaskStatus = "FAILED"
)

type TaskStatus string

type Task struct {
	DateRequested *int
	Status        *TaskStatus
	EtaSeconds    *int
	other         string
}

type TrackingId = int

type ServerInterface interface {
	CheckDeletion(w http.ResponseWriter, r *http.Request, id TrackingId) // renamed parameter
	ListDeletions(w http.ResponseWriter, r *http.Request)
}

type Client struct{ Server string }

func NewClient(url string) (*Client, error) { return nil, nil }

func (c *Client) CheckDeletion(id TrackingId) (*http.Response, error) { return nil, nil }

func (c *Client) ListDeletions() (*http.Response, error) { return nil, nil }

type unexported struct{ Exported, More int }
`

func TestCompareGo(t *testing.T) {
	d, err := CompareGo([]byte(baseGo), []byte(revisionGo))
	if err != nil {
		t.Fatal(err)
	}
	want := GoAPIDiff{
		Added: []string{
			"const FAILED",
			"field Task.EtaSeconds",
			"interface ServerInterface.ListDeletions",
			"method Client.ListDeletions",
		},
		Removed: []string{
			"const DONE",
			"field Task.RequestingUser",
		},
		Changed: []string{
			"field Task.DateRequested: *string -> *int",
			"type TrackingId: = string -> = int",
		},
		InterfaceGrown: []string{"interface ServerInterface.ListDeletions"},
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("diff:\n%#v\nwant:\n%#v", d, want)
	}
	if !d.Breaking() || d.Empty() {
		t.Errorf("Breaking() = %v, Empty() = %v", d.Breaking(), d.Empty())
	}
}

func TestCompareGoAdditionsAreNotBreaking(t *testing.T) {
	grown := baseGo + "\nfunc NewThing() int { return 0 }\n\ntype Thing struct{ A int }\n"
	d, err := CompareGo([]byte(baseGo), []byte(grown))
	if err != nil {
		t.Fatal(err)
	}
	if d.Breaking() || !reflect.DeepEqual(d.Added, []string{"field Thing.A", "func NewThing", "type Thing"}) {
		t.Errorf("diff = %#v", d)
	}
	same, _ := CompareGo([]byte(baseGo), []byte(baseGo))
	if !same.Empty() || same.Breaking() {
		t.Errorf("a file compared with itself: %#v", same)
	}
}

func TestParseGoAPI(t *testing.T) {
	api, err := ParseGoAPI("base.go", []byte(baseGo))
	if err != nil {
		t.Fatal(err)
	}
	want := GoAPI{
		"const ServerUrlUS":                       "",
		"const PENDING":                           "TaskStatus",
		"const DONE":                              "TaskStatus",
		"type TaskStatus":                         "string",
		"type Task":                               "struct",
		"field Task.DateRequested":                "*string",
		"field Task.RequestingUser":               "*string",
		"field Task.Status":                       "*TaskStatus",
		"type TrackingId":                         "= string",
		"type ServerInterface":                    "interface",
		"interface ServerInterface.CheckDeletion": "func(http.ResponseWriter, *http.Request, TrackingId)",
		"type Client":                             "struct",
		"field Client.Server":                     "string",
		"func NewClient":                          "func(string) (*Client, error)",
		"method Client.CheckDeletion":             "func(TrackingId) (*http.Response, error)",
	}
	if !reflect.DeepEqual(api, want) {
		t.Errorf("api:\n%#v\nwant:\n%#v", api, want)
	}
	if _, err := ParseGoAPI("broken.go", []byte("package x\nfunc (")); err == nil {
		t.Error("a file that does not parse gave no error")
	}
}

// Function types are compared without parameter names, variadics included,
// the way oapi-codegen writes them.
func TestParseGoAPIFuncTypes(t *testing.T) {
	api, err := ParseGoAPI("gen.go", []byte(generatedSample))
	if err != nil {
		t.Fatal(err)
	}
	for name, typ := range map[string]string{
		"method ClientWithResponses.CheckDeletionWithResponse": "func(context.Context, TrackingId, *CheckDeletionParams, ...RequestEditorFn) (*CheckDeletionResponse, error)",
		"field CheckDeletionParams.Token":                      "ProjectToken",
		"type RequestEditorFn":                                 "func(context.Context, *http.Request) error",
	} {
		if api[name] != typ {
			t.Errorf("%s = %q, want %q", name, api[name], typ)
		}
	}
}

const generatedSample = `package gen

import (
	"context"
	"net/http"
)

type RequestEditorFn func(ctx context.Context, req *http.Request) error

type ProjectToken = string
type TrackingId = string

type CheckDeletionParams struct {
	Token ProjectToken ` + "`form:\"token\" json:\"token\"`" + `
}

type CheckDeletionResponse struct{ Body []byte }

type ClientWithResponses struct{}

func (c *ClientWithResponses) CheckDeletionWithResponse(ctx context.Context, trackingId TrackingId, params *CheckDeletionParams, reqEditors ...RequestEditorFn) (*CheckDeletionResponse, error) {
	return nil, nil
}
`
