package export

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	many := make([]file, 300)
	for i := range many {
		many[i] = file{fmt.Sprintf("events/part-%04d.json", i), testData(i*7, uint64(i)), zip.Deflate}
	}
	cases := []struct {
		name   string
		secret string
		files  []file
	}{
		{"deflated", testSecret, []file{{"events.json", testData(10_000, 1), zip.Deflate}}},
		{"stored", testSecret, []file{{"events.json", testData(10_000, 2), zip.Store}}},
		{"empty files", testSecret, []file{{"empty-deflate", nil, zip.Deflate}, {"empty-store", nil, zip.Store}}},
		{"large", testSecret, []file{{"big.json", testData(3<<20, 3), zip.Deflate}, {"big.bin", randomBytes(2<<20, 4), zip.Store}}},
		{"directories", testSecret, []file{{"a/", nil, zip.Store}, {"a/b/c.txt", []byte("c"), zip.Deflate}}},
		{"many entries", testSecret, many},
		{"unencrypted", "", []file{{"plain.json", testData(5000, 5), zip.Deflate}, {"plain.txt", []byte("x"), zip.Store}}},
		{"unicode name", testSecret, []file{{"données/é.json", []byte("{}"), zip.Deflate}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := buildArchive(t, c.secret, c.files...)
			a := openBytes(t, b, c.secret)
			infos := a.Files()
			if len(infos) != len(c.files) {
				t.Fatalf("Files() has %d entries, want %d", len(infos), len(c.files))
			}
			for i, f := range c.files {
				fi := infos[i]
				isDir := strings.HasSuffix(f.name, "/")
				if fi.Name != f.name || fi.UncompressedSize != uint64(len(f.data)) ||
					fi.Encrypted != (c.secret != "" && !isDir) || fi.IsDir() != isDir ||
					!fi.Modified.Equal(testTime) {
					t.Errorf("Files()[%d] = %+v", i, fi)
				}
				if !isDir && fi.Method != f.method {
					t.Errorf("%s: method %d, want %d", f.name, fi.Method, f.method)
				}
				got, err := readEntry(a, f.name)
				if err != nil {
					t.Fatalf("%s: %v", f.name, err)
				}
				if !bytes.Equal(got, f.data) {
					t.Fatalf("%s: contents differ (%d bytes, want %d)", f.name, len(got), len(f.data))
				}
			}
			i := 0
			err := a.Walk(func(fi FileInfo, r io.Reader) error {
				got, err := io.ReadAll(r)
				if err != nil {
					return err
				}
				if fi.Name != c.files[i].name || !bytes.Equal(got, c.files[i].data) {
					return fmt.Errorf("walk entry %d: got %q (%d bytes)", i, fi.Name, len(got))
				}
				i++
				return nil
			})
			if err != nil || i != len(c.files) {
				t.Fatalf("Walk visited %d entries: %v", i, err)
			}
		})
	}
}

func TestEncryptedForReal(t *testing.T) {
	secretData := []byte("distinct_id=user-8f2c1b secret payload secret payload")
	b := buildArchive(t, testSecret, file{"s.txt", secretData, zip.Store})
	if bytes.Contains(b, secretData[:20]) {
		t.Fatal("stored entry's plaintext appears in the archive")
	}
	// archive/zip agrees the entry is encrypted and refuses to read it.
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if zr.File[0].Flags&flagEncrypted == 0 || zr.File[0].Flags&flagDataDescriptor == 0 {
		t.Fatalf("flags = %#x, want encryption and data descriptor", zr.File[0].Flags)
	}
	if rc, err := zr.File[0].Open(); err == nil {
		got, _ := io.ReadAll(rc)
		if bytes.Equal(got, secretData) {
			t.Fatal("archive/zip read the plaintext without a password")
		}
	}
}

func TestOpenFile(t *testing.T) {
	want := testData(1000, 7)
	path := filepath.Join(t.TempDir(), "export.zip")
	if err := os.WriteFile(path, buildArchive(t, testSecret, file{"x.json", want, zip.Deflate}), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := OpenFile(path, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readEntry(a, "x.json")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("readEntry: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFile(filepath.Join(t.TempDir(), "missing.zip"), testSecret); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	notZip := filepath.Join(t.TempDir(), "not.zip")
	os.WriteFile(notZip, []byte("<html>expired link</html>"), 0o600)
	_, err = OpenFile(notZip, testSecret)
	wantErr(t, err, ErrInvalidArchive)
}

// Both ways of choosing the check byte: from the CRC (no data descriptor,
// as PKZIP writes when it knows the CRC first) and from the DOS time (flag
// bit 3, as Info-ZIP and our Writer do).
func TestCheckByteVariants(t *testing.T) {
	data := testData(3000, 8)
	for _, descriptor := range []bool{false, true} {
		for _, method := range []uint16{zip.Store, zip.Deflate} {
			t.Run(fmt.Sprintf("descriptor=%v/method=%d", descriptor, method), func(t *testing.T) {
				b := buildRaw(t, testSecret, rawEntry{name: "f", data: data, method: method, encrypt: true, descriptor: descriptor})
				a := openBytes(t, b, testSecret)
				got, err := readEntry(a, "f")
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("read: %v", err)
				}
				// The reader must use the matching variant: a header whose
				// check byte came from the other source is a wrong secret.
				fh := zip.FileHeader{CRC32: crc32.ChecksumIEEE(data)}
				setModified(&fh, testTime)
				fromCRC := checkByte(&fh)
				fh.Flags = flagDataDescriptor
				fromTime := checkByte(&fh)
				if fromCRC == fromTime {
					t.Fatal("test data's CRC and time give the same check byte; change one")
				}
				other := fromTime
				if descriptor {
					other = fromCRC
				}
				b = buildRaw(t, testSecret, rawEntry{name: "f", data: data, method: method, encrypt: true, descriptor: descriptor, check: &other})
				_, err = Open(bytes.NewReader(b), int64(len(b)), testSecret)
				wantErr(t, err, ErrWrongSecret)
			})
		}
	}
}

func TestWrongSecret(t *testing.T) {
	data := testData(2000, 9)
	archives := map[string][]byte{
		"deflate": buildArchive(t, testSecret, file{"f", data, zip.Deflate}),
		"store":   buildArchive(t, testSecret, file{"f", data, zip.Store}),
	}
	rng := seeded(10)
	for name, b := range archives {
		t.Run(name, func(t *testing.T) {
			pastCheck := 0
			for i := range 2000 {
				var raw [16]byte
				rng.Read(raw[:])
				secret := fmt.Sprintf("%x", raw)
				a, err := Open(bytes.NewReader(b), int64(len(b)), secret)
				if err == nil {
					// The check byte matched by chance: the data must
					// still fail, in Open, Walk and ExtractTo alike.
					pastCheck++
					var got []byte
					got, err = readEntry(a, "f")
					if got != nil || !errors.Is(err, ErrCorrupt) {
						t.Fatalf("secret #%d: got %d bytes, err %v", i, len(got), err)
					}
					if err := a.Walk(func(FileInfo, io.Reader) error { return nil }); !errors.Is(err, ErrWrongSecret) {
						t.Fatalf("Walk with secret #%d: %v", i, err)
					}
				}
				if !errors.Is(err, ErrWrongSecret) {
					t.Fatalf("secret #%d: err %v", i, err)
				}
				if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), testSecret) {
					t.Fatalf("error %q leaks a secret", err)
				}
			}
			// About 2000/256 wrong secrets pass the check byte; the stream
			// must have caught every one of them.
			if pastCheck == 0 {
				t.Fatal("no wrong secret got past the check byte; the later check went untested")
			}
			t.Logf("%d of 2000 wrong secrets passed the check byte and were caught later", pastCheck)
		})
	}
}

// Open and OpenFile try the secret on the first encrypted entry, so that a
// wrong one fails at once, as README promises.
func TestOpenChecksSecretUpFront(t *testing.T) {
	data := testData(5000, 12)
	b := buildRaw(t, testSecret,
		rawEntry{name: "dir/", mode: fs.ModeDir | 0o755},
		rawEntry{name: "plain.txt", data: []byte("not secret"), method: zip.Store},
		rawEntry{name: "dir/data.json", data: data, method: zip.Deflate, encrypt: true},
		rawEntry{name: "dir/more.json", data: data, method: zip.Store, encrypt: true})
	path := filepath.Join(t.TempDir(), "export.zip")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	const wrong = "0123456789abcdef0123456789abcdeg"
	_, err := Open(bytes.NewReader(b), int64(len(b)), wrong)
	wantErr(t, err, ErrWrongSecret)
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Name != "dir/data.json" {
		t.Fatalf("err = %v, want an *EntryError naming the first encrypted entry", err)
	}
	_, err = OpenFile(path, wrong)
	wantErr(t, err, ErrWrongSecret)
	a, err := OpenFile(path, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got, err := readEntry(a, "dir/more.json"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read: %v", err)
	}
	// Only the first encrypted entry is tried up front (12 bytes); a later
	// one with another check byte fails when it is read.
	bad := byte(crc32.ChecksumIEEE(data)>>24) ^ 0xff // not the check byte
	b = buildRaw(t, testSecret,
		rawEntry{name: "a", data: data, method: zip.Deflate, encrypt: true},
		rawEntry{name: "b", data: data, method: zip.Deflate, encrypt: true, check: &bad})
	a = openBytes(t, b, testSecret)
	_, err = readEntry(a, "b")
	wantErr(t, err, ErrWrongSecret)
}

func TestSecretRequired(t *testing.T) {
	b := buildArchive(t, testSecret, file{"f", []byte("x"), zip.Deflate})
	_, err := Open(bytes.NewReader(b), int64(len(b)), "")
	wantErr(t, err, ErrSecretRequired)
	// An unencrypted archive needs no secret, and ignores one.
	plain := buildArchive(t, "", file{"f", []byte("x"), zip.Deflate})
	for _, s := range []string{"", testSecret} {
		if got, err := readEntry(openBytes(t, plain, s), "f"); err != nil || string(got) != "x" {
			t.Fatalf("secret %q: %q, %v", s, got, err)
		}
	}
}

func TestCorruptData(t *testing.T) {
	data := testData(20_000, 11)
	for _, secret := range []string{testSecret, ""} {
		for _, method := range []uint16{zip.Store, zip.Deflate} {
			t.Run(fmt.Sprintf("encrypted=%v/method=%d", secret != "", method), func(t *testing.T) {
				b := buildArchive(t, secret, file{"f", data, method})
				a := openBytes(t, b, secret)
				f := a.byName["f"]
				off, err := f.DataOffset()
				if err != nil {
					t.Fatal(err)
				}
				// Flip a byte past the encryption header, in the data.
				bad := bytes.Clone(b)
				bad[off+int64(f.CompressedSize64)/2] ^= 0x40
				got, err := readEntry(openBytes(t, bad, secret), "f")
				if got != nil {
					t.Fatal("corrupt entry returned data")
				}
				wantErr(t, err, ErrCorrupt)
				if secret != "" && !errors.Is(err, ErrWrongSecret) {
					t.Fatalf("encrypted corruption should also suggest a wrong secret: %v", err)
				}
				// Walk reports it even if the callback reads nothing.
				err = openBytes(t, bad, secret).Walk(func(FileInfo, io.Reader) error { return nil })
				wantErr(t, err, ErrCorrupt)
				// The error repeats on every later Read.
				rc, _ := openBytes(t, bad, secret).Open("f")
				_, err1 := io.ReadAll(rc)
				_, err2 := rc.Read(make([]byte, 10))
				if err1 == nil || err2 == nil || err1.Error() != err2.Error() {
					t.Fatalf("error not sticky: %v / %v", err1, err2)
				}
			})
		}
	}
}

func TestWrongCRC(t *testing.T) {
	data := []byte("some perfectly readable data")
	crc := uint32(0xdeadbeef)
	b := buildRaw(t, "", rawEntry{name: "f", data: data, method: zip.Deflate, crc: &crc})
	got, err := readEntry(openBytes(t, b, ""), "f")
	if got != nil {
		t.Fatal("data returned despite CRC mismatch")
	}
	wantErr(t, err, ErrCorrupt)
	if !strings.Contains(err.Error(), "CRC-32") {
		t.Fatalf("error %q does not mention the CRC", err)
	}
}

func TestLyingSizes(t *testing.T) {
	data := testData(1<<20, 12)
	small, big := uint64(10), uint64(2<<20)
	for _, c := range []struct {
		name string
		size *uint64
		want string
	}{
		{"declares less", &small, "more data than the header declares"},
		{"declares more", &big, "less data than the header declares"},
	} {
		for _, secret := range []string{"", testSecret} {
			t.Run(fmt.Sprintf("%s/encrypted=%v", c.name, secret != ""), func(t *testing.T) {
				b := buildRaw(t, secret, rawEntry{name: "f", data: data, method: zip.Deflate, size: c.size, encrypt: secret != ""})
				got, err := readEntry(openBytes(t, b, secret), "f")
				if got != nil {
					t.Fatal("data returned despite size mismatch")
				}
				wantErr(t, err, ErrCorrupt)
				if !strings.Contains(err.Error(), c.want) {
					t.Fatalf("error %q, want mention of %q", err, c.want)
				}
			})
		}
	}
}

func TestTruncatedArchive(t *testing.T) {
	b := buildArchive(t, testSecret, file{"f", testData(5000, 13), zip.Deflate})
	for _, n := range []int{0, 10, len(b) / 2, len(b) - 1} {
		_, err := Open(bytes.NewReader(b[:n]), int64(n), testSecret)
		wantErr(t, err, ErrInvalidArchive)
	}
	// A directory that is intact around cut data, as a resumed download
	// could produce: reads must fail, not return what is left.
	data := testData(50_000, 14)
	for _, secret := range []string{"", testSecret} {
		for _, method := range []uint16{zip.Store, zip.Deflate} {
			comp := data
			if method == zip.Deflate {
				comp = deflate(t, data)
			}
			b := buildRaw(t, secret, rawEntry{name: "f", data: data, method: method, comp: comp[:len(comp)/2], encrypt: secret != ""})
			got, err := readEntry(openBytes(t, b, secret), "f")
			if got != nil {
				t.Fatalf("secret=%v method=%d: truncated entry returned data", secret != "", method)
			}
			wantErr(t, err, ErrCorrupt)
		}
	}
}

func TestUnsupported(t *testing.T) {
	bzip2 := uint16(12)
	b := buildRaw(t, "", rawEntry{name: "bz", comp: []byte("BZh9..."), data: []byte("x"), method: bzip2},
		rawEntry{name: "aes", comp: []byte("0123456789abcdefghij"), data: []byte("x"), method: methodAES, flags: flagEncrypted},
		rawEntry{name: "strong", comp: []byte("0123456789abcdefghij"), data: []byte("x"), method: zip.Deflate, flags: flagEncrypted | flagStrongEncryption},
		rawEntry{name: "ok", data: []byte("fine"), method: zip.Store})
	a := openBytes(t, b, testSecret)
	if got := a.Files()[0].Method; got != bzip2 {
		t.Fatalf("listed method %d", got)
	}
	_, err := a.Open("bz")
	wantErr(t, err, ErrUnsupportedMethod)
	if !strings.Contains(err.Error(), "12") {
		t.Fatalf("error %q does not name the method", err)
	}
	for _, name := range []string{"aes", "strong"} {
		_, err = a.Open(name)
		wantErr(t, err, ErrUnsupportedEncryption)
	}
	if got, err := readEntry(a, "ok"); err != nil || string(got) != "fine" {
		t.Fatalf("ok entry: %q %v", got, err)
	}
	_, err = a.Open("missing")
	wantErr(t, err, fs.ErrNotExist)
	wantErr(t, a.ExtractTo(t.TempDir()), ErrUnsupportedMethod)
}

func TestDuplicateNames(t *testing.T) {
	for _, pair := range [][2]string{{"a.json", "a.json"}, {"a", "a/"}, {"d/a", "d/./a"}, {"d//a", "d/a"}} {
		b := buildRaw(t, "", rawEntry{name: pair[0], method: zip.Store}, rawEntry{name: pair[1], method: zip.Store})
		_, err := Open(bytes.NewReader(b), int64(len(b)), "")
		wantErr(t, err, ErrDuplicateEntry)
	}
}

func TestInvalidOptions(t *testing.T) {
	b := buildArchive(t, "", file{"f", nil, zip.Store})
	for _, o := range []Option{WithMaxTotalBytes(0), WithMaxEntryBytes(-1), WithMaxRatio(0), WithMaxEntries(0)} {
		if _, err := Open(bytes.NewReader(b), int64(len(b)), "", o); err == nil || !strings.Contains(err.Error(), "must be positive") {
			t.Fatalf("err = %v", err)
		}
	}
}
