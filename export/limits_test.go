package export

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"testing"
)

// zeroBomb returns a deflate stream of mib MiB of zeros and its CRC. It
// compresses two MiB and repeats the second, history-independent block
// (every back-reference lands on zeros), which is far faster than
// compressing the whole thing under the race detector.
func zeroBomb(t testing.TB, mib int) (comp []byte, crc uint32) {
	t.Helper()
	zeros := make([]byte, 1<<20)
	var b bytes.Buffer
	fw, err := flate.NewWriter(&b, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(zeros)
	fw.Flush()
	first := b.Len()
	fw.Write(zeros)
	fw.Flush()
	out := bytes.Clone(b.Bytes()[:first])
	block := bytes.Clone(b.Bytes()[first:])
	b.Reset()
	fw.Close() // only the final, empty block is left
	for range mib - 1 {
		out = append(out, block...)
	}
	out = append(out, b.Bytes()...)
	for range mib {
		crc = crc32.Update(crc, crcTable, zeros)
	}
	return out, crc
}

func bombArchive(t testing.TB, secret string, mib, pad int) []byte {
	comp, crc := zeroBomb(t, mib)
	size := uint64(mib) << 20
	return buildRaw(t, secret, rawEntry{name: "bomb.json", method: zip.Deflate, comp: comp, crc: &crc, size: &size, encrypt: secret != "", pad: pad})
}

func TestBombIsReal(t *testing.T) {
	b := bombArchive(t, testSecret, 50, 0)
	a := openBytes(t, b, testSecret, WithMaxRatio(5000))
	fi := a.Files()[0]
	if ratio := fi.UncompressedSize / fi.CompressedSize; ratio <= uint64(DefaultMaxRatio) {
		t.Fatalf("bomb ratio %d:1 does not exceed the default %d:1", ratio, DefaultMaxRatio)
	}
	rc, err := a.Open("bomb.json")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	if err != nil || n != 50<<20 {
		t.Fatalf("read %d bytes: %v", n, err)
	}
}

func TestBombLimits(t *testing.T) {
	b := bombArchive(t, testSecret, 50, 0)
	cases := []struct {
		name string
		opts []Option
		want error
	}{
		{"default ratio", nil, ErrRatioTooHigh},
		{"per entry", []Option{WithMaxRatio(5000), WithMaxEntryBytes(10 << 20)}, ErrEntryTooLarge},
		{"total", []Option{WithMaxRatio(5000), WithMaxTotalBytes(20 << 20)}, ErrArchiveTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := openBytes(t, b, testSecret, c.opts...)
			err := a.Walk(func(FileInfo, io.Reader) error { t.Fatal("walked into a bomb"); return nil })
			wantErr(t, err, c.want, ErrLimit)

			dir := t.TempDir()
			wantErr(t, a.ExtractTo(dir), c.want, ErrLimit)
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("ExtractTo wrote %d entries", len(ents))
			}
		})
	}
}

// A header can make the ratio look harmless by declaring junk after the
// compressed stream; the ratio is checked on what is actually consumed.
func TestRatioMeasuredWhileStreaming(t *testing.T) {
	for _, secret := range []string{"", testSecret} {
		b := bombArchive(t, secret, 4, 44<<10)
		a := openBytes(t, b, secret, WithMaxRatio(100))
		fi := a.Files()[0]
		if fi.UncompressedSize > 100*fi.CompressedSize {
			t.Fatalf("header ratio %d:1 already exceeds the limit", fi.UncompressedSize/fi.CompressedSize)
		}
		rc, err := a.Open("bomb.json")
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rc)
		wantErr(t, err, ErrRatioTooHigh)
		if n > 1<<20 {
			t.Fatalf("read %d bytes before stopping", n)
		}
		// With a generous ratio the padded entry is otherwise valid.
		if _, err := readEntry(openBytes(t, b, secret, WithMaxRatio(5000)), "bomb.json"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTotalLimitCountsActualBytes(t *testing.T) {
	files := make([]file, 5)
	for i := range files {
		files[i] = file{fmt.Sprintf("part-%d", i), testData(100_000, uint64(i)), zip.Deflate}
	}
	b := buildArchive(t, testSecret, files...)

	// Each entry is within limits; the fourth pushes the total over.
	a := openBytes(t, b, testSecret, WithMaxTotalBytes(300_100))
	for i := range 3 {
		if _, err := readEntry(a, files[i].name); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	_, err := readEntry(a, files[3].name)
	wantErr(t, err, ErrArchiveTooLarge)

	// Walk and ExtractTo refuse up front on the declared sizes...
	a = openBytes(t, b, testSecret, WithMaxTotalBytes(300_000))
	wantErr(t, a.Walk(func(FileInfo, io.Reader) error { return nil }), ErrArchiveTooLarge)
	// ...and the budget is the Archive's: a second walk has none left.
	a = openBytes(t, b, testSecret, WithMaxTotalBytes(600_000))
	if err := a.Walk(func(FileInfo, io.Reader) error { return nil }); err != nil {
		t.Fatal(err)
	}
	wantErr(t, a.Walk(func(FileInfo, io.Reader) error { return nil }), ErrArchiveTooLarge)
}

func TestTooManyEntries(t *testing.T) {
	files := make([]file, 11)
	for i := range files {
		files[i] = file{fmt.Sprintf("f%d", i), nil, zip.Store}
	}
	b := buildArchive(t, testSecret, files...)
	_, err := Open(bytes.NewReader(b), int64(len(b)), testSecret, WithMaxEntries(10))
	wantErr(t, err, ErrTooManyEntries, ErrLimit)
	if _, err := Open(bytes.NewReader(b), int64(len(b)), testSecret, WithMaxEntries(11)); err != nil {
		t.Fatal(err)
	}
}

func TestLimitErrorsAreDistinct(t *testing.T) {
	all := []error{ErrTooManyEntries, ErrEntryTooLarge, ErrArchiveTooLarge, ErrRatioTooHigh}
	for i, a := range all {
		for j, b := range all {
			if errors.Is(a, b) != (i == j) {
				t.Fatalf("errors.Is(%v, %v) = %v", a, b, !(i == j))
			}
		}
		if !errors.Is(a, ErrLimit) || errors.Is(ErrLimit, a) {
			t.Fatalf("%v and ErrLimit", a)
		}
	}
}
