package journal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// ReadFile, which the evidence report uses, reads a journal as Open does:
// the header, each record with its chained hash (the last one is the
// chain's head), a torn last line left out and a bad middle line refused.
func TestReadFileAgreesWithOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	j, _ := mustOpen(t, path, header())
	mustAppend(t, j,
		Record{State: Sending, Chunk: 1, IDs: []string{"a", "b"}},
		Record{State: Accepted, Chunk: 1, TaskID: "t1"},
	)
	_ = j.Close()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"state":"sending","chunk":2`) // torn
	_ = f.Close()

	var states []string
	last := ""
	info, err := ReadFile(path, func(e Entry) error {
		switch {
		case e.Line == 1 && (e.Header == nil || e.Header.Command != "delete"):
			t.Errorf("line 1: %+v", e)
		case e.Line > 1:
			states = append(states, e.Record.State)
		}
		last = e.Hash
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 2 || states[1] != Accepted || info.Lines != 3 || !info.DroppedTail {
		t.Errorf("read %v, %+v", states, info)
	}
	c, err := VerifyFile(path)
	if err != nil || c.Head != last || len(last) != 64 || c.Lines != 3 {
		t.Errorf("last hash %q, VerifyFile %+v, %v", last, c, err)
	}

	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(bad, append(data, []byte("\n{}\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(bad, func(Entry) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a bad middle line: %v, want ErrCorrupt", err)
	}
	if _, err := ReadFile(t.TempDir(), func(Entry) error { return nil }); !errors.Is(err, ErrNotRegular) {
		t.Errorf("a directory: %v, want ErrNotRegular", err)
	}
}
