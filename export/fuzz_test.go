package export

import (
	"archive/zip"
	"bytes"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

func FuzzOpen(f *testing.F) {
	f.Add(buildArchive(f, testSecret,
		file{"a/", nil, zip.Store},
		file{"a/events.json", testData(3000, 40), zip.Deflate},
		file{"stored.txt", []byte("stored contents"), zip.Store},
		file{"empty", nil, zip.Deflate}))
	f.Add(buildArchive(f, "", file{"plain.json", testData(500, 41), zip.Deflate}, file{"s", []byte("s"), zip.Store}))
	f.Add(buildRaw(f, testSecret,
		rawEntry{name: "crc-check", data: testData(200, 42), method: zip.Deflate, encrypt: true},
		rawEntry{name: "../evil", data: []byte("x"), method: zip.Store},
		rawEntry{name: "link", data: []byte("/etc"), method: zip.Store, mode: os.ModeSymlink | 0o777}))
	comp, crc := zeroBomb(f, 2)
	size := uint64(2 << 20)
	f.Add(buildRaw(f, testSecret, rawEntry{name: "bomb", method: zip.Deflate, comp: comp, crc: &crc, size: &size, encrypt: true}))
	f.Add([]byte("PK\x05\x06" + strings.Repeat("\x00", 18)))

	const maxEntry = 256 << 10
	// One directory per worker: t.TempDir on every input would cost more
	// than the rest of the target together.
	base := f.TempDir()
	var seq atomic.Int64
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := []Option{WithMaxTotalBytes(1 << 20), WithMaxEntryBytes(maxEntry), WithMaxEntries(64), WithMaxRatio(200)}
		a, err := Open(bytes.NewReader(data), int64(len(data)), testSecret, opts...)
		if err != nil {
			if strings.Contains(err.Error(), testSecret) {
				t.Fatalf("error leaks the secret: %v", err)
			}
			return
		}
		for _, fi := range a.Files() {
			rc, err := a.Open(fi.Name)
			if err != nil {
				continue
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if len(got) > maxEntry {
				t.Fatalf("%q: read %d bytes past the entry limit", fi.Name, len(got))
			}
			// Success means verified: the declared size and CRC match.
			if err == nil {
				if uint64(len(got)) != fi.UncompressedSize || crc32.ChecksumIEEE(got) != a.byName[fi.Name].CRC32 {
					t.Fatalf("%q: unverified data returned as success", fi.Name)
				}
			} else if strings.Contains(err.Error(), testSecret) {
				t.Fatalf("error leaks the secret: %v", err)
			}
		}
		a.Walk(func(fi FileInfo, r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		})

		// Extraction never writes outside its directory. ExtractTo creates
		// out only once every entry passed its checks.
		out := filepath.Join(base, strconv.FormatInt(seq.Add(1), 10))
		a.ExtractTo(out)
		defer os.RemoveAll(out)
		if ents, _ := os.ReadDir(base); len(ents) > 1 || len(ents) == 1 && ents[0].Name() != filepath.Base(out) {
			t.Fatalf("ExtractTo wrote outside its directory: %v", ents)
		}
	})
}
