package journal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func header() Header {
	return Header{Command: "delete", Compliance: "GDPR", API: "mixpanel.com/api/app", IDs: 4,
		IDsSHA256: DigestIDs([]string{"a", "b", "c", "d"}), ChunkSize: 2}
}

func mustOpen(t *testing.T, path string, h Header) (*Journal, Opened) {
	t.Helper()
	j, op, err := Open(path, h, 0)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j, op
}

func mustAppend(t *testing.T, j *Journal, rs ...Record) {
	t.Helper()
	for _, r := range rs {
		if err := j.Append(r); err != nil {
			t.Fatalf("Append(%+v): %v", r, err)
		}
	}
}

func TestCreateThenResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	j, op := mustOpen(t, path, header())
	if op.Resumed || op.DroppedTail {
		t.Fatalf("new journal: %+v", op)
	}
	mustAppend(t, j,
		Record{State: Sending, Chunk: 1, IDs: []string{"a", "b"}},
		Record{State: Accepted, Chunk: 1, TaskID: "t1"},
		Record{State: Sending, Chunk: 2, IDs: []string{"c", "d"}},
	)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600: the journal holds distinct IDs", fi.Mode().Perm())
		}
	}

	j2, op := mustOpen(t, path, header())
	if !op.Resumed || op.DroppedTail {
		t.Fatalf("reopened: %+v", op)
	}
	st := j2.State()
	for id, want := range map[string]IDState{"a": IDAccepted, "b": IDAccepted, "c": IDInFlight, "d": IDInFlight, "e": IDUnsent} {
		if got, _ := st.ID(id); got != want {
			t.Errorf("ID %s: %v, want %v", id, got, want)
		}
	}
	if st.NextChunk() != 3 {
		t.Errorf("NextChunk %d, want 3", st.NextChunk())
	}
	if ts := st.Tasks(); len(ts) != 1 || ts[0].ID != "t1" || ts[0].Chunk != 1 || ts[0].IDs != 2 {
		t.Errorf("tasks %+v", ts)
	}
	if st.Header.Created.IsZero() || st.Header.Type != "header" || st.Header.Version != Version {
		t.Errorf("header %+v", st.Header)
	}
}

// Each line is one JSON object, the header first, with no credential
// field anywhere.
func TestFileFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	j, _ := mustOpen(t, path, header())
	mustAppend(t, j,
		Record{State: Sending, Chunk: 1, IDs: []string{"a", "b"}},
		Record{State: Accepted, Chunk: 1, TaskID: "t1"},
		Record{State: Finished, TaskID: "t1", Status: "SUCCESS"},
	)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	var states []string
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if s, ok := m["state"].(string); ok {
			states = append(states, s)
		} else {
			states = append(states, "type="+m["type"].(string))
		}
		for k := range m {
			if strings.Contains(strings.ToLower(k), "token") || strings.Contains(strings.ToLower(k), "secret") {
				t.Errorf("field %q in the journal", k)
			}
		}
	}
	if want := []string{"type=header", Sending, Accepted, Finished}; !slices.Equal(states, want) {
		t.Errorf("lines %v, want %v", states, want)
	}
}

func TestTornTailIsDropped(t *testing.T) {
	for name, tail := range map[string]string{
		"no newline":    `{"state":"accepted","chunk":2,"task_id":"t2"`,
		"garbage line":  "\x00\x00\x00\x00\n",
		"half a record": `{"state":"acc` + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j.jsonl")
			j, _ := mustOpen(t, path, header())
			mustAppend(t, j,
				Record{State: Sending, Chunk: 1, IDs: []string{"a", "b"}},
				Record{State: Accepted, Chunk: 1, TaskID: "t1"},
				Record{State: Sending, Chunk: 2, IDs: []string{"c", "d"}},
			)
			_ = j.Close()
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = f.WriteString(tail)
			_ = f.Close()

			j2, op := mustOpen(t, path, header())
			if !op.Resumed || !op.DroppedTail {
				t.Fatalf("opened %+v, want resumed with the tail dropped", op)
			}
			// The torn outcome is lost: request 2 is in flight, i.e. unknown.
			if s, n := j2.State().ID("c"); s != IDInFlight || n != 2 {
				t.Errorf("c: %v in %d, want in flight in 2", s, n)
			}
			// The file is whole again: a new record lands on a line of its own.
			mustAppend(t, j2, Record{State: Unknown, Chunk: 2, Error: "stopped"})
			_ = j2.Close()
			j3, op := mustOpen(t, path, header())
			if op.DroppedTail {
				t.Error("a second open still found a torn tail")
			}
			if s, _ := j3.State().ID("d"); s != IDUnknown {
				t.Errorf("d: %v, want unknown", s)
			}
		})
	}
}

func TestOnlyHeaderTornStartsOver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	if err := os.WriteFile(path, []byte(`{"type":"header","v":1,"comm`), 0o600); err != nil {
		t.Fatal(err)
	}
	j, op := mustOpen(t, path, header())
	if op.Resumed || !op.DroppedTail {
		t.Fatalf("opened %+v", op)
	}
	mustAppend(t, j, Record{State: Sending, Chunk: 1, IDs: []string{"a"}})
}

func TestCorruptMiddleLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	j, _ := mustOpen(t, path, header())
	mustAppend(t, j, Record{State: Sending, Chunk: 1, IDs: []string{"a", "b"}})
	_ = j.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	_, _ = f.WriteString("not json\n" + `{"state":"accepted","chunk":1,"task_id":"t1","time":"2025-01-01T00:00:00Z"}` + "\n")
	_ = f.Close()
	_, _, err := Open(path, header(), 0)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("err = %v, want ErrCorrupt at line 3", err)
	}
	// A record that contradicts the ones before it is corruption too, even last.
	path2 := filepath.Join(t.TempDir(), "j.jsonl")
	j2, _ := mustOpen(t, path2, header())
	_ = j2.Close()
	f, _ = os.OpenFile(path2, os.O_APPEND|os.O_WRONLY, 0)
	_, _ = f.WriteString(`{"state":"accepted","chunk":7,"task_id":"t1","time":"2025-01-01T00:00:00Z"}` + "\n")
	_ = f.Close()
	if _, _, err := Open(path2, header(), 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
}

func TestMismatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	j, _ := mustOpen(t, path, header())
	_ = j.Close()
	other := header()
	other.Command, other.IDs, other.IDsSHA256 = "retrieve", 3, DigestIDs([]string{"a", "b", "c"})
	_, _, err := Open(path, other, 0)
	var me *MismatchError
	if !errors.As(err, &me) || !errors.Is(err, ErrMismatch) {
		t.Fatalf("err = %v, want a MismatchError", err)
	}
	if len(me.Differences) != 2 || !strings.Contains(err.Error(), "command") || !strings.Contains(err.Error(), "ID list") {
		t.Errorf("differences %q", me.Differences)
	}
	// The chunk size may change between runs: the state is per ID.
	same := header()
	same.ChunkSize = 1
	j2, _, err := Open(path, same, 0)
	if err != nil {
		t.Fatalf("another chunk size: %v", err)
	}
	_ = j2.Close()
}

func TestLocked(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock")
	}
	path := filepath.Join(t.TempDir(), "j.jsonl")
	j, _ := mustOpen(t, path, header())
	if _, _, err := Open(path, header(), 0); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	_ = j.Close()
	j2, _, err := Open(path, header(), 0)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	_ = j2.Close()
}

func TestStateRules(t *testing.T) {
	j, _ := mustOpen(t, filepath.Join(t.TempDir(), "j.jsonl"), header())
	bad := func(r Record, why string) {
		t.Helper()
		if err := j.Append(r); err == nil {
			t.Errorf("Append(%+v) accepted; want refused: %s", r, why)
		}
	}
	bad(Record{State: Accepted, Chunk: 1, TaskID: "t"}, "request never sent")
	bad(Record{State: Sending, Chunk: 1}, "no IDs")
	bad(Record{State: "weird"}, "unknown state")
	mustAppend(t, j, Record{State: Sending, Chunk: 1, IDs: []string{"a", "b", "c"}})
	bad(Record{State: Sending, Chunk: 1, IDs: []string{"d"}}, "number reused")
	bad(Record{State: Accepted, Chunk: 1}, "no task id")
	bad(Record{State: Conflict, Chunk: 1, IDs: []string{"z"}, TaskIDs: []string{"t0"}}, "ID not in the request")
	bad(Record{State: Finished, TaskID: "nope", Status: "SUCCESS"}, "task not followed")

	// A 409 rejects the whole request: the named IDs are covered, the rest unsent.
	mustAppend(t, j, Record{State: Conflict, Chunk: 1, IDs: []string{"b"}, TaskIDs: []string{"t0"}})
	bad(Record{State: Accepted, Chunk: 1, TaskID: "t"}, "request already ended")
	st := j.State()
	for id, want := range map[string]IDState{"a": IDUnsent, "b": IDConflict, "c": IDUnsent} {
		if got, _ := st.ID(id); got != want {
			t.Errorf("%s: %v, want %v", id, got, want)
		}
	}
	mustAppend(t, j,
		Record{State: Sending, Chunk: 2, IDs: []string{"a", "c"}},
		Record{State: Unknown, Chunk: 2, Error: "reset"},
		// Refiling the unknown IDs moves them to the new request.
		Record{State: Sending, Chunk: 3, IDs: []string{"a", "c"}},
		Record{State: Accepted, Chunk: 3, TaskID: "t3"},
		Record{State: Sending, Chunk: 4, IDs: []string{"d"}},
		Record{State: Unsent, Chunk: 4, Error: "HTTP 401"},
		Record{State: Finished, TaskID: "t0", Status: "SUCCESS"},
		Record{State: Downloaded, TaskID: "t3", Path: "x.zip", Bytes: 10, Files: 2},
	)
	for id, want := range map[string]IDState{"a": IDAccepted, "b": IDConflict, "c": IDAccepted, "d": IDUnsent} {
		if got, _ := st.ID(id); got != want {
			t.Errorf("%s: %v, want %v", id, got, want)
		}
	}
	ts := st.Tasks()
	if len(ts) != 2 || ts[0].ID != "t0" || ts[0].Chunk != 0 || ts[0].Covering != 1 || ts[0].Status != "SUCCESS" ||
		ts[1].ID != "t3" || ts[1].Chunk != 3 || ts[1].Download == nil || ts[1].Download.Files != 2 {
		t.Errorf("tasks %+v", ts)
	}
	var states []string
	for _, c := range st.Chunks() {
		states = append(states, c.State)
	}
	if want := []string{Conflict, Unknown, Accepted, Unsent}; !slices.Equal(states, want) {
		t.Errorf("requests %v, want %v", states, want)
	}
}

func TestDigestIDs(t *testing.T) {
	a := DigestIDs([]string{"x", "y", "z"})
	if b := DigestIDs([]string{"z", "x", "y", "x"}); a != b {
		t.Error("order or repeats change the digest")
	}
	if DigestIDs([]string{"ab", "c"}) == DigestIDs([]string{"a", "bc"}) {
		t.Error("IDs are not delimited")
	}
	if DigestIDs([]string{"x", "y"}) == a {
		t.Error("a smaller set has the same digest")
	}
}

func TestKeyFollowsTheJob(t *testing.T) {
	h := header()
	k := h.Key()
	h2 := h
	h2.ChunkSize = 7
	if h2.Key() != k {
		t.Error("the chunk size changes the key")
	}
	h2.Compliance = "CCPA"
	if h2.Key() == k {
		t.Error("the compliance type does not change the key")
	}
}

// A path that is not a regular file, or a file larger than a journal of the
// job could be, is refused before anything is read (issue 12).
func TestRefusesWhatCannotBeAJournal(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Open(dir, header(), 0); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "a directory") {
		t.Errorf("a directory: %v", err)
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		if _, _, err := Open("/dev/zero", header(), 0); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "a device") {
			t.Errorf("/dev/zero: %v", err)
		}
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 2000), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(big, header(), 1000); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a file over the bound: %v", err)
	}
	if b, _ := os.ReadFile(big); len(b) != 2000 {
		t.Error("the refused file was changed")
	}
	// Within the bound, the same file is read: zeros are a torn header.
	if _, _, err := Open(big, header(), 4000); err != nil {
		t.Errorf("zeros within the bound: %v", err)
	}
	// A file of something else without a newline is not taken for a torn
	// header and emptied.
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("PK\x03\x04 not a journal"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(other, header(), 0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("another file: %v", err)
	}
	if b, _ := os.ReadFile(other); len(b) == 0 {
		t.Error("another file was emptied")
	}
	if MaxSize(10, 100) <= MaxSize(1, 1) || MaxSize(1_000_000, 40_000_000) < 24_000_000_000 {
		t.Error("MaxSize does not grow with the input")
	}
}
