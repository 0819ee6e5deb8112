package worker

import (
	"context"
	"errors"
)

// TODO(issue 25): the worker-core helper replaces every function of this
// file with its implementation and deletes the file.

var errTODO = errors.New("worker: not implemented yet")

// ListRequests lists requests by state, oldest first, a page at a time.
func (w *Worker[TTx]) ListRequests(ctx context.Context, opts ListOptions) (*RequestPage, error) {
	return nil, errTODO
}

// Cancel cancels a request's deletions while Mixpanel still allows it.
func (w *Worker[TTx]) Cancel(ctx context.Context, reference string) (*CancelResult, error) {
	return nil, errTODO
}

// OpenExport opens a finished retrieval's export of one task.
func (w *Worker[TTx]) OpenExport(ctx context.Context, reference, project, taskID string) (*ExportFile, error) {
	return nil, errTODO
}

// Ready reports whether the database answers, its migrations are applied
// and River runs.
func (w *Worker[TTx]) Ready(ctx context.Context) error { return errTODO }
