package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/privacykit/mpgdpr/worker/workerdb"
)

// OpenExport opens the export of taskID, a task of the done retrieval item
// of reference in project, for streaming (it is never read whole into
// memory), and records a chained export_served event (its size and
// SHA-256, never its path). The caller closes the file; reading it to its
// end fails if its content no longer has the recorded SHA-256. Not a
// retrieval, not done, a task not covering the item, no export, or one
// deleted by retention: ErrNoExport; an unknown reference:
// ErrUnknownReference.
func (w *Worker[TTx]) OpenExport(ctx context.Context, reference, project, taskID string) (*ExportFile, error) {
	h, err := loadRequestHead(ctx, w.db, reference)
	if err != nil {
		return nil, err
	}
	if Kind(h.Kind) != Retrieval {
		return nil, fmt.Errorf("%w: not a retrieval", ErrNoExport)
	}
	var itemID int64
	var state string
	var round int
	err = w.db.queryRow(ctx, `SELECT id, state, resubmits FROM mpgdpr_item WHERE reference = ? AND project = ?`, reference, project).Scan(&itemID, &state, &round)
	if isNoRows(err) || (err == nil && state != StateDone) {
		return nil, fmt.Errorf("%w: the request's item in this project is not done", ErrNoExport)
	}
	if err != nil {
		return nil, err
	}
	var linked int
	if err := w.db.queryRow(ctx, `SELECT COUNT(*) FROM mpgdpr_item_task WHERE item_id = ? AND round = ? AND task_id = ?`, itemID, round, taskID).Scan(&linked); err != nil {
		return nil, err
	}
	if linked == 0 {
		return nil, fmt.Errorf("%w: no such task of this item", ErrNoExport)
	}
	var path, sum string
	var size int64
	var deleted int
	if err := w.db.queryRow(ctx, `SELECT export_path, export_size, export_sha256,
		(SELECT COUNT(*) FROM mpgdpr_event e WHERE e.project = t.project AND e.task_id = t.task_id AND e.event = ?)
		FROM mpgdpr_task t WHERE t.project = ? AND t.task_id = ?`, workerdb.EventExportDeleted, project, taskID).Scan(&path, &size, &sum, &deleted); err != nil {
		return nil, err
	}
	switch {
	case path == "":
		return nil, fmt.Errorf("%w: the task has no export", ErrNoExport)
	case deleted > 0:
		return nil, fmt.Errorf("%w: the export was deleted by retention", ErrNoExport)
	case !w.inExportDir(project, path):
		// Only files the worker saved are served, whatever a row says.
		return nil, fmt.Errorf("%w: the recorded export is not in the project's export directory", ErrNoExport)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: the export file is not on this machine", ErrNoExport)
	}
	if err != nil {
		return nil, fmt.Errorf("worker: export of task %s: %w", taskID, errors.Unwrap(err)) // the *PathError's path left out
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != size {
		_ = f.Close()
		return nil, fmt.Errorf("worker: export of task %s: the file no longer matches its record (%d bytes recorded)", taskID, size)
	}
	if err := addEvent(ctx, w.db, event{Reference: reference, Project: project, ItemID: itemID, TaskID: taskID, Event: workerdb.EventExportServed,
		Detail: fmt.Sprintf("%d bytes, sha256 %s", size, sum)}); err != nil {
		_ = f.Close()
		return nil, err
	}
	return &ExportFile{ReadCloser: &checkedReader{f: f, h: sha256.New(), want: sum}, TaskID: taskID, Name: filepath.Base(path), Size: size, SHA256: sum}, nil
}

// inExportDir reports whether path lies in project's export directory, as
// fetchExport saves it.
func (w *Worker[TTx]) inExportDir(project, path string) bool {
	p, ok := w.cfg.Project(project)
	if !ok {
		return false
	}
	dir := w.cfg.path(p.ExportDir)
	if dir == "" {
		dir = w.cfg.path("exports")
	}
	return filepath.Dir(filepath.Clean(path)) == filepath.Join(dir, project)
}

// errExportChanged: the export's content is not what was checked and
// recorded when it was downloaded.
var errExportChanged = errors.New("worker: the export file's SHA-256 differs from its record")

// checkedReader hashes what it reads and fails at the end if the digest
// is not the recorded one, so that a changed file is never served as good
// to the end.
type checkedReader struct {
	f    *os.File
	h    hash.Hash
	want string
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.h.Write(p[:n])
	switch {
	case errors.Is(err, io.EOF) && hex.EncodeToString(c.h.Sum(nil)) != c.want:
		return n, errExportChanged
	case err != nil && !errors.Is(err, io.EOF):
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("worker: reading the export: %w", pe.Err) // without the path
		}
	}
	return n, err
}

func (c *checkedReader) Close() error { return c.f.Close() }
