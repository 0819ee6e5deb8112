// Command modproxy writes this repository's modules, as of one git revision,
// into a directory laid out as a Go module proxy (GOPROXY=file://DIR): for each
// module, @v/list, @v/VERSION.info, @v/VERSION.mod and @v/VERSION.zip. The
// zips are made by golang.org/x/mod/zip from `git archive` of the revision,
// as the go command makes them from a tag, so the go.sum hashes computed from
// them are the ones the published tags will have.
//
// scripts/release-prepare uses it to compute the go.sum lines of versions not
// yet published, and scripts/release-drill to install and import a release
// before it is tagged.
//
//	go run ./modproxy -repo ROOT -rev REV -version v0.9.0 -out DIR . worker cmd/mpgdpr
//
// Each argument is a module's directory, relative to the repository root; the
// module path comes from its go.mod at REV. A module already in DIR at VERSION
// is written again (its list keeps one line per version).
package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	modzip "golang.org/x/mod/zip"
)

func main() {
	repo := flag.String("repo", ".", "the git work tree")
	rev := flag.String("rev", "HEAD", "the revision to take the modules from")
	version := flag.String("version", "", "the version to give every module, e.g. v0.9.0 (required)")
	out := flag.String("out", "", "the proxy directory to write (required)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: modproxy -version vX.Y.Z -out DIR [-repo ROOT] [-rev REV] MODULE_DIR...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *version == "" || *out == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*repo, *rev, *version, *out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "modproxy:", err)
		os.Exit(1)
	}
}

func run(repo, rev, version, out string, dirs []string) error {
	if !semver.IsValid(version) || semver.Canonical(version) != version {
		return fmt.Errorf("version %q is not a canonical semantic version (vX.Y.Z)", version)
	}
	repo, err := filepath.Abs(repo)
	if err != nil {
		return err
	}
	commit, err := git(repo, "rev-parse", "--verify", rev+"^{commit}")
	if err != nil {
		return err
	}
	commit = strings.TrimSpace(commit)
	unix, err := git(repo, "show", "-s", "--format=%ct", commit)
	if err != nil {
		return err
	}
	secs, err := strconv.ParseInt(strings.TrimSpace(unix), 10, 64)
	if err != nil {
		return fmt.Errorf("commit time of %s: %w", commit, err)
	}
	when := time.Unix(secs, 0).UTC()
	for _, dir := range dirs {
		if err := writeModule(repo, commit, version, when, out, path.Clean(filepath.ToSlash(dir))); err != nil {
			return fmt.Errorf("module in %s: %w", dir, err)
		}
	}
	return nil
}

func writeModule(repo, commit, version string, when time.Time, out, dir string) error {
	subdir := dir
	if subdir == "." {
		subdir = ""
	}
	gomodPath := "go.mod"
	if subdir != "" {
		gomodPath = subdir + "/go.mod"
	}
	gomod, err := git(repo, "show", commit+":"+gomodPath)
	if err != nil {
		return err
	}
	modPath := modfile.ModulePath([]byte(gomod))
	if modPath == "" {
		return fmt.Errorf("%s has no module line", gomodPath)
	}
	if err := module.Check(modPath, version); err != nil {
		return err
	}
	escaped, err := module.EscapePath(modPath)
	if err != nil {
		return err
	}
	vdir := filepath.Join(out, filepath.FromSlash(escaped), "@v")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return err
	}
	base := filepath.Join(vdir, version)

	files, err := filesAt(repo, commit, subdir)
	if err != nil {
		return err
	}
	var zbuf bytes.Buffer
	if err := modzip.Create(&zbuf, module.Version{Path: modPath, Version: version}, files); err != nil {
		return err
	}
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, when})
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{base + ".mod", []byte(gomod)},
		{base + ".zip", zbuf.Bytes()},
		{base + ".info", append(info, '\n')},
	} {
		if err := os.WriteFile(f.name, f.data, 0o644); err != nil {
			return err
		}
	}
	return addToList(filepath.Join(vdir, "list"), version)
}

// filesAt lists the files of subdir at commit as the go command takes them
// for a module zip from a tag (and as modzip.CreateFromVCS does, which only
// accepts a repository's main work tree, not a linked one): `git archive`
// of the commit (so no ignored or untracked file), line endings untouched,
// and for a nested module without a LICENSE the root's. modzip.Create then
// leaves out nested modules and vendored files.
func filesAt(repo, commit, subdir string) ([]modzip.File, error) {
	args := []string{"-c", "core.autocrlf=input", "-c", "core.eol=lf", "archive", "--format=zip", commit}
	if subdir != "" {
		args = append(args, subdir)
	}
	data, err := git(repo, args...)
	if err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(strings.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, err
	}
	var files []modzip.File
	haveLicense := false
	for _, zf := range zr.File {
		if strings.HasSuffix(zf.Name, "/") {
			continue
		}
		name := zf.Name
		if subdir != "" {
			var ok bool
			if name, ok = strings.CutPrefix(name, subdir+"/"); !ok {
				continue
			}
		}
		files = append(files, archived{name, zf})
		haveLicense = haveLicense || name == "LICENSE"
	}
	if !haveLicense && subdir != "" {
		if license, err := git(repo, "cat-file", "blob", commit+":LICENSE"); err == nil {
			files = append(files, blob{"LICENSE", []byte(license)})
		}
	}
	return files, nil
}

// archived is a file of `git archive`'s zip.
type archived struct {
	name string
	f    *zip.File
}

func (a archived) Path() string                 { return a.name }
func (a archived) Lstat() (os.FileInfo, error)  { return a.f.FileInfo(), nil }
func (a archived) Open() (io.ReadCloser, error) { return a.f.Open() }

// blob is a file held in memory.
type blob struct {
	name string
	data []byte
}

func (b blob) Path() string                 { return b.name }
func (b blob) Lstat() (os.FileInfo, error)  { return blobInfo{b}, nil }
func (b blob) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b.data)), nil }

type blobInfo struct{ b blob }

func (i blobInfo) Name() string       { return path.Base(i.b.name) }
func (i blobInfo) Size() int64        { return int64(len(i.b.data)) }
func (i blobInfo) Mode() os.FileMode  { return 0o644 }
func (i blobInfo) ModTime() time.Time { return time.Time{} }
func (i blobInfo) IsDir() bool        { return false }
func (i blobInfo) Sys() any           { return nil }

// addToList adds version to a proxy's @v/list, once, in semver order.
func addToList(list, version string) error {
	data, err := os.ReadFile(list)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	versions := strings.Fields(string(data))
	if !slices.Contains(versions, version) {
		versions = append(versions, version)
	}
	semver.Sort(versions)
	return os.WriteFile(list, []byte(strings.Join(versions, "\n")+"\n"), 0o644)
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}
