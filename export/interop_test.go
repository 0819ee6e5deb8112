package export

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// needTool skips the test when an Info-ZIP tool is missing, so that the
// suite still runs everywhere; CI installs them.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (apt-get install zip unzip); skipping Info-ZIP interop test", name)
	}
	return p
}

// readTree maps every regular file under dir to its contents.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, rel := range listTree(t, dir) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out[rel] = string(b)
		}
	}
	return out
}

func sameTree(t *testing.T, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d files, want %d", len(got), len(want))
	}
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s missing", name)
		case g != w:
			t.Errorf("%s: %d bytes differ from the %d expected", name, len(g), len(w))
		}
	}
}

// Archives made by Info-ZIP zip 3.0 with -P, checked in so the reader is
// tested against a real implementation even where zip is not installed.
func TestReadInfoZipTestdata(t *testing.T) {
	const secret = "s3cret-api-key"
	want := readTree(t, filepath.Join("testdata", "infozip", "src"))
	for _, name := range []string{"deflate.zip", "store.zip"} {
		t.Run(name, func(t *testing.T) {
			a, err := OpenFile(filepath.Join("testdata", "infozip", name), secret)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			encrypted := 0
			for _, fi := range a.Files() {
				if fi.Encrypted {
					encrypted++
					if f := a.byName[fi.Name]; f.Flags&flagDataDescriptor == 0 {
						t.Errorf("%s: zip -P is expected to set flag bit 3", fi.Name)
					}
				}
			}
			if encrypted != 3 {
				t.Fatalf("%d encrypted entries, want 3", encrypted)
			}
			dir := t.TempDir()
			if err := a.ExtractTo(dir); err != nil {
				t.Fatal(err)
			}
			sameTree(t, readTree(t, dir), want)

			_, err = OpenFile(filepath.Join("testdata", "infozip", name), "s3cret-api-kez")
			wantErr(t, err, ErrWrongSecret)
		})
	}
}

// interopTree writes files that cover the interesting cases to a new
// directory and returns it with the expected contents.
func interopTree(t *testing.T) (string, map[string]string) {
	t.Helper()
	want := map[string]string{
		"events.json":                string(testData(1<<20, 30)),
		"empty.json":                 "",
		"profiles/people.json":       `[{"$distinct_id":"user-1","$email":"a@example.com"}]` + "\n",
		"profiles/deep/random.bin":   string(randomBytes(100_000, 31)),
		"profiles/deep/tiny.txt":     "x",
		"profiles/deep/newline.json": "\n",
	}
	dir := t.TempDir()
	for name, data := range want {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, want
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	seeded(seed).Read(b)
	return b
}

func TestInfoZipWritesWeRead(t *testing.T) {
	zipTool := needTool(t, "zip")
	src, want := interopTree(t)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"deflated", []string{"-q", "-r", "-P", testSecret, "OUT", "."}},
		{"stored", []string{"-q", "-r", "-0", "-P", testSecret, "OUT", "."}},
		{"streamed to stdout", []string{"-q", "-r", "-P", testSecret, "-", "."}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "export.zip")
			args := append([]string(nil), c.args...)
			for i, a := range args {
				if a == "OUT" {
					args[i] = out
				}
			}
			cmd := exec.Command(zipTool, args...)
			cmd.Dir = src
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.Output()
			if err != nil {
				t.Fatalf("zip: %v\n%s", err, stderr.Bytes())
			}
			if len(stdout) > 0 { // "-": the archive came on stdout
				if err := os.WriteFile(out, stdout, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			a, err := OpenFile(out, testSecret)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			methods := map[uint16]int{}
			for _, fi := range a.Files() {
				if !fi.IsDir() {
					methods[fi.Method]++
					if !fi.Encrypted {
						t.Errorf("%s not encrypted", fi.Name)
					}
				}
			}
			t.Logf("methods: %v", methods)
			if c.name == "stored" && methods[zip.Deflate] != 0 {
				t.Fatal("zip -0 produced deflated entries")
			}
			if c.name != "stored" && methods[zip.Deflate] == 0 {
				t.Fatal("no deflated entries")
			}
			got := map[string]string{}
			err = a.Walk(func(fi FileInfo, r io.Reader) error {
				b, err := io.ReadAll(r)
				if !fi.IsDir() {
					got[fi.Name] = string(b)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			sameTree(t, got, want)
		})
	}
}

func TestWeWriteInfoZipReads(t *testing.T) {
	unzipTool := needTool(t, "unzip")
	_, want := interopTree(t)
	var buf bytes.Buffer
	w := NewWriter(&buf, testSecret)
	if _, err := w.Create("profiles/"); err != nil {
		t.Fatal(err)
	}
	i := 0
	for name, data := range want {
		method := uint16(zip.Deflate)
		if i%2 == 1 {
			method = zip.Store
		}
		i++
		fw, err := w.CreateHeader(&zip.FileHeader{Name: name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(fw, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "ours.zip")
	if err := os.WriteFile(archive, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	if b, err := exec.Command(unzipTool, "-t", "-P", testSecret, archive).CombinedOutput(); err != nil {
		t.Fatalf("unzip -t: %v\n%s", err, b)
	}
	dir := t.TempDir()
	if b, err := exec.Command(unzipTool, "-q", "-P", testSecret, "-d", dir, archive).CombinedOutput(); err != nil {
		t.Fatalf("unzip: %v\n%s", err, b)
	}
	sameTree(t, readTree(t, dir), want)

	// The wrong password gets nothing out: the entries really are encrypted.
	// ZipCrypto lets 1 wrong password in 256 past an entry's check byte;
	// unzip then writes what it decrypted (garbage) before the CRC check
	// fails, so a file may appear, but never with the real content. Garbage
	// can equal a short entry by chance (a 1-byte stored one: 1 in 256 once
	// past the check byte), so the content check is for entries of 4 bytes
	// or more (odds at most 2^-32); unzip's exit status covers the rest.
	dir = t.TempDir()
	if b, err := exec.Command(unzipTool, "-q", "-P", "wrong-secret", "-d", dir, archive).CombinedOutput(); err == nil {
		t.Fatalf("unzip with the wrong password succeeded:\n%s", b)
	}
	for name, data := range readTree(t, dir) {
		if orig := want[name]; len(orig) >= 4 && data == orig {
			t.Fatalf("unzip extracted %s with the wrong password", name)
		}
		if data != "" {
			t.Logf("%s: the wrong password passed its check byte; unzip wrote %d bytes of garbage", name, len(data))
		}
	}
}
