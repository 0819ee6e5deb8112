package mpgdpr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
)

// TestSplitCreate is the create-outcome rule's table: every answer a
// create can get, and where each ID it carried goes.
func TestSplitCreate(t *testing.T) {
	ids := []string{"a", "b", "c"}
	conflict := func(named, tasks []string) error {
		return &Error{Op: "CreateDeletion", StatusCode: http.StatusConflict, ConflictingDistinctIDs: named, ConflictingTaskIDs: tasks}
	}
	unknown := &OutcomeUnknownError{Op: "CreateDeletion", Err: errors.New("connection reset")}
	refused := &Error{Op: "CreateDeletion", StatusCode: http.StatusBadRequest, Message: "bad"}
	for _, tc := range []struct {
		name   string
		taskID string
		err    error
		want   CreateOutcome
		errNil bool
	}{
		{"accepted", "t1", nil, CreateOutcome{TaskID: "t1", Filed: ids}, true},
		{"409 naming some, with a task", "", conflict([]string{"c", "a", "stranger"}, []string{"t9"}),
			CreateOutcome{Conflicting: []string{"a", "c"}, ConflictTasks: []string{"t9"}, Unfiled: []string{"b"}}, true},
		{"409 naming all", "", conflict(ids, []string{"t9", "t10"}),
			CreateOutcome{Conflicting: ids, ConflictTasks: []string{"t9", "t10"}}, true},
		{"409 naming none of them: refused", "", conflict([]string{"zzz"}, []string{"t9"}), CreateOutcome{Unfiled: ids}, false},
		{"409 naming no task: refused", "", conflict([]string{"a"}, nil), CreateOutcome{Unfiled: ids}, false},
		{"unknown outcome", "", unknown, CreateOutcome{Unknown: ids}, false},
		{"unknown outcome, wrapped", "", fmt.Errorf("job: %w", unknown), CreateOutcome{Unknown: ids}, false},
		{"refused", "", refused, CreateOutcome{Unfiled: ids}, false},
		{"transport failure before sending", "", errors.New("dial tcp: refused"), CreateOutcome{Unfiled: ids}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := SplitCreate(ids, tc.taskID, tc.err)
			if got.TaskID != tc.want.TaskID || !slices.Equal(got.Filed, tc.want.Filed) || !slices.Equal(got.Conflicting, tc.want.Conflicting) ||
				!slices.Equal(got.ConflictTasks, tc.want.ConflictTasks) || !slices.Equal(got.Unknown, tc.want.Unknown) || !slices.Equal(got.Unfiled, tc.want.Unfiled) {
				t.Errorf("SplitCreate = %+v, want %+v", got, tc.want)
			}
			if (got.Err == nil) != tc.errNil || (got.Err != nil && got.Err != tc.err) {
				t.Errorf("Err = %v, want the create's error: %v", got.Err, !tc.errNil)
			}
			n := len(got.Filed) + len(got.Conflicting) + len(got.Unknown) + len(got.Unfiled)
			if n != len(ids) {
				t.Errorf("%d IDs accounted for, %d sent", n, len(ids))
			}
		})
	}
	out := SplitCreate(ids, "t1", nil)
	out.Filed[0] = "changed"
	if ids[0] != "a" {
		t.Error("the outcome's slices are the caller's ids")
	}
}

func TestKind(t *testing.T) {
	for _, tc := range []struct {
		k             Kind
		valid, resub  bool
		defaultMaxIDs int
	}{
		{Deletion, true, true, DefaultMaxDeletionIDs},
		{Retrieval, true, false, DefaultMaxRetrievalIDs},
		{"Deletion", false, false, DefaultMaxRetrievalIDs},
		{"", false, false, DefaultMaxRetrievalIDs},
	} {
		if tc.k.Valid() != tc.valid || tc.k.Resubmittable() != tc.resub || tc.k.DefaultMaxIDs() != tc.defaultMaxIDs {
			t.Errorf("%q: valid %v resubmittable %v max %d", tc.k, tc.k.Valid(), tc.k.Resubmittable(), tc.k.DefaultMaxIDs())
		}
		k, err := ParseKind(string(tc.k))
		if (err == nil) != tc.valid || (err == nil && k != tc.k) || (err != nil && !errors.Is(err, ErrInvalidInput)) {
			t.Errorf("ParseKind(%q) = %q, %v", tc.k, k, err)
		}
	}
}

// TestKindCalls: Create, CreateAll, Check and Wait send the call of their
// kind, and refuse a bad kind or a disclosure type on a deletion before
// sending anything.
func TestKindCalls(t *testing.T) {
	srv := newBatchServer(t, accept)
	c := srv.client(t)
	ctx := context.Background()
	for _, k := range []Kind{Retrieval, Deletion} {
		id, err := c.Create(ctx, k, []string{"a"}, GDPR, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Check(ctx, k, id); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateAll(ctx, k, []string{"b", "c"}, GDPR, ""); err != nil {
			t.Fatal(err)
		}
	}
	var paths []string
	for _, r := range srv.requests() {
		paths = append(paths, r.Method+" "+r.Path)
	}
	want := []string{
		"POST /api/app/data-retrievals/v3.0", "GET /api/app/data-retrievals/v3.0/task-1", "POST /api/app/data-retrievals/v3.0",
		"POST /api/app/data-deletions/v3.0", "GET /api/app/data-deletions/v3.0/task-3", "POST /api/app/data-deletions/v3.0",
	}
	if !slices.Equal(paths, want) {
		t.Errorf("requests:\n%q\nwant\n%q", paths, want)
	}
	sent := len(srv.requests())
	if _, err := c.Create(ctx, Deletion, []string{"a"}, CCPA, DisclosureData); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("deletion with a disclosure type: %v", err)
	}
	if res, err := c.CreateAll(ctx, "erase", []string{"a", "a"}, GDPR, ""); !errors.Is(err, ErrInvalidInput) || !slices.Equal(res.Unsent, []string{"a"}) {
		t.Errorf("bad kind: %v %+v", err, res)
	}
	if _, err := c.Check(ctx, "", "t"); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("check, no kind: %v", err)
	}
	if _, err := c.Wait(ctx, "x", "t"); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("wait, bad kind: %v", err)
	}
	if len(srv.requests()) != sent {
		t.Error("a refused call sent a request")
	}
}
