package export

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

func TestWriterRandomHeader(t *testing.T) {
	build := func(opts ...WriterOption) []byte {
		var buf bytes.Buffer
		w := NewWriter(&buf, testSecret, opts...)
		fw, _ := w.CreateHeader(&zip.FileHeader{Name: "f", Method: zip.Store, Modified: testTime})
		fw.Write([]byte("same plaintext"))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	if !bytes.Equal(build(WithRandom(seeded(5))), build(WithRandom(seeded(5)))) {
		t.Fatal("same random source, different archives")
	}
	// Fresh random headers make the same plaintext encrypt differently.
	if bytes.Equal(build(), build()) {
		t.Fatal("crypto/rand headers produced identical archives")
	}
	var buf bytes.Buffer
	w := NewWriter(&buf, testSecret, WithRandom(bytes.NewReader([]byte("short"))))
	if _, err := w.Create("f"); err == nil {
		t.Fatal("Create succeeded without 11 random bytes")
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close succeeded after a failed Create")
	}
}

func TestWriterMisuse(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, testSecret)
	_, err := w.CreateHeader(&zip.FileHeader{Name: "f", Method: 12})
	wantErr(t, err, ErrUnsupportedMethod)

	fh := &zip.FileHeader{Name: "a", Method: zip.Deflate}
	first, err := w.CreateHeader(fh)
	if err != nil {
		t.Fatal(err)
	}
	if fh.Flags != 0 || fh.CRC32 != 0 || !fh.Modified.IsZero() {
		t.Fatalf("caller's header modified: %+v", fh)
	}
	first.Write([]byte("a"))
	if _, err := w.Create("b"); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Write([]byte("late")); !errors.Is(err, errEntryDone) {
		t.Fatalf("write to a finished entry: %v", err)
	}
	dir, err := w.Create("d/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dir.Write([]byte("x")); err == nil {
		t.Fatal("wrote data into a directory entry")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	a := openBytes(t, buf.Bytes(), testSecret)
	if got, err := readEntry(a, "a"); err != nil || string(got) != "a" {
		t.Fatalf("a = %q, %v", got, err)
	}
	if fi := a.Files()[0]; time.Since(fi.Modified) > time.Hour {
		t.Fatalf("zero Modified should default to now, got %v", fi.Modified)
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n < len(p) {
		return 0, io.ErrClosedPipe
	}
	f.n -= len(p)
	return len(p), nil
}

// zip.Writer buffers, so the write must be large enough to reach failWriter.
func TestWriterStickyError(t *testing.T) {
	w := NewWriter(&failWriter{n: 100}, testSecret)
	fw, err := w.CreateHeader(&zip.FileHeader{Name: "f", Method: zip.Store})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(make([]byte, 100_000)); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Write: %v", err)
	}
	if _, err := w.Create("g"); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Create after failure: %v", err)
	}
	if err := w.Close(); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Close after failure: %v", err)
	}
}
