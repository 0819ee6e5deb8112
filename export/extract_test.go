package export

import (
	"archive/zip"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// listTree returns every path under dir, relative and slash-separated.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

func TestExtractTo(t *testing.T) {
	data := testData(200_000, 20)
	b := buildArchive(t, testSecret,
		file{"./", nil, zip.Store},
		file{"export/", nil, zip.Store},
		file{"export/events.json", data, zip.Deflate},
		file{"export/profiles/people.json", []byte(`[{"$distinct_id":"u1"}]`), zip.Store},
		file{"empty.txt", nil, zip.Deflate},
	)
	dir := filepath.Join(t.TempDir(), "new", "out")
	// An existing file at an entry's path is replaced.
	os.MkdirAll(filepath.Join(dir, "export"), 0o700)
	os.WriteFile(filepath.Join(dir, "export", "events.json"), []byte("stale"), 0o644)

	if err := openBytes(t, b, testSecret).ExtractTo(dir); err != nil {
		t.Fatal(err)
	}
	want := []string{"empty.txt", "export", "export/events.json", "export/profiles", "export/profiles/people.json"}
	if got := listTree(t, dir); !slices.Equal(got, want) {
		t.Fatalf("tree = %q, want %q", got, want)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "export", "events.json"))
	if !bytes.Equal(got, data) {
		t.Fatal("events.json differs")
	}
	for _, p := range []string{"empty.txt", "export/events.json", "export/profiles", "export/profiles/people.json"} {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v; group and others must have no access", p, fi.Mode())
		}
		if !fi.IsDir() && !fi.ModTime().Equal(testTime) {
			t.Errorf("%s mtime %v, want %v", p, fi.ModTime(), testTime)
		}
	}
}

func TestExtractRefusesUnsafeNames(t *testing.T) {
	parent := t.TempDir()
	abs := filepath.ToSlash(filepath.Join(parent, "abs-evil"))
	for _, name := range []string{
		"../evil",
		"..",
		abs,
		"/etc/evil",
		"a/../../evil",
		"a/../b", // stays inside, but no reason to allow ".." at all
		"./../evil",
		`..\evil`,
		`a\b`,
		"C:evil",
		"c:/evil",
		"",
		"nul\x00byte",
	} {
		t.Run(strconv.Quote(name), func(t *testing.T) {
			b := buildRaw(t, "",
				rawEntry{name: "good.txt", data: []byte("good"), method: zip.Store},
				rawEntry{name: name, data: []byte("evil"), method: zip.Store})
			out := filepath.Join(parent, "out")
			err := openBytes(t, b, "").ExtractTo(out)
			wantErr(t, err, ErrUnsafePath)
			if !strings.Contains(err.Error(), strconv.Quote(name)) {
				t.Fatalf("error %q does not name the entry", err)
			}
			var ee *EntryError
			if !errorsAs(err, &ee) || ee.Name != name {
				t.Fatalf("error %v is not an *EntryError for %q", err, name)
			}
			// The whole extraction is refused: nothing at all was written.
			if got := listTree(t, parent); len(got) != 0 {
				t.Fatalf("files written: %q", got)
			}
			if _, err := os.Lstat(abs); err == nil {
				t.Fatal("absolute entry was written")
			}
		})
	}
}

func TestExtractRefusesSpecialEntries(t *testing.T) {
	for _, mode := range []fs.FileMode{fs.ModeSymlink | 0o777, fs.ModeNamedPipe | 0o600, fs.ModeDevice | fs.ModeCharDevice | 0o600} {
		t.Run(mode.String(), func(t *testing.T) {
			b := buildRaw(t, "",
				rawEntry{name: "good.txt", data: []byte("good"), method: zip.Store},
				rawEntry{name: "link", data: []byte("/etc/passwd"), method: zip.Store, mode: mode})
			a := openBytes(t, b, "")
			if a.Files()[1].Mode.Type() != mode.Type() {
				t.Fatalf("listed mode %v", a.Files()[1].Mode)
			}
			dir := filepath.Join(t.TempDir(), "out")
			wantErr(t, a.ExtractTo(dir), ErrUnsafePath)
			if got := listTree(t, dir); len(got) != 0 {
				t.Fatalf("files written: %q", got)
			}
		})
	}
}

func TestExtractRefusesExistingSymlinks(t *testing.T) {
	parent := t.TempDir()
	outside := filepath.Join(parent, "outside")
	os.Mkdir(outside, 0o700)
	victim := filepath.Join(parent, "victim.txt")
	os.WriteFile(victim, []byte("original"), 0o600)
	dir := filepath.Join(parent, "out")
	os.Mkdir(dir, 0o700)
	os.Mkdir(filepath.Join(dir, "real"), 0o700)
	if err := os.Symlink(outside, filepath.Join(dir, "dirlink")); err != nil {
		t.Skip("cannot create symlinks here:", err)
	}
	os.Symlink(victim, filepath.Join(dir, "filelink"))
	os.Symlink("real", filepath.Join(dir, "innerlink")) // points inside; still refused

	for _, name := range []string{"dirlink/pwned.txt", "dirlink/", "filelink", "innerlink/x.txt"} {
		t.Run(name, func(t *testing.T) {
			var data []byte
			if !strings.HasSuffix(name, "/") {
				data = []byte("pwned")
			}
			b := buildArchive(t, testSecret, file{name, data, zip.Deflate})
			err := openBytes(t, b, testSecret).ExtractTo(dir)
			wantErr(t, err, ErrUnsafePath)
			if !strings.Contains(err.Error(), "symbolic link") {
				t.Fatalf("error %q does not explain the symlink", err)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatal("wrote through a symlink")
			}
			if ents, _ := os.ReadDir(filepath.Join(dir, "real")); len(ents) != 0 {
				t.Fatal("wrote through an inner symlink")
			}
			if got, _ := os.ReadFile(victim); string(got) != "original" {
				t.Fatalf("victim now %q", got)
			}
		})
	}
}

func TestExtractCollisions(t *testing.T) {
	for _, names := range [][]string{
		{"Data.json", "data.json"},
		{"a", "a/b"},
		{"a/b", "a"},
		{"A/", "a"},
	} {
		var entries []rawEntry
		for _, n := range names {
			var data []byte
			if !strings.HasSuffix(n, "/") {
				data = []byte(n)
			}
			entries = append(entries, rawEntry{name: n, data: data, method: zip.Store})
		}
		b := buildRaw(t, "", entries...)
		dir := filepath.Join(t.TempDir(), "out")
		wantErr(t, openBytes(t, b, "").ExtractTo(dir), ErrDuplicateEntry)
		if got := listTree(t, dir); len(got) != 0 {
			t.Fatalf("%q: files written: %q", names, got)
		}
	}
}

// A failing entry must not leave a file that looks complete, nor clobber
// an existing one; entries before it stay extracted.
func TestExtractFailureLeavesNoPartialFile(t *testing.T) {
	bad := uint32(1)
	big := testData(300_000, 21)
	b := buildRaw(t, testSecret,
		rawEntry{name: "1.txt", data: []byte("first"), method: zip.Deflate, encrypt: true},
		rawEntry{name: "2.txt", data: big, method: zip.Deflate, encrypt: true, crc: &bad})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "2.txt"), []byte("old"), 0o600)
	err := openBytes(t, b, testSecret).ExtractTo(dir)
	wantErr(t, err, ErrCorrupt)
	if got := listTree(t, dir); !slices.Equal(got, []string{"1.txt", "2.txt"}) {
		t.Fatalf("tree = %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "2.txt")); string(got) != "old" {
		t.Fatalf("2.txt = %d bytes, want the old contents", len(got))
	}

	// Wrong secret: nothing is written at all.
	dir = filepath.Join(t.TempDir(), "out")
	b = buildArchive(t, testSecret, file{"a.json", big, zip.Deflate})
	_, err = Open(bytes.NewReader(b), int64(len(b)), "not-the-secret")
	wantErr(t, err, ErrWrongSecret)
	if got := listTree(t, dir); len(got) != 0 {
		t.Fatalf("files written: %q", got)
	}
}
