// Package exportfile is the one way a finished retrieval's export is saved
// and checked, for the CLI and the worker: download it (atomic, mode 0600),
// hash it, open it and read every entry to its end (decrypted,
// CRC-checked), and optionally extract it, so that a wrong secret or a
// damaged archive is found when it is fetched, not when the data is needed.
package exportfile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/export"
	"github.com/privacykit/mpgdpr/internal/safefile"
)

// Saved describes an export written to disk.
type Saved struct {
	Path    string // dir/<safefile.Name(task id)>.zip
	Size    int64  // bytes
	SHA256  string // of the file, hex
	Entries int    // files (not directories) in the archive, each read, decrypted and CRC-checked
	// Verified says every entry was read and checked. It is false only
	// with AllowUnverified, for an encrypted archive and no secret.
	Verified bool
	// Dir is where it was extracted (Extract), or "".
	Dir string
}

// Step names what failed after the export was saved.
type Step string

// The steps after saving.
const (
	StepOpen    Step = "open"    // export.OpenFile refused it
	StepVerify  Step = "verify"  // an entry did not read, decrypt or verify
	StepExtract Step = "extract" // writing the files out failed
)

// Error reports an export that was saved (Path) but failed a later step.
// It wraps export's error: errors.Is(err, export.ErrWrongSecret) says the
// secret given is not the project's.
type Error struct {
	Path string
	Step Step
	Err  error
}

// Error says the export is saved, and what went wrong with it.
func (e *Error) Error() string {
	switch {
	case e.Step != StepExtract && errors.Is(e.Err, export.ErrWrongSecret):
		return "export saved as " + e.Path + ", but it does not decrypt with the API secret given"
	case e.Step == StepOpen:
		return fmt.Sprintf("export saved as %s, but it cannot be opened: %v", e.Path, e.Err)
	case e.Step == StepVerify:
		return fmt.Sprintf("export saved as %s, but it does not verify: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("export saved as %s, but extracting it failed: %v", e.Path, e.Err)
}

// Unwrap returns export's error.
func (e *Error) Unwrap() error { return e.Err }

// Option adjusts Save.
type Option func(*config)

type config struct {
	extract    bool
	unverified bool
	download   []mpgdpr.DownloadOption
}

// Extract also writes the archive's files, once verified, into
// dir/<safefile.Name(task id)>/ (export.Archive.ExtractTo).
func Extract() Option { return func(c *config) { c.extract = true } }

// AllowUnverified saves an encrypted export when no secret is given, with
// Verified false, instead of failing with export.ErrSecretRequired (the
// CLI without MIXPANEL_API_SECRET).
func AllowUnverified() Option { return func(c *config) { c.unverified = true } }

// WithDownloadOptions passes options to DownloadExportFile.
func WithDownloadOptions(opts ...mpgdpr.DownloadOption) Option {
	return func(c *config) { c.download = append(c.download, opts...) }
}

// Save downloads task's export into dir (created 0700 if missing) as
// dir/<safefile.Name(task id)>.zip, mode 0600, then checks it (see the
// package doc). A download failure is returned as DownloadExportFile
// returned it (nothing saved; an *fs.PathError is a local failure); a
// failure after the export was saved is an *Error, with the Saved so far.
func Save(ctx context.Context, c *mpgdpr.Client, task *mpgdpr.Task, dir, secret string, opts ...Option) (Saved, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Saved{}, err
	}
	name := safefile.Name(task.TrackingID)
	s := Saved{Path: filepath.Join(dir, name+".zip")}
	if _, err := c.DownloadExportFile(ctx, task, s.Path, cfg.download...); err != nil {
		return Saved{}, err
	}
	var err error
	if s.Size, s.SHA256, err = hashFile(s.Path); err != nil {
		return s, &Error{Path: s.Path, Step: StepOpen, Err: err}
	}
	a, err := export.OpenFile(s.Path, secret)
	if errors.Is(err, export.ErrSecretRequired) && cfg.unverified {
		return s, nil
	}
	if err != nil {
		return s, &Error{Path: s.Path, Step: StepOpen, Err: err}
	}
	defer a.Close()
	err = a.Walk(func(fi export.FileInfo, _ io.Reader) error { // Walk reads each entry to its end
		if !fi.IsDir() {
			s.Entries++
		}
		return nil
	})
	if err != nil {
		s.Entries = 0
		return s, &Error{Path: s.Path, Step: StepVerify, Err: err}
	}
	s.Verified = true
	if cfg.extract {
		out := filepath.Join(dir, name)
		if err := a.ExtractTo(out); err != nil {
			return s, &Error{Path: s.Path, Step: StepExtract, Err: err}
		}
		s.Dir = out
	}
	return s, nil
}

func hashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
