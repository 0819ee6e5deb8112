package main

import (
	"archive/zip"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

// A repository with a root module, a nested module without a LICENSE, a
// nested tools module and an ignored file: the proxy's zips must hold what
// the go command's own zips of a tag hold (modzip.CreateFromVCS, which
// accepts only a main work tree), so the hashes in go.sum are the tags'.
func TestProxyZipsAreTheGoCommands(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	repo := t.TempDir()
	files := map[string]string{
		"go.mod":            "module example.com/r\n\ngo 1.25\n",
		"LICENSE":           "the licence\n",
		"r.go":              "package r\n",
		".gitignore":        "/bin/\n",
		"bin/built":         "not in any zip\n",
		"sub/go.mod":        "module example.com/r/sub\n\ngo 1.25\n\nrequire example.com/r v1.2.3\n",
		"sub/sub.go":        "package sub\n",
		"sub/tools/go.mod":  "module example.com/r/sub/tools\n\ngo 1.25\n",
		"sub/tools/tool.go": "package tools\n",
	}
	for name, data := range files {
		p := filepath.Join(repo, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitIn(t, repo, "init", "-q")
	gitIn(t, repo, "add", ".")
	gitIn(t, repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")

	out := t.TempDir()
	if err := run(repo, "HEAD", "v1.2.3", out, []string{".", "sub"}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ path, subdir string }{{"example.com/r", ""}, {"example.com/r/sub", "sub"}} {
		v := module.Version{Path: m.path, Version: "v1.2.3"}
		base := filepath.Join(out, filepath.FromSlash(m.path), "@v", "v1.2.3")
		var want bytes.Buffer
		if err := modzip.CreateFromVCS(&want, v, repo, "HEAD", m.subdir); err != nil {
			t.Fatal(err)
		}
		wantFile := filepath.Join(t.TempDir(), "want.zip")
		if err := os.WriteFile(wantFile, want.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := dirhash.HashZip(base+".zip", dirhash.Hash1)
		if err != nil {
			t.Fatal(err)
		}
		wantHash, err := dirhash.HashZip(wantFile, dirhash.Hash1)
		if err != nil {
			t.Fatal(err)
		}
		if got != wantHash {
			t.Errorf("%s: zip hash %s, the go command's %s; files %v, want %v", m.path, got, wantHash, zipNames(t, base+".zip"), zipNames(t, wantFile))
		}
		names := strings.Join(zipNames(t, base+".zip"), " ")
		if strings.Contains(names, "bin/built") || strings.Contains(names, "tool.go") || !strings.Contains(names, "LICENSE") {
			t.Errorf("%s: zip holds %s", m.path, names)
		}
		mod, err := os.ReadFile(base + ".mod")
		if err != nil || string(mod) != files[strings.TrimPrefix(m.subdir+"/go.mod", "/")] {
			t.Errorf("%s: .mod %q, %v", m.path, mod, err)
		}
		if info, err := os.ReadFile(base + ".info"); err != nil || !strings.Contains(string(info), `"Version":"v1.2.3"`) {
			t.Errorf("%s: .info %q, %v", m.path, info, err)
		}
		if list, err := os.ReadFile(filepath.Join(filepath.Dir(base), "list")); err != nil || string(list) != "v1.2.3\n" {
			t.Errorf("%s: list %q, %v", m.path, list, err)
		}
	}
	if err := run(repo, "HEAD", "1.2.3", out, []string{"."}); err == nil {
		t.Error("a version without its v was accepted")
	}
}

func gitIn(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func zipNames(t *testing.T, file string) []string {
	t.Helper()
	zr, err := zip.OpenReader(file)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	return names
}
