package bulk

import (
	"context"
	"os"
	"sort"
	"sync"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/exitcode"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/journal"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/words"
)

// Followed lists the tasks the job follows: those it filed and, for a
// deletion, the running deletions a 409 named as covering its IDs.
func (j *Job) Followed(st *journal.State) []journal.Task {
	var out []journal.Task
	for _, t := range st.Tasks() {
		if t.Chunk == 0 && j.Kind != mpgdpr.Deletion {
			continue // a retrieval's 409 names deletions: nothing to retrieve there
		}
		out = append(out, t)
	}
	return out
}

// Count says what became of every ID of the job, by the journal.
func (j *Job) Count(st *journal.State) Counts {
	c := Counts{Total: len(j.IDs)}
	chunks := map[int]bool{}
	for _, id := range j.IDs {
		s, n := st.ID(id)
		switch s {
		case journal.IDAccepted:
			c.Filed++
		case journal.IDConflict:
			if j.Kind == mpgdpr.Deletion {
				c.Covered++
			} else {
				c.Refused++
			}
		case journal.IDInFlight, journal.IDUnknown:
			c.Unknown++
			if !chunks[n] {
				chunks[n] = true
				c.UnknownChunks = append(c.UnknownChunks, n)
			}
		default:
			c.Unsent++
		}
	}
	sort.Ints(c.UnknownChunks)
	return c
}

// follow waits for every task of the job that has not ended, all at once
// (the client's rate limiter spaces the checks), recording each end in the
// journal and, with Download, saving each finished export.
func (r *runner) follow(ctx context.Context) int {
	j, env, jr := r.j, r.env, r.jr
	tasks := j.Followed(jr.State())
	env.Progress.Tasks(len(tasks))
	var mu sync.Mutex
	code := exitcode.OK
	setCode := func(c int) {
		mu.Lock()
		code = exitcode.Worse(code, c)
		mu.Unlock()
	}
	saving := j.Kind == mpgdpr.Retrieval && j.Download
	dl := make(chan struct{}, 2) // exports downloaded at once
	var wg sync.WaitGroup
	var open []journal.Task
	for _, t := range tasks {
		if t.Status != "" {
			env.Progress.Status(t.ID, t.Status)
		}
		needsDownload := saving && t.Status == string(mpgdpr.StatusSuccess) && !downloaded(t)
		if t.Status == "" || needsDownload {
			open = append(open, t)
		}
		if saving && (t.Status == "" || t.Status == string(mpgdpr.StatusSuccess)) {
			done := 0
			if !needsDownload && t.Status != "" {
				done = 1
			}
			env.Progress.Exports(1, done)
		}
	}
	if n := len(open); n > 0 && !env.Progress.Shown() && j.PollStart >= env.NoteAfter {
		// Without a progress line, say once what the coming silence is.
		upTo := ""
		if j.Kind == mpgdpr.Deletion {
			upTo = " (up to 30 for a deletion)"
		}
		env.Note("%s: waiting for %s to end: each is checked after %s, the wait doubling up to %s; Mixpanel takes minutes to days%s",
			j.Command, words.Count(n, "task"), words.Duration(j.PollStart), words.Duration(j.PollMax), upTo)
	}
	for _, t := range open {
		wg.Add(1)
		go func() {
			defer wg.Done()
			task, err := env.Wait(ctx, t.ID)
			if err != nil {
				if ctx.Err() == nil {
					env.Note("mpgdpr %s: task %s: %v", j.Command, t.ID, mpgdpr.Unprefixed(err))
				}
				setCode(exitcode.ForAPI(err))
				return
			}
			if t.Status == "" {
				if err := jr.Append(journal.Record{State: journal.Finished, TaskID: t.ID, Status: string(task.Status)}); err != nil {
					env.Note("mpgdpr %s: %v", j.Command, err)
					setCode(exitcode.Local)
					return
				}
			}
			if saving && !task.Status.Succeeded() {
				env.Progress.Exports(-1, 0) // no export to save
			}
			if !saving || !task.Status.Succeeded() {
				return
			}
			dl <- struct{}{}
			defer func() { <-dl }()
			d, err := env.Save(ctx, task)
			if d.Path != "" {
				env.Progress.Exports(0, 1)
			}
			if err != nil {
				env.Note("mpgdpr %s: task %s: %v", j.Command, t.ID, mpgdpr.Unprefixed(err))
				setCode(d.Code)
				if d.Path == "" {
					return
				}
			}
			if err := jr.Append(journal.Record{State: journal.Downloaded, TaskID: t.ID, Path: d.Path, Bytes: d.Size, Files: d.Entries}); err != nil {
				env.Note("mpgdpr %s: %v", j.Command, err)
				setCode(exitcode.Local)
			}
		}()
	}
	wg.Wait()
	return code
}

// downloaded reports whether the journal's export of t is still on disk.
func downloaded(t journal.Task) bool {
	if t.Download == nil {
		return false
	}
	fi, err := os.Stat(t.Download.Path)
	return err == nil && fi.Size() == t.Download.Bytes
}
