package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/export"
)

// A finished retrieval's export: downloaded into the export directory,
// checked (hashed, every entry decrypted and CRC-checked) and handed to the
// Sink, if any.

// maxExportTries is how many times a finished retrieval's export is fetched
// (each time with a fresh link) before its items are reported failed.
const maxExportTries = 5

// ExportInfo describes a downloaded, checked export.
type ExportInfo struct {
	Project, TaskID string
	Path            string // in the export directory
	Size            int64
	SHA256          string // hex
	Entries         int    // files in the archive, each decrypted and CRC-checked
}

// Sink receives each export after it was downloaded and checked, e.g. to
// hand it to a DSR platform. The file at info.Path stays in the export
// directory; an error from Store makes the worker try again later.
type Sink interface {
	Store(ctx context.Context, info ExportInfo) error
}

func (w *Worker[TTx]) fetchExport(ctx context.Context, t *taskRow, task *mpgdpr.Task) (*ExportInfo, error) {
	p, _ := w.cfg.Project(t.Project)
	dir := w.cfg.path(p.ExportDir)
	if dir == "" {
		dir = w.cfg.path("exports")
	}
	dir = filepath.Join(dir, t.Project)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, safeName(t.TaskID)+".zip")
	if _, err := w.clients[t.Project].DownloadExportFile(ctx, task, path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	size, err := io.Copy(h, f)
	_ = f.Close()
	if err != nil {
		return nil, err
	}
	archive, err := export.OpenFile(path, w.secrets[t.Project].APISecret)
	if err != nil {
		return nil, err
	}
	defer archive.Close()
	entries := 0
	if err := archive.Walk(func(_ export.FileInfo, r io.Reader) error {
		entries++
		_, err := io.Copy(io.Discard, r)
		return err
	}); err != nil {
		return nil, err
	}
	info := &ExportInfo{Project: t.Project, TaskID: t.TaskID, Path: path, Size: size, SHA256: hex.EncodeToString(h.Sum(nil)), Entries: entries}
	if w.sink != nil {
		if err := w.sink.Store(ctx, *info); err != nil {
			return nil, fmt.Errorf("worker: export sink: %w", err)
		}
	}
	return info, nil
}

// safeName keeps a task id usable as a file name.
func safeName(id string) string {
	ok := id != "" && id != "." && id != ".."
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			ok = false
			break
		}
	}
	if ok {
		return id
	}
	return "task-" + hex.EncodeToString([]byte(id))
}
