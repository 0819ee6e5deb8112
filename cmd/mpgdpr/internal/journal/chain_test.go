package journal

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

func writeSample(t *testing.T, path string) {
	t.Helper()
	j, _ := mustOpen(t, path, header())
	mustAppend(t, j,
		Record{State: Sending, Chunk: 1, IDs: []string{"a", "b"}},
		Record{State: Accepted, Chunk: 1, TaskID: "t1"},
		Record{State: Sending, Chunk: 2, IDs: []string{"c", "d"}},
		Record{State: Accepted, Chunk: 2, TaskID: "t2"},
	)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustVerify(t *testing.T, path string) *ChainCheck {
	t.Helper()
	c, err := VerifyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestChainVerifiesAndSurvivesResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	writeSample(t, path)
	c := mustVerify(t, path)
	if c.BadLine != 0 || c.Lines != 5 || c.Hashed != 5 || len(c.Head) != 64 {
		t.Fatalf("fresh journal: %+v", c)
	}
	// A resumed run continues the chain.
	j, op := mustOpen(t, path, header())
	if !op.Resumed {
		t.Fatal("not resumed")
	}
	mustAppend(t, j, Record{State: Finished, TaskID: "t1", Status: "SUCCESS"})
	_ = j.Close()
	c2 := mustVerify(t, path)
	if c2.BadLine != 0 || c2.Hashed != 6 || c2.Head == c.Head {
		t.Fatalf("resumed journal: %+v", c2)
	}
	// The journal still reads as before (the "h" field is ignored).
	j, _ = mustOpen(t, path, header())
	if len(j.State().Tasks()) == 0 {
		t.Error("no tasks after reading a chained journal back")
	}
}

func TestChainNamesTheEditedOrRemovedLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "j.jsonl")
	writeSample(t, path)
	orig, _ := os.ReadFile(path)
	lines := bytes.SplitAfter(orig, []byte("\n"))
	lines = lines[:len(lines)-1] // the empty remainder

	edited := bytes.Replace(orig, []byte(`"task_id":"t1"`), []byte(`"task_id":"t9"`), 1)
	os.WriteFile(path, edited, 0o600)
	if c := mustVerify(t, path); c.BadLine != 3 {
		t.Errorf("edited line 3: %+v", c)
	}
	removed := bytes.Join(append(append([][]byte{}, lines[:2]...), lines[3:]...), nil)
	os.WriteFile(path, removed, 0o600)
	if c := mustVerify(t, path); c.BadLine != 3 {
		t.Errorf("removed line 3: %+v", c)
	}
	swapped := bytes.Join([][]byte{lines[0], lines[1], lines[3], lines[2], lines[4]}, nil)
	os.WriteFile(path, swapped, 0o600)
	if c := mustVerify(t, path); c.BadLine != 3 {
		t.Errorf("swapped lines 3 and 4: %+v", c)
	}
	// A hash stripped from one line is caught too.
	strip := regexp.MustCompile(`,"h":"[0-9a-f]{64}"`)
	stripped := bytes.Join([][]byte{lines[0], lines[1], strip.ReplaceAll(lines[2], nil), lines[3], lines[4]}, nil)
	os.WriteFile(path, stripped, 0o600)
	if c := mustVerify(t, path); c.BadLine != 3 {
		t.Errorf("hash stripped from line 3: %+v", c)
	}
}

func TestOldJournalIsUnverifiableNotTampered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	writeSample(t, path)
	b, _ := os.ReadFile(path)
	old := regexp.MustCompile(`,"h":"[0-9a-f]{64}"`).ReplaceAll(b, nil)
	os.WriteFile(path, old, 0o600)
	c := mustVerify(t, path)
	if !c.Unverifiable() || c.BadLine != 0 {
		t.Fatalf("old journal: %+v", c)
	}
	// Resumed, an old journal stays unhashed: still unverifiable, not tampered.
	j, _ := mustOpen(t, path, header())
	mustAppend(t, j, Record{State: Finished, TaskID: "t1", Status: "SUCCESS"})
	_ = j.Close()
	if c := mustVerify(t, path); !c.Unverifiable() || c.BadLine != 0 {
		t.Fatalf("old journal resumed: %+v", c)
	}
}
