package mpgdpr

import (
	"archive/zip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/privacykit/mpgdpr/internal/safefile"
)

// partSuffix marks the temporary files DownloadExportFile owns: an export
// in progress is ".<name>.<digits>.mpgdpr-part" beside its final path.
const partSuffix = ".mpgdpr-part"

// DownloadExportFile downloads the export to path atomically: into a
// temporary file in the same directory, synced, checked to be a complete
// zip archive that archive/zip can read, then renamed over path. On failure
// path is left as it was and the temporary file is removed. Files are
// created 0600: they hold personal data.
//
// The temporary file is named ".<name>.<digits>.mpgdpr-part" and locked
// while the download runs (on Unix, with flock). A process killed part way
// (a crash, SIGKILL) leaves it behind; the next DownloadExportFile to the
// same path removes every such file that no running download holds, before
// it starts, so personal data does not linger in half-written files. Stale
// parts are never resumed: a download always starts from its first byte.
// (Parts named ".<name>.<digits>.part", from earlier versions, are removed
// the same way.)
//
// Unlike DownloadExport it can start over when a transfer cannot be
// resumed, since it can empty its own file.
func (c *Client) DownloadExportFile(ctx context.Context, task *Task, path string, opts ...DownloadOption) (int64, error) {
	link, cfg, err := c.prepareDownload(task, opts)
	if err != nil {
		return 0, err
	}
	dir, base := filepath.Dir(path), filepath.Base(path)
	removeStaleParts(dir, base)
	f, err := createPart(dir, base)
	if err != nil {
		return 0, errorf("download: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp) // while still locked: no one else takes it for stale
			_ = f.Close()
		}
	}()
	s := newSink(f, func() error {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		return f.Truncate(0)
	})
	if err := c.download(ctx, link, s, cfg); err != nil {
		return s.n, err
	}
	if err := f.Sync(); err != nil {
		return s.n, errorf("download: %w", err)
	}
	// The sink checked the end records; archive/zip also reads the whole
	// central directory from disk, as export.OpenFile will.
	if _, err := zip.NewReader(f, s.n); err != nil {
		return s.n, errorf("download %s: %w: %v", safeLink(link), ErrExportIncomplete, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return s.n, errorf("download: %w", err)
	}
	ok = true
	if err := f.Close(); err != nil { // also releases the lock
		return s.n, errorf("download: %w", err)
	}
	if d, err := os.Open(dir); err == nil { // make the rename durable
		_ = d.Sync()
		_ = d.Close()
	}
	return s.n, nil
}

// createPart creates and locks a new part file for base in dir. A part
// that a concurrent removeStaleParts took for stale, between its creation
// and its locking, is created again.
func createPart(dir, base string) (*os.File, error) {
	for range 5 {
		f, err := os.CreateTemp(dir, "."+base+".*"+partSuffix)
		if err != nil {
			return nil, err
		}
		if err := f.Chmod(0o600); err != nil {
			_ = os.Remove(f.Name())
			_ = f.Close()
			return nil, err
		}
		// Where the system has no file locks, the part is used unlocked:
		// removeStaleParts then never takes it for stale.
		err = safefile.TryLock(f)
		unsupported := errors.Is(err, safefile.ErrUnsupported)
		if (err == nil || unsupported) && stillNamed(f) {
			return f, nil
		}
		if err == nil {
			_ = os.Remove(f.Name())
		}
		_ = f.Close()
		if err != nil && !unsupported && !errors.Is(err, safefile.ErrLocked) {
			return nil, err
		}
	}
	return nil, errors.New("could not create a temporary file that stays ours")
}

// stillNamed reports whether f is still the file its name points to.
func stillNamed(f *os.File) bool {
	a, err1 := f.Stat()
	b, err2 := os.Lstat(f.Name())
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// isPartOf reports whether name is a part file of base: the dot, base, a
// dot, the digits os.CreateTemp puts in, and our suffix (or the ".part" of
// earlier versions).
func isPartOf(name, base string) bool {
	rest, ok := strings.CutPrefix(name, "."+base+".")
	if !ok {
		return false
	}
	digits, ok := strings.CutSuffix(rest, partSuffix)
	if !ok {
		if digits, ok = strings.CutSuffix(rest, ".part"); !ok {
			return false
		}
	}
	if digits == "" {
		return false
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// removeStaleParts removes base's part files in dir that no running
// download holds. Errors are ignored: this is cleanup, and a part that
// cannot be removed now is tried again next time.
func removeStaleParts(dir, base string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !isPartOf(e.Name(), base) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		// A part nobody can lock belongs to a running download; one that
		// can be locked was left by a dead one (the system drops a lock
		// when its process dies). Without locks, nothing is stale.
		if safefile.TryLock(f) == nil && stillNamed(f) {
			_ = os.Remove(p)
		}
		_ = f.Close()
	}
}
