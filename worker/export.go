package worker

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/internal/exportfile"
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
	Entries         int    // files (not directories) in the archive, each decrypted and CRC-checked
}

// Sink receives each export after it was downloaded and checked, e.g. to
// hand it to a DSR platform. The file at info.Path stays in the export
// directory; an error from Store makes the worker try again later.
type Sink interface {
	Store(ctx context.Context, info ExportInfo) error
}

// fetchExport saves and checks a finished retrieval's export
// (exportfile.Save, the CLI's way too) and hands it to the Sink.
func (w *Worker[TTx]) fetchExport(ctx context.Context, t *taskRow, task *mpgdpr.Task) (*ExportInfo, error) {
	p, _ := w.cfg.Project(t.Project)
	dir := w.cfg.path(p.ExportDir)
	if dir == "" {
		dir = w.cfg.path("exports")
	}
	saved, err := exportfile.Save(ctx, w.clients[t.Project], task, filepath.Join(dir, t.Project), w.secrets[t.Project].APISecret)
	if err != nil {
		return nil, err
	}
	info := &ExportInfo{Project: t.Project, TaskID: t.TaskID, Path: saved.Path, Size: saved.Size, SHA256: saved.SHA256, Entries: saved.Entries}
	if w.sink != nil {
		if err := w.sink.Store(ctx, *info); err != nil {
			return nil, fmt.Errorf("worker: export sink: %w", err)
		}
	}
	return info, nil
}
