package mpgdpr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// batchServer answers each create with script(n, ids): n counts creates
// from 1, ids is the request's distinct_ids. It records every create.
type batchServer struct {
	*recorder
	mu       sync.Mutex
	creates  [][]string
	accepted map[string][]string // task id → ids
}

func newBatchServer(t *testing.T, script func(n int, ids []string) (int, string)) *batchServer {
	t.Helper()
	s := &batchServer{accepted: map[string][]string{}}
	s.recorder = newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			okReply(w, r)
			return
		}
		var body struct {
			IDs []string `json:"distinct_ids"`
		}
		rec := s.recorder.requests()
		_ = json.Unmarshal(rec[len(rec)-1].Body, &body)
		s.mu.Lock()
		s.creates = append(s.creates, body.IDs)
		n := len(s.creates)
		s.mu.Unlock()
		code, reply := script(n, body.IDs)
		if code == 200 {
			id := fmt.Sprintf("task-%d", n)
			s.mu.Lock()
			s.accepted[id] = body.IDs
			s.mu.Unlock()
			reply = fmt.Sprintf(`{"status":"ok","results":{"task_id":%q}}`, id)
		}
		if code == -1 { // drop the connection without an answer
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			_ = conn.Close()
			return
		}
		jsonReply(code, reply)(w, r)
	})
	return s
}

func (s *batchServer) sent() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.creates)
}

func accept(int, []string) (int, string) { return 200, "" }

func conflict409(ids, tasks []string) string {
	b, _ := json.Marshal(map[string]any{"status": "error", "error": map[string]any{"conflicting_distinct_ids": ids, "conflicting_task_ids": tasks}})
	return string(b)
}

func idList(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// checkPartition asserts the BatchResult invariant: every distinct input
// ID is in exactly one of Tasks, Conflicts, Unknown and Unsent.
func checkPartition(t *testing.T, input []string, res *BatchResult) {
	t.Helper()
	if res == nil {
		t.Fatal("nil BatchResult")
	}
	where := map[string]string{}
	put := func(id, place string) {
		if prev, ok := where[id]; ok {
			t.Fatalf("id %q is in %s and %s", id, prev, place)
		}
		where[id] = place
	}
	for _, tk := range res.Tasks {
		for _, id := range tk.DistinctIDs {
			put(id, "task "+tk.TaskID)
		}
	}
	for _, c := range res.Conflicts {
		for _, id := range c.DistinctIDs {
			put(id, "conflicts")
		}
	}
	for _, id := range res.Unknown {
		put(id, "unknown")
	}
	for _, id := range res.Unsent {
		put(id, "unsent")
	}
	uniq, _ := dedupe(input)
	if len(where) != len(uniq) {
		t.Fatalf("%d ids accounted for, %d given", len(where), len(uniq))
	}
	for _, id := range uniq {
		if _, ok := where[id]; !ok {
			t.Fatalf("id %q lost", id)
		}
	}
}

// TestDeleteAllChunksInOrder: 5000 IDs and 3 repeats go out as 1999 +
// 1999 + 1002, in order, each ID once, and every task id is returned with
// exactly the IDs its request carried.
func TestDeleteAllChunksInOrder(t *testing.T) {
	srv := newBatchServer(t, accept)
	c := srv.client(t)
	ids := idList("u", 5000)
	input := append(slices.Clone(ids), "u7", "u4999", "u7")
	res, err := c.DeleteAll(context.Background(), input, GDPR)
	if err != nil {
		t.Fatal(err)
	}
	checkPartition(t, input, res)
	sent := srv.sent()
	if len(sent) != 3 || len(sent[0]) != 1999 || len(sent[1]) != 1999 || len(sent[2]) != 1002 {
		t.Fatalf("request sizes %v", lens(sent))
	}
	if !slices.Equal(slices.Concat(sent...), ids) {
		t.Fatal("ids not sent once each, in input order")
	}
	if len(res.Tasks) != 3 || len(res.Unsent) != 0 || len(res.Unknown) != 0 || len(res.Conflicts) != 0 {
		t.Fatalf("result %+v", summary(res))
	}
	for i, tk := range res.Tasks {
		if tk.Seq != i+1 || !slices.Equal(tk.DistinctIDs, srv.accepted[tk.TaskID]) {
			t.Fatalf("task %d (%s) does not carry the ids the server accepted for it", i, tk.TaskID)
		}
	}
	if !slices.Equal(res.Duplicates, []string{"u7", "u4999"}) {
		t.Fatalf("duplicates %q", res.Duplicates)
	}
	for _, r := range srv.requests() {
		if !strings.Contains(string(r.Body), `"compliance_type":"GDPR"`) || r.Path != "/api/app/data-deletions/v3.0" {
			t.Fatalf("request %s %s", r.Path, r.Body)
		}
	}
}

func lens(s [][]string) []int {
	var out []int
	for _, x := range s {
		out = append(out, len(x))
	}
	return out
}

func summary(r *BatchResult) string {
	return fmt.Sprintf("tasks=%d conflicts=%d unknown=%d unsent=%d dups=%d", len(r.Tasks), len(r.Conflicts), len(r.Unknown), len(r.Unsent), len(r.Duplicates))
}

// TestBatchChunkSizes: the limit is per operation and WithChunkSize can
// only lower it.
func TestBatchChunkSizes(t *testing.T) {
	srv := newBatchServer(t, accept)
	c := srv.client(t, WithMaxIDsPerRequest(3, 2))
	ctx := context.Background()
	if _, err := c.RetrieveAll(ctx, idList("r", 7), CCPA, DisclosureCategories); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteAll(ctx, idList("d", 5), CCPA); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteAll(ctx, idList("s", 3), GDPR, WithChunkSize(1)); err != nil {
		t.Fatal(err)
	}
	if got, want := lens(srv.sent()), []int{3, 3, 1, 2, 2, 1, 1, 1, 1}; !slices.Equal(got, want) {
		t.Fatalf("request sizes %v, want %v", got, want)
	}
	reqs := srv.requests()
	if !strings.Contains(string(reqs[0].Body), `"disclosure_type":"Categories"`) || reqs[0].Path != "/api/app/data-retrievals/v3.0" {
		t.Fatalf("retrieval request %s %s", reqs[0].Path, reqs[0].Body)
	}
	before := len(reqs)
	for _, n := range []int{0, -1, 3} {
		res, err := c.DeleteAll(ctx, []string{"a"}, GDPR, WithChunkSize(n))
		if !errors.Is(err, ErrInvalidInput) || !slices.Equal(res.Unsent, []string{"a"}) {
			t.Errorf("chunk size %d: %v", n, err)
		}
	}
	if len(srv.requests()) != before {
		t.Fatal("an invalid chunk size sent something")
	}
}

// TestBatchInvalidInputSendsNothing: one bad ID rejects the whole input
// before anything is sent, naming positions but not values.
func TestBatchInvalidInputSendsNothing(t *testing.T) {
	srv := newBatchServer(t, accept)
	c := srv.client(t)
	ctx := context.Background()
	secretish := "person@example.com"
	cases := map[string]func() (*BatchResult, error){
		"blank":       func() (*BatchResult, error) { return c.DeleteAll(ctx, []string{secretish, " \t", "b"}, GDPR) },
		"empty":       func() (*BatchResult, error) { return c.DeleteAll(ctx, []string{secretish, ""}, GDPR) },
		"bad utf8":    func() (*BatchResult, error) { return c.RetrieveAll(ctx, []string{secretish, "x\xff"}, GDPR, "") },
		"no ids":      func() (*BatchResult, error) { return c.DeleteAll(ctx, nil, GDPR) },
		"compliance":  func() (*BatchResult, error) { return c.DeleteAll(ctx, []string{secretish}, "gdpr") },
		"disclosure":  func() (*BatchResult, error) { return c.RetrieveAll(ctx, []string{secretish}, GDPR, DisclosureData) },
		"bad disclos": func() (*BatchResult, error) { return c.RetrieveAll(ctx, []string{secretish}, CCPA, "All") },
	}
	for name, call := range cases {
		res, err := call()
		var ie *InputError
		if !errors.As(err, &ie) {
			t.Errorf("%s: err = %v, want *InputError", name, err)
			continue
		}
		if res == nil || len(res.Tasks) != 0 || (name != "no ids" && !slices.Contains(res.Unsent, secretish)) {
			t.Errorf("%s: result %+v", name, res)
		}
		if strings.Contains(err.Error(), secretish) {
			t.Errorf("%s: the error shows an id: %v", name, err)
		}
	}
	_, err := c.DeleteAll(ctx, []string{"a", "", "b", " ", "c\xfe"}, GDPR)
	if err == nil || !strings.Contains(err.Error(), "3 invalid") || !strings.Contains(err.Error(), "#2") || !strings.Contains(err.Error(), "#5") {
		t.Errorf("positions not named: %v", err)
	}
	if n := len(srv.requests()); n != 0 {
		t.Fatalf("%d requests sent for invalid input", n)
	}
}

// TestBatchStopsOnFailure: a failure part way returns what was accepted,
// the error, and every other ID as unsent; nothing more is sent.
func TestBatchStopsOnFailure(t *testing.T) {
	srv := newBatchServer(t, func(n int, _ []string) (int, string) {
		if n == 3 {
			return 401, `{"status":"error","error":"Invalid token"}`
		}
		return 200, ""
	})
	c := srv.client(t, WithMaxIDsPerRequest(2000, 2))
	input := idList("p", 9)
	res, err := c.DeleteAll(context.Background(), input, GDPR)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v", err)
	}
	checkPartition(t, input, res)
	if len(res.Tasks) != 2 || !slices.Equal(res.Unsent, input[4:]) || len(res.Unknown) != 0 {
		t.Fatalf("result %s, unsent %q", summary(res), res.Unsent)
	}
	if n := len(srv.sent()); n != 3 {
		t.Fatalf("%d creates sent after the failure, want 3 in all", n)
	}
}

// TestBatchOutcomeUnknown: a retrieval whose outcome is unknown is
// reported apart from accepted and unsent IDs, and is not re-sent (a second
// retrieval would make a second export). Every answer that does not prove
// the request was left alone counts, not only 500/502/504: before the
// CreateRefused rule, a 520 or a 503 without Retry-After put the IDs in
// Unsent, and the next run filed them again.
func TestBatchOutcomeUnknown(t *testing.T) {
	for name, fail := range map[string]func() (int, string){
		"502":           func() (int, string) { return 502, "bad gateway" },
		"500":           func() (int, string) { return 500, "oops" },
		"520":           func() (int, string) { return 520, "origin error" },
		"501":           func() (int, string) { return 501, "proxy" },
		"507":           func() (int, string) { return 507, "storage" },
		"503 no header": func() (int, string) { return 503, "gateway" },
		"reset":         func() (int, string) { return -1, "" },
		"bad answer":    func() (int, string) { return 201, "" }, // 201 with no task id
	} {
		t.Run(name, func(t *testing.T) {
			srv := newBatchServer(t, func(n int, _ []string) (int, string) {
				if n == 2 {
					return fail()
				}
				return 200, ""
			})
			c := srv.client(t, WithMaxIDsPerRequest(3, 2000))
			input := idList("q", 8)
			var unknown []int
			res, err := c.RetrieveAll(context.Background(), input, GDPR, "", WithOnUnknown(func(seq int, ids []string, err error) error {
				unknown = append(unknown, seq)
				return nil
			}))
			if !errors.Is(err, ErrOutcomeUnknown) {
				t.Fatalf("err = %v", err)
			}
			checkPartition(t, input, res)
			if !slices.Equal(res.Unknown, input[3:6]) || !slices.Equal(res.Unsent, input[6:]) || len(res.Tasks) != 1 || !slices.Equal(unknown, []int{2}) {
				t.Fatalf("unknown %q unsent %q tasks %d, OnUnknown %v", res.Unknown, res.Unsent, len(res.Tasks), unknown)
			}
			if n := len(srv.sent()); n != 2 {
				t.Fatalf("%d creates, want 2 (no resend)", n)
			}
		})
	}
}

// TestDeleteAllSettlesUnknown: a deletion whose outcome is unknown is
// resubmitted, and ends in Tasks (it had not been filed) or Conflicts (it
// had: the 409 names its task), never in Unknown or Unsent. The journal
// callbacks see the resubmission as a request of its own, linked to the
// unknown one by ResubmitOf.
func TestDeleteAllSettlesUnknown(t *testing.T) {
	for name, tc := range map[string]struct {
		resubmit  func(ids []string) (int, string) // the answer to the resubmission
		tasks     int
		conflicts int
	}{
		"not filed": {func([]string) (int, string) { return 200, "" }, 2, 0},
		"filed":     {func(ids []string) (int, string) { return 409, conflict409(ids, []string{"task-2"}) }, 1, 1},
	} {
		t.Run(name, func(t *testing.T) {
			srv := newBatchServer(t, func(n int, ids []string) (int, string) {
				switch n {
				case 2:
					return 520, "origin error" // the answer came after the origin may have acted
				case 3:
					return 502, "again" // still unknown: resubmitted once more
				case 4:
					return tc.resubmit(ids)
				}
				return 200, ""
			})
			c := srv.client(t, WithMaxIDsPerRequest(2000, 3))
			input := idList("d", 6)
			var events []string
			res, err := c.DeleteAll(context.Background(), input, GDPR,
				WithBeforeChunk(func(seq int, ids []string) error {
					events = append(events, fmt.Sprintf("before %d %v", seq, ids))
					return nil
				}),
				WithBeforeSend(func(seq int, ids []string) error {
					events = append(events, fmt.Sprintf("sending %d", seq))
					return nil
				}),
				WithOnUnknown(func(seq int, ids []string, err error) error {
					events = append(events, fmt.Sprintf("unknown %d %v", seq, ids))
					return nil
				}),
				WithOnChunk(func(t BatchTask) error {
					events = append(events, fmt.Sprintf("accepted %d resubmits %d", t.Seq, t.ResubmitOf))
					return nil
				}),
				WithOnConflict(func(c Conflict) error {
					events = append(events, fmt.Sprintf("conflict %d resubmits %d %v", c.Seq, c.ResubmitOf, c.TaskIDs))
					return nil
				}))
			if err != nil {
				t.Fatal(err)
			}
			checkPartition(t, input, res)
			if len(res.Unknown) != 0 || len(res.Unsent) != 0 || len(res.Tasks) != tc.tasks || len(res.Conflicts) != tc.conflicts {
				t.Fatalf("%s", summary(res))
			}
			settled := "accepted 4 resubmits 3"
			if tc.conflicts > 0 {
				settled = "conflict 4 resubmits 3 [task-2]"
			}
			want := []string{
				"before 1 [d0 d1 d2]", "sending 1", "accepted 1 resubmits 0",
				"before 2 [d3 d4 d5]", "sending 2", "unknown 2 [d3 d4 d5]",
				"before 3 [d3 d4 d5]", "sending 3", "unknown 3 [d3 d4 d5]",
				"before 4 [d3 d4 d5]", "sending 4", settled,
			}
			if !slices.Equal(events, want) {
				t.Fatalf("events\n%s\nwant\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
			}
			if got := lens(srv.sent()); !slices.Equal(got, []int{3, 3, 3, 3}) {
				t.Fatalf("request sizes %v", got)
			}
		})
	}

	// Resubmissions that never settle end, within the retry policy, with
	// the IDs in Unknown (never Unsent) and an ErrOutcomeUnknown.
	srv := newBatchServer(t, func(n int, _ []string) (int, string) {
		if n == 1 {
			return 200, ""
		}
		return 500, "down"
	})
	c := srv.client(t, WithMaxIDsPerRequest(2000, 2), WithRetryPolicy(fastRetries(3)))
	input := idList("u", 5)
	res, err := c.DeleteAll(context.Background(), input, GDPR)
	if !errors.Is(err, ErrOutcomeUnknown) || !slices.Equal(res.Unknown, input[2:4]) || !slices.Equal(res.Unsent, input[4:]) {
		t.Fatalf("%v, %s", err, summary(res))
	}
	checkPartition(t, input, res)
	if n := len(srv.sent()); n != 4 { // the first chunk, then 3 attempts at the second
		t.Fatalf("%d creates, want 4", n)
	}

	// A resubmission refused for another reason (here 400) leaves the IDs
	// Unknown: the first request may still have been filed.
	srv = newBatchServer(t, func(n int, _ []string) (int, string) {
		if n == 1 {
			return -1, "" // dropped connection
		}
		return 400, `{"status":"error","error":"nope"}`
	})
	res, err = srv.client(t).DeleteAll(context.Background(), input, GDPR)
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrBadRequest) || !slices.Equal(res.Unknown, input) {
		t.Fatalf("%v, %s", err, summary(res))
	}
}

// TestBatchConflicts: a 409 drops the IDs it names (recorded with their
// tasks) and resubmits the rest, as often as it takes.
func TestBatchConflicts(t *testing.T) {
	srv := newBatchServer(t, func(n int, ids []string) (int, string) {
		switch n {
		case 1: // names two of ours and one stranger
			return 409, conflict409([]string{"b", "d", "stranger"}, []string{"t9"})
		case 2:
			return 409, conflict409([]string{"c"}, []string{"t10", "t11"})
		case 4: // every ID of the second chunk: nothing left to resubmit
			return 409, conflict409(ids, []string{"t12"})
		}
		return 200, ""
	})
	c := srv.client(t, WithMaxIDsPerRequest(2000, 4))
	input := []string{"a", "b", "c", "d", "e", "f"}
	var events []string
	res, err := c.DeleteAll(context.Background(), input, GDPR,
		WithBeforeChunk(func(seq int, ids []string) error {
			events = append(events, fmt.Sprintf("before %d %v", seq, ids))
			return nil
		}),
		WithOnChunk(func(t BatchTask) error {
			events = append(events, fmt.Sprintf("accepted %d %s %v", t.Seq, t.TaskID, t.DistinctIDs))
			return nil
		}),
		WithOnConflict(func(c Conflict) error {
			events = append(events, fmt.Sprintf("conflict %d %v %v", c.Seq, c.DistinctIDs, c.TaskIDs))
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	checkPartition(t, input, res)
	want := []string{
		"before 1 [a b c d]", "conflict 1 [b d] [t9]",
		"before 2 [a c]", "conflict 2 [c] [t10 t11]",
		"before 3 [a]", "accepted 3 task-3 [a]",
		"before 4 [e f]", "conflict 4 [e f] [t12]",
	}
	if !slices.Equal(events, want) {
		t.Fatalf("events\n%s\nwant\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
	if got := lens(srv.sent()); !slices.Equal(got, []int{4, 2, 1, 2}) {
		t.Fatalf("request sizes %v", got)
	}
	if len(res.Conflicts) != 3 || !slices.Equal(res.Conflicts[1].TaskIDs, []string{"t10", "t11"}) {
		t.Fatalf("conflicts %+v", res.Conflicts)
	}

	// A 409 that names none of the IDs cannot be resolved: stop.
	srv2 := newBatchServer(t, func(int, []string) (int, string) {
		return 409, conflict409([]string{"zzz"}, []string{"t1"})
	})
	res, err = srv2.client(t).DeleteAll(context.Background(), []string{"a", "b"}, GDPR)
	if !errors.Is(err, ErrConflict) || !slices.Equal(res.Unsent, []string{"a", "b"}) || len(srv2.sent()) != 1 {
		t.Fatalf("unresolvable 409: %v, %s", err, summary(res))
	}

	// Nor can one that names IDs but no task: nothing to follow.
	srv3 := newBatchServer(t, func(int, []string) (int, string) {
		return 409, conflict409([]string{"a"}, nil)
	})
	res, err = srv3.client(t).DeleteAll(context.Background(), []string{"a", "b"}, GDPR)
	if !errors.Is(err, ErrConflict) || !slices.Equal(res.Unsent, []string{"a", "b"}) || len(res.Conflicts) != 0 || len(srv3.sent()) != 1 {
		t.Fatalf("409 without a task: %v, %s", err, summary(res))
	}
}

// TestBatchCallbacksAbort: an error from a callback stops the batch at a
// clean point, and the caller's error is kept.
func TestBatchCallbacksAbort(t *testing.T) {
	journalFull := errors.New("journal full")
	input := idList("j", 6)
	t.Run("before", func(t *testing.T) {
		srv := newBatchServer(t, accept)
		c := srv.client(t, WithMaxIDsPerRequest(2000, 2))
		res, err := c.DeleteAll(context.Background(), input, GDPR, WithBeforeChunk(func(seq int, _ []string) error {
			if seq == 2 {
				return journalFull
			}
			return nil
		}))
		if !errors.Is(err, journalFull) || len(res.Tasks) != 1 || !slices.Equal(res.Unsent, input[2:]) || len(srv.sent()) != 1 {
			t.Fatalf("%v, %s", err, summary(res))
		}
		checkPartition(t, input, res)
	})
	t.Run("after", func(t *testing.T) {
		srv := newBatchServer(t, accept)
		c := srv.client(t, WithMaxIDsPerRequest(2000, 2))
		res, err := c.DeleteAll(context.Background(), input, GDPR, WithOnChunk(func(BatchTask) error { return journalFull }))
		if !errors.Is(err, journalFull) || len(res.Tasks) != 1 || !slices.Equal(res.Unsent, input[2:]) || len(srv.sent()) != 1 {
			t.Fatalf("%v, %s", err, summary(res))
		}
		checkPartition(t, input, res)
	})
	t.Run("conflict", func(t *testing.T) {
		srv := newBatchServer(t, func(int, []string) (int, string) { return 409, conflict409([]string{"j0"}, []string{"t"}) })
		c := srv.client(t, WithMaxIDsPerRequest(2000, 2))
		res, err := c.DeleteAll(context.Background(), input, GDPR, WithOnConflict(func(Conflict) error { return journalFull }))
		if !errors.Is(err, journalFull) || len(res.Conflicts) != 1 || !slices.Equal(res.Unsent, input[1:]) || len(srv.sent()) != 1 {
			t.Fatalf("%v, %s", err, summary(res))
		}
		checkPartition(t, input, res)
	})
	t.Run("cancel", func(t *testing.T) {
		srv := newBatchServer(t, accept)
		c := srv.client(t, WithMaxIDsPerRequest(2000, 2))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		res, err := c.DeleteAll(ctx, input, GDPR, WithOnChunk(func(BatchTask) error { cancel(); return nil }))
		if !errors.Is(err, context.Canceled) || len(res.Tasks) != 1 || !slices.Equal(res.Unsent, input[2:]) || len(srv.sent()) != 1 {
			t.Fatalf("%v, %s", err, summary(res))
		}
	})
}

// TestBatchPartitionProperty: whatever the server does to each request,
// every ID ends up in exactly one place, and Tasks match what the server
// accepted.
func TestBatchPartitionProperty(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	var mu sync.Mutex
	srv := newBatchServer(t, func(_ int, ids []string) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		switch r := rng.IntN(100); {
		case r < 60:
			return 200, ""
		case r < 85:
			var named []string
			for _, id := range ids {
				if rng.IntN(3) == 0 {
					named = append(named, id)
				}
			}
			return 409, conflict409(named, []string{"t"})
		case r < 90:
			return 502, ""
		case r < 95:
			return 400, `{"status":"error","error":"nope"}`
		default:
			return 429, `{"status":"error","error":"slow down"}`
		}
	})
	c := srv.client(t, WithRetryPolicy(NoRetries()), WithMaxIDsPerRequest(2000, 5))
	for i := range 300 {
		mu.Lock()
		n := 1 + rng.IntN(30)
		input := idList(fmt.Sprintf("i%d-", i), n)
		for range rng.IntN(4) {
			input = append(input, input[rng.IntN(len(input))])
		}
		mu.Unlock()
		res, err := c.DeleteAll(context.Background(), input, GDPR)
		checkPartition(t, input, res)
		if err == nil && (len(res.Unsent) > 0 || len(res.Unknown) > 0) {
			t.Fatalf("no error but %s", summary(res))
		}
		if err != nil && len(res.Unsent) == 0 && len(res.Unknown) == 0 {
			t.Fatalf("error %v but nothing left over", err)
		}
		if len(res.Unknown) > 0 != errors.Is(err, ErrOutcomeUnknown) {
			t.Fatalf("unknown ids %d, err %v", len(res.Unknown), err)
		}
		srv.mu.Lock()
		for _, tk := range res.Tasks {
			if !slices.Equal(srv.accepted[tk.TaskID], tk.DistinctIDs) {
				t.Fatalf("task %s: result %q, server accepted %q", tk.TaskID, tk.DistinctIDs, srv.accepted[tk.TaskID])
			}
		}
		srv.mu.Unlock()
	}
}

// TestBatchBeforeSendAfterTurn: WithBeforeSend runs after the request's
// turn at the rate limiter. A batch cancelled while its second request
// waits for its turn has called the hook for the first request only, and
// the second request's IDs are Unsent. (Before WithBeforeSend existed a
// journal could only use WithBeforeChunk, which runs before the wait.)
func TestBatchBeforeSendAfterTurn(t *testing.T) {
	srv := newBatchServer(t, accept)
	// One token, then one an hour later: the second request waits until
	// the context is cancelled, however loaded the machine is.
	c := srv.client(t, WithMaxIDsPerRequest(2000, 2), WithRateLimiter(rate.NewLimiter(rate.Every(time.Hour), 1)),
		WithRetryPolicy(RetryPolicy{MaxAttempts: 1, MaxElapsed: 2 * time.Hour})) // a budget that allows the wait
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	input := idList("w", 4)
	var sending []int
	res, err := c.DeleteAll(ctx, input, GDPR,
		WithBeforeChunk(func(seq int, _ []string) error {
			if seq == 2 {
				time.AfterFunc(20*time.Millisecond, cancel) // while it waits for its turn
			}
			return nil
		}),
		WithBeforeSend(func(seq int, ids []string) error {
			sending = append(sending, seq)
			if len(srv.sent()) != seq-1 {
				t.Errorf("before-send %d called after the request was sent", seq)
			}
			return nil
		}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	checkPartition(t, input, res)
	if !slices.Equal(sending, []int{1}) || !slices.Equal(res.Unsent, input[2:]) || len(srv.sent()) != 1 {
		t.Fatalf("before-send calls %v, %s, %d sent", sending, summary(res), len(srv.sent()))
	}
}

// TestBatchBeforeSendRefuses: an error from the WithBeforeSend hook stops
// the batch before the request is sent: its IDs and the later ones are
// Unsent, and the caller's error is kept.
func TestBatchBeforeSendRefuses(t *testing.T) {
	journalFull := errors.New("journal full")
	srv := newBatchServer(t, accept)
	c := srv.client(t, WithMaxIDsPerRequest(2000, 2), WithRateLimiter(rate.NewLimiter(rate.Every(time.Hour), 1)))
	input := idList("r", 4)
	res, err := c.DeleteAll(context.Background(), input, GDPR, WithBeforeSend(func(int, []string) error { return journalFull }))
	if !errors.Is(err, journalFull) || len(res.Tasks) != 0 || !slices.Equal(res.Unsent, input) || len(srv.sent()) != 0 {
		t.Fatalf("%v, %s, %d sent", err, summary(res), len(srv.sent()))
	}
	checkPartition(t, input, res)
}
