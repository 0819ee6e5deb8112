package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/journal"
	"github.com/privacykit/mpgdpr/worker/evidence"
)

// journalSource is an evidence.Source over bulk jobs' journals: each
// journal is one request (one record), as the job filed it.
type journalSource struct {
	paths []string
	// ref names the request (default "job-" and the header's key); project
	// the project (default the API host the job talked to); received the
	// time of receipt (default the job's start, the header's time).
	ref, project string
	received     time.Time
}

// Records reads each journal line by line and yields its record.
func (s *journalSource) Records(ctx context.Context, f evidence.Filter, yield func(*evidence.Record) error) error {
	for _, p := range s.paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := s.read(p)
		if err != nil {
			return err
		}
		if f.Project != "" && r.Project != f.Project {
			continue
		}
		if (!f.Since.IsZero() && r.ReceivedAt.Before(f.Since)) || (!f.Until.IsZero() && !r.ReceivedAt.Before(f.Until)) {
			continue
		}
		if err := yield(r); err != nil {
			return err
		}
	}
	return nil
}

// read builds one journal's record, reading it as a resume would
// (journal.ReadFile). The IDs are kept (once each) to be shown or hashed.
func (s *journalSource) read(path string) (*evidence.Record, error) {
	var r *evidence.Record
	seen := map[string]bool{}
	tasks := map[string]int{}   // task id -> index in r.Tasks
	unsettled := map[int]bool{} // chunks sent without a known outcome
	failed := false
	_, err := journal.ReadFile(path, func(e journal.Entry) error {
		if h := e.Header; h != nil {
			r = &evidence.Record{Reference: s.ref, Project: s.project, ComplianceType: h.Compliance, IDs: h.IDs, ReceivedAt: s.received, DistinctIDs: []string{}}
			if r.Reference == "" {
				r.Reference = "job-" + h.Key()
			}
			if r.Project == "" {
				r.Project = h.API
			}
			if r.ReceivedAt.IsZero() {
				r.ReceivedAt = h.Created
			}
			r.Kind = map[string]string{"delete": "deletion", "retrieve": "retrieval"}[h.Command]
		} else {
			rec := e.Record
			addTask := func(id, origin string) *evidence.Task {
				i, ok := tasks[id]
				if !ok {
					i = len(r.Tasks)
					tasks[id] = i
					r.Tasks = append(r.Tasks, evidence.Task{TaskID: id, Origin: origin, FiledAt: rec.Time})
				}
				return &r.Tasks[i]
			}
			switch rec.State {
			case journal.Sending:
				unsettled[rec.Chunk] = true
				for _, id := range rec.IDs {
					if !seen[id] {
						seen[id] = true
						r.DistinctIDs = append(r.DistinctIDs, id)
					}
				}
			case journal.Accepted:
				delete(unsettled, rec.Chunk)
				addTask(rec.TaskID, "filed")
			case journal.Conflict:
				delete(unsettled, rec.Chunk)
				for _, id := range rec.TaskIDs {
					addTask(id, "conflict")
				}
			case journal.Unknown:
				r.Notes = append(r.Notes, evidence.Note{At: rec.Time, Event: "unknown", Detail: rec.Error})
			case journal.Unsent:
				delete(unsettled, rec.Chunk)
				r.Notes = append(r.Notes, evidence.Note{At: rec.Time, Event: "unsent", Detail: rec.Error})
			case journal.Finished:
				t := addTask(rec.TaskID, "filed")
				t.Statuses = append(t.Statuses, evidence.StatusSeen{Status: rec.Status, At: rec.Time})
				t.DoneAt = rec.Time
				if rec.Status != "SUCCESS" {
					failed = true
					r.Notes = append(r.Notes, evidence.Note{At: rec.Time, Event: "failed", TaskID: rec.TaskID, Detail: "task ended " + rec.Status})
				}
			case journal.Downloaded:
				t := addTask(rec.TaskID, "filed")
				t.ExportBytes = rec.Bytes
				t.ExportSHA256 = fileSHA256(rec.Path, rec.Bytes)
			}
		}
		if e.Hash != "" {
			r.ChainHash = e.Hash
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("%s: empty journal", path)
	}
	if r.IDs == 0 {
		r.IDs = len(r.DistinctIDs)
	}
	slices.Sort(r.DistinctIDs)
	// Completed: every ID's request settled, every task ended SUCCESS (and
	// every retrieval downloaded).
	done := len(r.Tasks) > 0 && len(unsettled) == 0 && !failed
	var last time.Time
	for _, t := range r.Tasks {
		if t.DoneAt.IsZero() || (r.Kind == "retrieval" && t.ExportBytes == 0) {
			done = false
		}
		if t.DoneAt.After(last) {
			last = t.DoneAt
		}
	}
	switch {
	case done:
		r.CompletedAt, r.SourceState = last, "done"
	case failed:
		r.SourceState = "failed"
	case len(unsettled) > 0:
		r.SourceState = "unknown"
	default:
		r.SourceState = "filed"
	}
	return r, nil
}

// fileSHA256 is the SHA-256 of the export a job saved, when it is still
// there as a file of the size the journal recorded (an extracted export is a
// directory: no digest); empty otherwise.
func fileSHA256(path string, size int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() != size {
		return ""
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}
