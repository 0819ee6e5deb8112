package export

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// testTime is a fixed modification time with an odd high DOS-time byte.
var testTime = time.Date(2024, 5, 17, 13, 37, 42, 0, time.UTC)

// seeded returns a deterministic random source for WithRandom and test data.
func seeded(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return rand.NewChaCha8(s)
}

// file is one entry for buildArchive.
type file struct {
	name   string
	data   []byte
	method uint16
}

// buildArchive writes files with our Writer.
func buildArchive(t testing.TB, secret string, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, secret, WithRandom(seeded(1)))
	for _, f := range files {
		fw, err := w.CreateHeader(&zip.FileHeader{Name: f.name, Method: f.method, Modified: testTime})
		if err != nil {
			t.Fatalf("CreateHeader(%q): %v", f.name, err)
		}
		if len(f.data) == 0 {
			continue // directories accept no data
		}
		if _, err := fw.Write(f.data); err != nil {
			t.Fatalf("Write(%q): %v", f.name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes()
}

// rawEntry describes an entry for buildRaw, which lets a test set every
// header field, including wrong ones.
type rawEntry struct {
	name       string
	data       []byte      // plaintext; ignored when comp is set
	method     uint16      // zip.Store or zip.Deflate (or anything, with comp)
	mode       fs.FileMode // 0: leave ExternalAttrs unset
	encrypt    bool
	descriptor bool  // set flag bit 3 (check byte from DOS time)
	check      *byte // override the check byte
	flags      uint16

	comp []byte  // precompressed data to store as is
	crc  *uint32 // override the CRC
	size *uint64 // override the declared uncompressed size
	pad  int     // junk bytes appended after the compressed data
}

func deflate(t testing.TB, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	fw, err := flate.NewWriter(&b, flate.DefaultCompression)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(p)
	fw.Close()
	return b.Bytes()
}

// buildRaw builds an archive entry by entry with archive/zip's CreateRaw,
// encrypting with the package's cipher where asked.
func buildRaw(t testing.TB, secret string, entries ...rawEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	rng := seeded(2)
	for _, e := range entries {
		comp := e.comp
		if comp == nil {
			if e.method == zip.Deflate {
				comp = deflate(t, e.data)
			} else {
				comp = e.data
			}
		}
		comp = append(comp[:len(comp):len(comp)], make([]byte, e.pad)...)
		fh := &zip.FileHeader{Name: e.name, Method: e.method, Flags: e.flags}
		setModified(fh, testTime)
		fh.CRC32 = crc32.ChecksumIEEE(e.data)
		if e.crc != nil {
			fh.CRC32 = *e.crc
		}
		size := uint64(len(e.data))
		if e.size != nil {
			size = *e.size
		}
		if e.mode != 0 {
			fh.SetMode(e.mode)
		}
		if e.descriptor {
			fh.Flags |= flagDataDescriptor
		}
		if e.encrypt {
			fh.Flags |= flagEncrypted
			var hdr [encHeaderLen]byte
			rng.Read(hdr[:encHeaderLen-1])
			hdr[encHeaderLen-1] = checkByte(fh)
			if e.check != nil {
				hdr[encHeaderLen-1] = *e.check
			}
			plain := append(hdr[:], comp...)
			enc := make([]byte, len(plain))
			newZipCrypto([]byte(secret)).encrypt(enc, plain)
			comp = enc
		}
		setSizes(fh, fh.CRC32, uint64(len(comp)), size)
		w, err := zw.CreateRaw(fh)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(comp); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func openBytes(t testing.TB, b []byte, secret string, opts ...Option) *Archive {
	t.Helper()
	a, err := Open(bytes.NewReader(b), int64(len(b)), secret, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return a
}

// readEntry reads one entry fully, returning the data only on success.
func readEntry(a *Archive, name string) ([]byte, error) {
	rc, err := a.Open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// wantErr fails unless err matches every target and leaks no secret.
func wantErr(t testing.TB, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", targets)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Fatalf("error %q does not match %q", err, target)
		}
	}
	if strings.Contains(err.Error(), testSecret) {
		t.Fatalf("error %q contains the secret", err)
	}
}

// testData returns n bytes of JSON-ish lines that compress like real
// exports, mixed with random bytes so deflate has work to do.
func testData(n int, seed uint64) []byte {
	r := rand.New(seeded(seed))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(`{"event":"Signed Up","properties":{"distinct_id":"`)
		for range 16 {
			b.WriteByte("0123456789abcdef"[r.IntN(16)])
		}
		b.WriteString("\"}}\n")
	}
	return b.Bytes()[:n]
}

// errorsAs is errors.As, kept short for table tests.
func errorsAs(err error, target any) bool { return errors.As(err, target) }
