package export

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// cdEntry is one central directory record for assemble.
type cdEntry struct {
	name         string
	offset       uint32 // of its local header
	method       uint16
	crc          uint32
	csize, usize uint32
}

// localRecord is a local file header followed by its data.
func localRecord(name string, method uint16, crc uint32, data []byte, usize uint32) []byte {
	h := make([]byte, localLen, localLen+len(name)+len(data))
	le := binary.LittleEndian
	le.PutUint32(h[0:], sigLocal)
	le.PutUint16(h[4:], 20)
	le.PutUint16(h[8:], method)
	le.PutUint32(h[14:], crc)
	le.PutUint32(h[18:], uint32(len(data)))
	le.PutUint32(h[22:], usize)
	le.PutUint16(h[26:], uint16(len(name)))
	return append(append(h, name...), data...)
}

// assemble appends a central directory holding ents, and its end record,
// to body: a zip archive laid out exactly as the test wants, overlaps
// included.
func assemble(body []byte, ents ...cdEntry) []byte {
	le := binary.LittleEndian
	out := bytes.Clone(body)
	dir := len(out)
	for _, e := range ents {
		r := make([]byte, centralLen)
		le.PutUint32(r[0:], sigCentral)
		le.PutUint16(r[4:], 20)
		le.PutUint16(r[6:], 20)
		le.PutUint16(r[10:], e.method)
		le.PutUint32(r[16:], e.crc)
		le.PutUint32(r[20:], e.csize)
		le.PutUint32(r[24:], e.usize)
		le.PutUint16(r[28:], uint16(len(e.name)))
		le.PutUint32(r[42:], e.offset)
		out = append(append(out, r...), e.name...)
	}
	end := make([]byte, 22)
	le.PutUint32(end[0:], 0x06054b50)
	le.PutUint16(end[8:], uint16(len(ents)))
	le.PutUint16(end[10:], uint16(len(ents)))
	le.PutUint32(end[12:], uint32(len(out)-dir))
	le.PutUint32(end[16:], uint32(dir))
	return append(out, end...)
}

// sharedStreamBomb is the archive: one deflated stream of mib MiB
// of zeros under a local header named "k", and n directory entries that all
// point at it under other names.
func sharedStreamBomb(t testing.TB, n, mib int) []byte {
	comp, crc := zeroBomb(t, mib)
	usize := uint32(mib << 20)
	body := localRecord("k", zip.Deflate, crc, comp, usize)
	ents := make([]cdEntry, n)
	for i := range ents {
		ents[i] = cdEntry{name: fmt.Sprintf("%03d", i), method: zip.Deflate, crc: crc, csize: uint32(len(comp)), usize: usize}
	}
	return assemble(body, ents...)
}

func TestSharedStreamRefused(t *testing.T) {
	b := sharedStreamBomb(t, 100, 1)
	// archive/zip alone takes it, and every entry reads.
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil || len(zr.File) != 100 {
		t.Fatalf("archive/zip: %v", err)
	}
	_, err = Open(bytes.NewReader(b), int64(len(b)), "", WithMaxRatio(2000))
	wantErr(t, err, ErrInvalidArchive)
}

func TestOverlappingDataRefused(t *testing.T) {
	// "a" is stored and its data is the whole of "b", local header
	// included: both names match their headers, but a's data covers b.
	inner := localRecord("b", zip.Store, crc32.ChecksumIEEE([]byte("hello")), []byte("hello"), 5)
	outer := localRecord("a", zip.Store, crc32.ChecksumIEEE(inner), inner, uint32(len(inner)))
	bOff := uint32(localLen + 1)
	b := assemble(outer,
		cdEntry{name: "a", method: zip.Store, crc: crc32.ChecksumIEEE(inner), csize: uint32(len(inner)), usize: uint32(len(inner))},
		cdEntry{name: "b", offset: bOff, method: zip.Store, crc: crc32.ChecksumIEEE([]byte("hello")), csize: 5, usize: 5})
	_, err := Open(bytes.NewReader(b), int64(len(b)), "")
	wantErr(t, err, ErrOverlappingEntries, ErrInvalidArchive)
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Name != "b" {
		t.Fatalf("err = %v, want it to name b", err)
	}
	// Out of directory order, the same.
	b = assemble(outer,
		cdEntry{name: "b", offset: bOff, method: zip.Store, crc: crc32.ChecksumIEEE([]byte("hello")), csize: 5, usize: 5},
		cdEntry{name: "a", method: zip.Store, crc: crc32.ChecksumIEEE(inner), csize: uint32(len(inner)), usize: uint32(len(inner))})
	_, err = Open(bytes.NewReader(b), int64(len(b)), "")
	wantErr(t, err, ErrOverlappingEntries)

	// Data that runs into the central directory.
	one := localRecord("c", zip.Store, crc32.ChecksumIEEE([]byte("hello")), []byte("hello"), 5)
	b = assemble(one, cdEntry{name: "c", method: zip.Store, crc: crc32.ChecksumIEEE([]byte("hello")), csize: 50, usize: 5})
	_, err = Open(bytes.NewReader(b), int64(len(b)), "")
	wantErr(t, err, ErrOverlappingEntries)

	// The well-formed version of the same archive opens and reads.
	b = assemble(one, cdEntry{name: "c", method: zip.Store, crc: crc32.ChecksumIEEE([]byte("hello")), csize: 5, usize: 5})
	if got, err := readEntry(openBytes(t, b, ""), "c"); err != nil || string(got) != "hello" {
		t.Fatalf("%q, %v", got, err)
	}
}

// With the layout check out of the way (a test-only knob), the ratio limit
// applied to the whole archive still stops a shared stream long before the
// total limit: each entry passes the per-entry ratio, the archive does not.
func TestArchiveRatioLimit(t *testing.T) {
	b := sharedStreamBomb(t, 100, 1)
	skip := func(c *config) { c.skipLayout = true }
	a := openBytes(t, b, "", WithMaxRatio(2000), skip)
	// Declared sizes: refused up front.
	err := a.Walk(func(FileInfo, io.Reader) error { t.Fatal("walked into a bomb"); return nil })
	wantErr(t, err, ErrRatioTooHigh, ErrLimit)
	wantErr(t, a.ExtractTo(t.TempDir()), ErrRatioTooHigh)
	// Produced bytes: entry by entry, stopped at 2000 times the archive.
	var total int64
	for _, fi := range a.Files() {
		rc, err := a.Open(fi.Name)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rc)
		total += n
		if err != nil {
			wantErr(t, err, ErrRatioTooHigh)
			if limit := 2000 * int64(len(b)); total > limit {
				t.Fatalf("produced %d bytes, limit %d", total, limit)
			}
			return
		}
	}
	t.Fatalf("read all %d bytes of a %d-byte archive", total, len(b))
}

// Entry names come from the archive: one that spells out the secret, in
// any of the forms a message could show it, never puts it in an error.
func TestEntryErrorsRedactSecret(t *testing.T) {
	const secret = "pa ss/wörd\x7f\"%"
	forms := []string{secret, strconv.Quote(secret)[1 : len(strconv.Quote(secret))-1], url.PathEscape(secret), url.QueryEscape(secret)}
	bad := uint32(1)
	for i, form := range forms {
		name := "events/" + form + ".json"
		b := buildRaw(t, secret, rawEntry{name: name, data: []byte("data"), method: zip.Deflate, encrypt: true, crc: &bad})
		a := openBytes(t, b, secret)
		_, err := readEntry(a, name)
		checkRedacted(t, err, forms, ErrCorrupt)
		var ee *EntryError
		if !errors.As(err, &ee) || ee.Name != "events/REDACTED.json" {
			t.Fatalf("form %d: Name %q", i, ee.Name)
		}
		checkRedacted(t, a.ExtractTo(t.TempDir()), forms, nil) // corrupt, or a backslash in the name
	}
	// A collision names the other entry too.
	b := buildRaw(t, secret,
		rawEntry{name: "A" + secret, data: []byte("x"), method: zip.Store, encrypt: true},
		rawEntry{name: "a" + secret, data: []byte("y"), method: zip.Store, encrypt: true})
	checkRedacted(t, openBytes(t, b, secret).ExtractTo(t.TempDir()), forms, ErrDuplicateEntry)
	// And a wrong secret found by Open.
	b = buildRaw(t, secret, rawEntry{name: secret, data: []byte("x"), method: zip.Store, encrypt: true})
	_, err := Open(bytes.NewReader(b), int64(len(b)), secret+"x")
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("err = %v", err)
	}
}

func checkRedacted(t *testing.T, err error, forms []string, target error) {
	t.Helper()
	if err == nil || target != nil && !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
	for _, f := range forms {
		if strings.Contains(err.Error(), f) {
			t.Fatalf("error %q shows the secret as %q", err, f)
		}
	}
	if !strings.Contains(err.Error(), "REDACTED") {
		t.Fatalf("error %q: the name is gone altogether", err)
	}
}

// Reading an entry again (Walk, then ExtractTo, as the CLI does) does not
// count against the archive-wide ratio: each entry's data counts once.
func TestArchiveRatioCountsEachEntryOnce(t *testing.T) {
	b := bombArchive(t, "", 1, 0) // one entry, about 1000:1
	a := openBytes(t, b, "", WithMaxRatio(2000))
	for i := range 3 {
		if err := a.Walk(func(FileInfo, io.Reader) error { return nil }); err != nil {
			t.Fatalf("pass %d: %v", i, err)
		}
	}
	if err := a.ExtractTo(t.TempDir()); err != nil {
		t.Fatal(err)
	}
}
