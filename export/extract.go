package export

import (
	"archive/zip"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Permissions for extracted data: the archive holds personal data, so only
// the owner may read it, whatever modes the archive records.
const (
	fileMode = 0o600
	dirMode  = 0o700
)

// extractItem is one entry of a validated extraction plan.
type extractItem struct {
	f   *zip.File
	rel string // OS-specific path relative to the target directory
	dir bool
}

// ExtractTo writes every entry under dir, creating dir and any parent
// directories with mode 0700 and files with mode 0600.
//
// Before writing anything it checks every entry and refuses the whole
// extraction, with an *EntryError naming the entry, if any name is absolute,
// has a drive letter, a backslash or a ".." segment (ErrUnsafePath), if an
// entry is a symbolic link or another non-regular file (ErrUnsafePath), if
// two entries extract to the same path, ignoring case (ErrDuplicateEntry),
// or if a method, encryption or declared size is not acceptable.
//
// While writing, it refuses to go through a path component that already
// exists as a symbolic link, and never follows one. Each file is written to
// a temporary file in its directory and renamed into place only once its
// CRC-32 has been verified, so a failure never leaves a file that looks
// complete; files extracted before the failing entry remain. Existing
// regular files at an entry's path are replaced.
func (a *Archive) ExtractTo(dir string) error {
	plan, err := a.plan()
	if err != nil {
		return err
	}
	if err := a.checkDeclaredTotal(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	// os.Root makes every operation below resolve inside dir, even if the
	// tree changes under us; the Lstat checks add the no-symlink policy.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer root.Close()
	for _, it := range plan {
		if it.dir {
			err = a.ensureDir(root, it.f.Name, it.rel)
		} else {
			err = a.extractFile(root, it)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// plan validates every entry and maps it to a relative path.
func (a *Archive) plan() ([]extractItem, error) {
	plan := make([]extractItem, 0, len(a.files))
	files := make(map[string]string) // folded path -> entry name
	dirs := make(map[string]string)  // folded path, explicit or implied -> entry name
	for _, f := range a.files {
		rel, err := localPath(f.Name)
		if err != nil {
			return nil, a.entryErr(f.Name, err)
		}
		mode := f.Mode()
		isDir := mode.IsDir() || strings.HasSuffix(f.Name, "/")
		switch {
		case mode&fs.ModeSymlink != 0:
			return nil, a.entryErr(f.Name, fmt.Errorf("%w: entry is a symbolic link", ErrUnsafePath))
		case !isDir && !mode.IsRegular():
			return nil, a.entryErr(f.Name, fmt.Errorf("%w: entry is not a regular file (%v)", ErrUnsafePath, mode.Type()))
		}
		if !isDir {
			if err := a.checkEntry(f); err != nil {
				return nil, err
			}
		}
		if rel == "." {
			continue // "./": the target directory itself
		}
		// Fold case: on case-insensitive file systems "A" and "a" collide.
		key := strings.ToLower(filepath.ToSlash(rel))
		if isDir {
			if other, ok := files[key]; ok {
				return nil, a.conflict(f.Name, other)
			}
			dirs[key] = f.Name
		} else {
			if other, ok := files[key]; ok {
				return nil, a.conflict(f.Name, other)
			}
			if other, ok := dirs[key]; ok {
				return nil, a.conflict(f.Name, other)
			}
			files[key] = f.Name
		}
		for p := path.Dir(key); p != "."; p = path.Dir(p) {
			if other, ok := files[p]; ok {
				return nil, a.conflict(f.Name, other)
			}
			dirs[p] = f.Name
		}
		plan = append(plan, extractItem{f: f, rel: rel, dir: isDir})
	}
	return plan, nil
}

func (a *Archive) conflict(name, other string) error {
	return a.entryErr(name, fmt.Errorf("%w: collides with %q", ErrDuplicateEntry, a.redact(other)))
}

// localPath turns an entry name into a path relative to the target
// directory, refusing anything that could point elsewhere on any OS.
func localPath(name string) (string, error) {
	unsafe := func(why string) (string, error) {
		return "", fmt.Errorf("%w: %s", ErrUnsafePath, why)
	}
	trimmed := strings.TrimSuffix(name, "/")
	switch {
	case trimmed == "":
		return unsafe("empty name")
	case strings.ContainsRune(name, '\\'):
		return unsafe("backslash in name")
	case strings.ContainsRune(name, 0):
		return unsafe("NUL in name")
	case len(name) >= 2 && name[1] == ':':
		return unsafe("drive letter in name")
	case strings.HasPrefix(name, "/"):
		return unsafe("absolute path")
	}
	for _, seg := range strings.Split(trimmed, "/") {
		if seg == ".." {
			return unsafe(`".." in path`)
		}
	}
	rel := filepath.FromSlash(path.Clean(trimmed))
	if rel != "." && !filepath.IsLocal(rel) {
		return unsafe("not a local path")
	}
	return rel, nil
}

// ensureDir creates rel and its parents inside root, refusing to pass
// through anything that is not a real directory.
func (a *Archive) ensureDir(root *os.Root, entry, rel string) error {
	cur := ""
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		fi, err := root.Lstat(cur)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := root.Mkdir(cur, dirMode); err != nil {
				return a.entryErr(entry, err)
			}
		case err != nil:
			return a.entryErr(entry, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return a.entryErr(entry, fmt.Errorf("%w: %q in the target directory is a symbolic link", ErrUnsafePath, cur))
		case !fi.IsDir():
			return a.entryErr(entry, fmt.Errorf("%w: %q in the target directory is not a directory", ErrUnsafePath, cur))
		}
	}
	return nil
}

// extractFile writes one entry through a temporary file that is renamed
// into place only after the entry verified.
func (a *Archive) extractFile(root *os.Root, it extractItem) (err error) {
	name := it.f.Name
	parent := filepath.Dir(it.rel)
	if parent != "." {
		if err := a.ensureDir(root, name, parent); err != nil {
			return err
		}
	}
	if fi, err := root.Lstat(it.rel); err == nil {
		if fi.Mode()&fs.ModeSymlink != 0 {
			return a.entryErr(name, fmt.Errorf("%w: %q in the target directory is a symbolic link", ErrUnsafePath, it.rel))
		}
		if !fi.Mode().IsRegular() {
			return a.entryErr(name, fmt.Errorf("%w: %q in the target directory is not a regular file", ErrUnsafePath, it.rel))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return a.entryErr(name, err)
	}

	r, err := a.openEntry(it.f)
	if err != nil {
		return err
	}
	defer r.Close()

	tmp := filepath.Join(parent, ".export-"+rand.Text()+".tmp")
	out, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return a.entryErr(name, err)
	}
	defer func() {
		if err != nil {
			root.Remove(tmp)
		}
	}()
	_, err = io.Copy(out, r)
	if cerr := out.Close(); err == nil && cerr != nil {
		err = a.entryErr(name, cerr)
	}
	if err != nil {
		var ee *EntryError
		if !errors.As(err, &ee) {
			err = a.entryErr(name, err)
		}
		return err
	}
	if err = root.Rename(tmp, it.rel); err != nil {
		return a.entryErr(name, err)
	}
	if !it.f.Modified.IsZero() {
		// Best effort: a wrong timestamp is not worth failing over.
		_ = root.Chtimes(it.rel, it.f.Modified, it.f.Modified)
	}
	return nil
}
