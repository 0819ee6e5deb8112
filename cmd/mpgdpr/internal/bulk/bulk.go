// Package bulk is the resumable engine of mpgdpr delete and retrieve: it
// files a list of distinct IDs in requests of a chunk size, records each
// request in a journal (package journal) right before it goes on the wire
// and its outcome after, resumes a job from its journal, follows the
// tasks to their end and has each finished export saved.
//
// The engine decides and records; it prints nothing of its own. What a
// person sees (notes, the progress line, the log) and how an export is
// saved come through Env, so that the command stays thin wiring and the
// engine is tested on its own against the fake Mixpanel (mpgdprtest).
package bulk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/exitcode"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/journal"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/words"
	"github.com/privacykit/mpgdpr/internal/exportfile"
)

// Job is a validated delete or retrieve.
type Job struct {
	Command    string      // "delete" or "retrieve": the journal's and the messages' word
	Kind       mpgdpr.Kind // what the job files: retrievals or deletions
	Compliance mpgdpr.ComplianceType
	Disclosure mpgdpr.DisclosureType
	IDs        []string // distinct and checked, in input order
	IDBytes    int64    // the IDs' total length, to bound the journal's size
	Client     *mpgdpr.Client
	ChunkSize  int    // IDs per request, at least 1
	Journal    string // the journal's path
	Wait       bool   // follow every task until it ends
	PollStart  time.Duration
	PollMax    time.Duration
	// Download: save each finished retrieval's export (with Env.Save).
	Download bool
	// Resubmit: file again a retrieval's IDs whose outcome is unknown
	// (a deletion's always are: Mixpanel's 409 names the task if it was
	// filed).
	Resubmit bool
	Rate     float64 // the client's requests per second, for the pacing note
}

// Header is what the journal records about the job: it names the job, so
// that a journal of another job is refused.
func (j *Job) Header() journal.Header {
	return journal.Header{
		Command:    j.Command,
		Compliance: string(j.Compliance),
		Disclosure: string(j.Disclosure),
		API:        APIHost(j.Client),
		IDs:        len(j.IDs),
		IDsSHA256:  journal.DigestIDs(j.IDs),
		ChunkSize:  j.ChunkSize,
	}
}

// DefaultJournal is the journal's path when none is given: one per job,
// in the current directory.
func (j *Job) DefaultJournal() string {
	return fmt.Sprintf("mpgdpr-%s-%s.journal.jsonl", j.Command, j.Header().Key())
}

// APIHost is the host (and path) the client sends to: what a journal
// records, never the full URL, which could carry credentials.
func APIHost(c *mpgdpr.Client) string {
	u, err := url.Parse(c.BaseURL())
	if err != nil {
		return ""
	}
	return u.Host + strings.TrimSuffix(u.Path, "/")
}

// Progress receives the job's counts as it runs, for a progress line.
type Progress interface {
	Filing(done, total int)       // requests filed so far, of all there will be
	Filed()                       // one more request filed
	Sent()                        // a request went out
	Tasks(n int)                  // tasks followed
	Status(taskID, status string) // a task's latest status
	Exports(total, done int)      // add to the exports to save and those saved
	EndWait()                     // what was waited for has come
	Shown() bool                  // a progress line is drawn (else waits are said in notes)
}

// Saved is an export Env.Save wrote to disk, and the exit status of the
// error returned with it.
type Saved struct {
	exportfile.Saved
	Code int
}

// Env is what the engine shows and uses while it runs. Every field may be
// left zero.
type Env struct {
	// Note says something to the person running the job (a line of its own,
	// no newline needed).
	Note func(format string, a ...any)
	// WaitNote says what the job waits for, from NoteAfter on: line (with
	// {left} counting down to end) on the progress line, or note.
	WaitNote  func(line, note string, end time.Time, level slog.Level)
	NoteAfter time.Duration
	Progress  Progress
	Logger    *slog.Logger
	// Redact removes secrets from an error's text before the journal
	// records it.
	Redact func(string) string
	// Wait waits for one task to end (default: the client's Wait with the
	// job's poll intervals).
	Wait func(ctx context.Context, taskID string) (*mpgdpr.Task, error)
	// Save saves a finished retrieval's export (required with Download).
	Save func(ctx context.Context, t *mpgdpr.Task) (Saved, error)
}

func (e *Env) defaults(j *Job) {
	if e.Note == nil {
		e.Note = func(string, ...any) {}
	}
	if e.WaitNote == nil {
		e.WaitNote = func(string, string, time.Time, slog.Level) {}
	}
	if e.Progress == nil {
		e.Progress = nopProgress{}
	}
	if e.Logger == nil {
		e.Logger = slog.New(slog.DiscardHandler)
	}
	if e.Redact == nil {
		e.Redact = func(s string) string { return s }
	}
	if e.Wait == nil {
		opts := []mpgdpr.WaitOption{mpgdpr.WithPollInterval(j.PollStart, j.PollMax)}
		e.Wait = func(ctx context.Context, id string) (*mpgdpr.Task, error) {
			return j.Client.Wait(ctx, j.Kind, id, opts...)
		}
	}
	if e.NoteAfter == 0 {
		e.NoteAfter = 3 * time.Second
	}
}

type nopProgress struct{}

func (nopProgress) Filing(int, int)       {}
func (nopProgress) Filed()                {}
func (nopProgress) Sent()                 {}
func (nopProgress) Tasks(int)             {}
func (nopProgress) Status(string, string) {}
func (nopProgress) Exports(int, int)      {}
func (nopProgress) EndWait()              {}
func (nopProgress) Shown() bool           { return false }

// Result is what a job ended with.
type Result struct {
	// Code is the exit status of the run so far (the caller's summary may
	// make it worse: tasks that failed, IDs left over).
	Code int
	// Stop is why the run stopped early, if it did: to be reported.
	Stop    error
	Journal string
	Tasks   []journal.Task // the tasks followed (Followed)
	Counts  Counts
}

// Counts accounts for every distinct ID of a job.
type Counts struct {
	Total, Filed, Covered, Refused, Unknown, Unsent int
	UnknownChunks                                   []int // the requests whose outcome is unknown
}

// journalError is a failure to record the job: it stops the job at once.
type journalError struct{ err error }

func (e *journalError) Error() string { return e.err.Error() }
func (e *journalError) Unwrap() error { return e.err }

// Run files the job's IDs, resuming from its journal, then follows its
// tasks if asked. An error means the journal could not be opened and
// nothing was done; Result.Code is its exit status then.
func Run(ctx context.Context, j *Job, env Env, inputNotes ...string) (*Result, error) {
	env.defaults(j)
	res := &Result{Journal: j.Journal}
	jr, opened, err := journal.Open(j.Journal, j.Header(), journal.MaxSize(len(j.IDs), j.IDBytes))
	if err != nil {
		res.Code = exitcode.Local
		if errors.Is(err, journal.ErrMismatch) {
			res.Code = exitcode.Usage
			err = fmt.Errorf("%w\nUse the original input and options to resume that job, or another --journal for a new one", err)
		}
		return res, err
	}
	defer jr.Close()
	st := jr.State()
	for _, n := range inputNotes {
		env.Note("%s", n)
	}
	if opened.DroppedTail {
		env.Note("note: the journal's last line was cut short by a crash and was dropped (that is safe: see 'mpgdpr help %s')", j.Command)
	}
	if opened.Resumed {
		c := j.Count(st)
		env.Note("journal: %s (resuming: %d of %s filed in %s)", j.Journal, c.Filed+c.Covered, words.Count(c.Total, "ID"), words.Count(len(j.Followed(st)), "task"))
	} else {
		env.Note("journal: %s (new)", j.Journal)
	}

	r := &runner{j: j, env: env, jr: jr}
	code, stopErr := r.resume(opened)
	if c := j.Count(st); stopErr == nil && c.Unknown > 0 {
		what := fmt.Sprintf("%s of %s %s", words.Count(c.Unknown, "ID"), words.Noun(len(c.UnknownChunks), "request"), words.Ints(c.UnknownChunks))
		if j.Kind.Resubmittable() || j.Resubmit {
			how := "if Mixpanel had filed them, its 409 names the task"
			if !j.Kind.Resubmittable() {
				how = "--resubmit-unknown: a second export may result"
			}
			env.Note("note: %s: unknown outcome: filing them again (%s)", what, how)
		} else {
			env.Note("note: %s: unknown outcome: not filed again without --resubmit-unknown", what)
		}
	}
	if stopErr == nil {
		code, stopErr = r.submitAll(ctx)
	}
	if stopErr == nil && j.Wait && ctx.Err() == nil {
		code = exitcode.Worse(code, r.follow(ctx))
	}
	if ctx.Err() != nil {
		code = exitcode.Worse(code, exitcode.Interrupted)
	}
	res.Code, res.Stop = code, stopErr
	res.Tasks = j.Followed(st)
	res.Counts = j.Count(st)
	return res, nil
}

// runner is one run of a job.
type runner struct {
	j   *Job
	env Env
	jr  *journal.Journal
}
