package zipend

import (
	"archive/zip"
	"bytes"
	"errors"
	"testing"
)

func archive(t *testing.T, comment string, names ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for _, n := range names {
		f, err := w.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(bytes.Repeat([]byte(n), 1000))
	}
	if err := w.SetComment(comment); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestFindComplete(t *testing.T) {
	for _, comment := range []string{"", "a comment", string(bytes.Repeat([]byte{'c'}, 0xffff))} {
		b := archive(t, comment, "a", "b/c.json")
		e, err := Find(bytes.NewReader(b), int64(len(b)), true)
		if err != nil {
			t.Fatalf("comment %d bytes: %v", len(comment), err)
		}
		if e.Entries != 2 || e.DirOffset <= 0 || e.DirSize <= 0 {
			t.Fatalf("%+v", e)
		}
	}
	// An empty archive is complete too.
	b := archive(t, "")
	if _, err := Find(bytes.NewReader(b), int64(len(b)), true); err != nil {
		t.Fatal(err)
	}
}

func TestFindRefusesEveryCut(t *testing.T) {
	b := archive(t, "cmt", "a", "b")
	for n := 0; n < len(b); n++ {
		if _, err := Find(bytes.NewReader(b[:n]), int64(n), true); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("cut at %d of %d: err = %v", n, len(b), err)
		}
	}
	// Junk after the end, or before the start with the offsets unchanged.
	padded := append(bytes.Clone(b), 0)
	if _, err := Find(bytes.NewReader(padded), int64(len(padded)), true); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("padded: %v", err)
	}
	prefixed := append([]byte("junk"), b...)
	if _, err := Find(bytes.NewReader(prefixed), int64(len(prefixed)), true); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("prefixed: %v", err)
	}
}

// A zip stored inside a zip: cutting the outer one right after the inner
// one's end record must not look complete.
func TestFindInnerArchiveCut(t *testing.T) {
	inner := archive(t, "", "x")
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	f, _ := w.CreateHeader(&zip.FileHeader{Name: "inner.zip", Method: zip.Store})
	f.Write(inner)
	w.Close()
	outer := b.Bytes()
	i := bytes.Index(outer, inner)
	cut := outer[:i+len(inner)]
	if _, err := Find(bytes.NewReader(cut), int64(len(cut)), true); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("cut after the inner archive: %v", err)
	}
}

func TestFindZip64(t *testing.T) {
	// A ZIP64 end record written by hand in front of a plain one whose
	// fields say "see ZIP64".
	b := archive(t, "", "a")
	e, err := Find(bytes.NewReader(b), int64(len(b)), true)
	if err != nil {
		t.Fatal(err)
	}
	head := b[:e.DirOffset+e.DirSize]
	rec := make([]byte, end64Len)
	le := func(p []byte, v uint64, n int) {
		for i := range n {
			p[i] = byte(v >> (8 * i))
		}
	}
	le(rec[0:], sigEnd64, 4)
	le(rec[4:], end64Len-12, 8)
	le(rec[24:], 1, 8)
	le(rec[32:], 1, 8)
	le(rec[40:], uint64(e.DirSize), 8)
	le(rec[48:], uint64(e.DirOffset), 8)
	loc := make([]byte, locator64Len)
	le(loc[0:], sigLocator64, 4)
	le(loc[8:], uint64(len(head)), 8)
	le(loc[16:], 1, 4)
	end := make([]byte, endLen)
	le(end[0:], sigEnd, 4)
	le(end[8:], 0xffff, 2)
	le(end[10:], 0xffff, 2)
	le(end[12:], 0xffffffff, 4)
	le(end[16:], 0xffffffff, 4)
	z := append(append(append(bytes.Clone(head), rec...), loc...), end...)
	got, err := Find(bytes.NewReader(z), int64(len(z)), true)
	if err != nil || got != e {
		t.Fatalf("got %+v, %v; want %+v", got, err, e)
	}
	if _, err := zip.NewReader(bytes.NewReader(z), int64(len(z))); err != nil {
		t.Fatalf("archive/zip disagrees: %v", err)
	}
	// Without the locator it is incomplete.
	noLoc := append(append(bytes.Clone(head), rec...), end...)
	if _, err := Find(bytes.NewReader(noLoc), int64(len(noLoc)), true); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("no locator: %v", err)
	}
}
