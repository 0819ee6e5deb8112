package redact

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestIDs(t *testing.T) {
	mark := func(id string) string { return "[" + strings.ToUpper(id[:1]) + "]" }
	ids := []string{"bob", "bob-2", "alice@example.com", "ann", `q"uote`, "x<y"}
	jq, _ := json.Marshal(`q"uote`)
	jl, _ := json.Marshal("x<y")
	for in, want := range map[string]string{
		"invalid distinct_ids: bob, bob-2":             "invalid distinct_ids: [B], [B]",
		`{"error":"alice@example.com is not allowed"}`: `{"error":"[A] is not allowed"}`,
		"annual report of ann; bobby is not bob":       "annual report of [A]; bobby is not [B]",
		"quoted " + fmt.Sprintf("%q", `q"uote`):        `quoted "[Q]"`,
		"json " + string(jq) + " " + string(jl):        `json "[Q]" "[X]"`,
		"escaped alice%40example.com":                  "escaped [A]",
		"bob_2 and 2bob stay":                          "bob_2 and 2bob stay",
		"":                                             "",
	} {
		if got := IDs(in, ids, mark); got != want {
			t.Errorf("IDs(%q) = %q, want %q", in, got, want)
		}
	}
	// A short ID (below MinLen) is still an ID.
	if got := IDs("id a1 refused", []string{"a1"}, mark); got != "id [A] refused" {
		t.Errorf("short ID: %q", got)
	}
}
