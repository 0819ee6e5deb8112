package bulk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/exitcode"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/journal"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/words"
)

// resume turns the requests a previous run left in flight into unknown
// outcomes, so that the journal says what is known: Mixpanel may or may not
// have filed them.
func (r *runner) resume(opened journal.Opened) (int, error) {
	if !opened.Resumed {
		return exitcode.OK, nil
	}
	var inflight []int
	for _, c := range r.jr.State().Chunks() {
		if c.State == journal.Sending {
			inflight = append(inflight, c.N)
		}
	}
	if err := r.jr.Append(journal.Record{State: journal.Resumed}); err != nil {
		return exitcode.Local, err
	}
	for _, n := range inflight {
		err := r.jr.Append(journal.Record{State: journal.Unknown, Chunk: n,
			Error: "the previous run stopped while this request was in flight: Mixpanel may or may not have filed it"})
		if err != nil {
			return exitcode.Local, err
		}
	}
	return exitcode.OK, nil
}

// Pending lists, in input order, the IDs still to file. The IDs of requests
// whose outcome is unknown are filed again for a deletion (if Mixpanel had
// filed it, it answers 409 naming the task) but, for a retrieval, only when
// Resubmit says a second export is acceptable.
func (j *Job) Pending(st *journal.State) []string {
	var out []string
	for _, id := range j.IDs {
		s, _ := st.ID(id)
		switch s {
		case journal.IDUnsent:
			out = append(out, id)
		case journal.IDInFlight, journal.IDUnknown:
			if j.Kind.Resubmittable() || j.Resubmit {
				out = append(out, id)
			}
		}
	}
	return out
}

// submitAll files every pending ID, through the library's batch helper,
// whose hooks let each request be journaled right before it goes on the
// wire and its outcome after.
func (r *runner) submitAll(ctx context.Context) (int, error) {
	j, st := r.j, r.jr.State()
	unknownRun := 0
	left := -1
	for {
		pending := j.Pending(st)
		if left >= 0 && len(pending) >= left {
			// A batch that ended without error accounts for every ID it
			// was given; sending the same IDs again would loop.
			return exitcode.API, fmt.Errorf("%s still unfiled after a complete batch; stopping", words.Count(len(pending), "ID"))
		}
		done := 0
		for _, c := range st.Chunks() {
			if c.State == journal.Accepted {
				done++
			}
		}
		r.env.Progress.Filing(done, done+(len(pending)+j.ChunkSize-1)/j.ChunkSize)
		if len(pending) == 0 {
			return exitcode.OK, nil
		}
		res, err := r.submit(ctx, pending)
		var je *journalError
		left = -1
		switch {
		case err == nil:
			left = len(pending)
			continue
		case errors.As(err, &je):
			return exitcode.Local, fmt.Errorf("%w\nStopped: the journal must be written before anything else is sent. Requests filed so far are in it", je.err)
		case ctx.Err() != nil:
			return exitcode.Interrupted, nil
		case errors.Is(err, mpgdpr.ErrOutcomeUnknown) && j.Kind.Resubmittable():
			// DeleteAll resubmitted the request for as long as its retry
			// policy allows: the service is not answering.
			return exitcode.API, fmt.Errorf("%w\nThe IDs of unknown outcome are in the journal: run the same command again to file them (where Mixpanel had filed them, its 409 names the task)", mpgdpr.Unprefixed(err))
		case errors.Is(err, mpgdpr.ErrOutcomeUnknown):
			// A retrieval whose requests keep ending with an unknown outcome
			// stops (mpgdpr.MaxUnknownInARow): the network or the service is
			// failing, and going on would only pile up uncertainty.
			if len(res.Tasks) > 0 {
				unknownRun = 0
			}
			unknownRun++
			if unknownRun >= mpgdpr.MaxUnknownInARow {
				return exitcode.API, fmt.Errorf("%d requests in a row ended with an unknown outcome; stopping: %w", unknownRun, mpgdpr.Unprefixed(err))
			}
			continue
		default:
			return exitcode.ForAPI(err), err
		}
	}
}

// submit runs one CreateAll (DeleteAll or RetrieveAll) over pending, journaling each
// request: "sending" right before it goes on the wire (after its turn at
// the rate limiter, so that a job killed while waiting has recorded
// nothing for it), then its outcome. A failure to write the journal is a
// *journalError.
func (r *runner) submit(ctx context.Context, pending []string) (*mpgdpr.BatchResult, error) {
	j, env, jr := r.j, r.env, r.jr
	// The hooks run one at a time on the batch's goroutine.
	chunkOf := map[int]int{} // batch sequence number → journal request number
	ended := map[int]bool{}
	queued := map[int]time.Time{} // when each request started waiting for its turn
	last := 0
	var jerr error
	record := func(rec journal.Record) error {
		if err := jr.Append(rec); err != nil {
			jerr = err
			return err
		}
		return nil
	}
	// A request that waits for its turn at the rate limit for long (a low
	// --rate, or a limit shared with many polls) says so.
	// pacedMu and pacedOver keep a note whose timer fired just as the
	// batch ended from writing after this function returned (Stop does not
	// wait for a callback already running).
	var (
		paced     *time.Timer
		pacedMu   sync.Mutex
		pacedOver bool
	)
	defer func() {
		pacedMu.Lock()
		pacedOver = true
		pacedMu.Unlock()
		if paced != nil {
			paced.Stop()
		}
	}()
	beforeChunk := func(seq int, ids []string) error {
		queued[seq] = time.Now()
		n, every := len(ids), time.Duration(float64(time.Second)/j.Rate)
		paced = time.AfterFunc(env.NoteAfter, func() {
			pacedMu.Lock()
			defer pacedMu.Unlock()
			if pacedOver {
				return
			}
			msg := fmt.Sprintf("the next request (%s) waits for its turn at the rate limit (--rate %g: one request every %s)", words.Count(n, "ID"), j.Rate, words.Duration(every))
			// Until the turn is expected: a turn that comes while this is
			// being said must not leave it on the line.
			env.WaitNote(msg, msg, time.Now().Add(every), slog.LevelDebug)
		})
		return nil
	}
	beforeSend := func(seq int, ids []string) error {
		if paced != nil && !paced.Stop() {
			env.Progress.EndWait()
		}
		n := jr.State().NextChunk()
		if err := record(journal.Record{State: journal.Sending, Chunk: n, IDs: ids}); err != nil {
			return err
		}
		chunkOf[seq], last = n, seq
		waited := time.Since(queued[seq])
		env.Progress.Sent()
		env.Logger.Debug("sending", "command", j.Command, "request", n, "ids", len(ids), "paced", waited.Round(time.Millisecond))
		return nil
	}
	onChunk := func(t mpgdpr.BatchTask) error {
		ended[t.Seq] = true
		if err := record(journal.Record{State: journal.Accepted, Chunk: chunkOf[t.Seq], TaskID: t.TaskID}); err != nil {
			jerr = fmt.Errorf("task %s was filed for request %d but could not be recorded: %w", t.TaskID, chunkOf[t.Seq], err)
			return err
		}
		env.Progress.Filed()
		env.Logger.Info("filed", "command", j.Command, "request", chunkOf[t.Seq], "ids", len(t.DistinctIDs), "task", t.TaskID)
		return nil
	}
	onUnknown := func(seq int, ids []string, err error) error {
		ended[seq] = true
		msg := env.Redact(err.Error())
		if err := record(journal.Record{State: journal.Unknown, Chunk: chunkOf[seq], Error: msg}); err != nil {
			return err
		}
		what := "its IDs are reported as unknown; the other IDs are filed"
		if j.Kind.Resubmittable() {
			what = "filing its IDs again: a 409 will name the task if it was filed"
		}
		env.Note("%s: request %d's outcome is unknown (%s); %s", j.Command, chunkOf[seq], env.Redact(mpgdpr.Unprefixed(err).Error()), what)
		return nil
	}
	onConflict := func(cf mpgdpr.Conflict) error {
		ended[cf.Seq] = true
		if err := record(journal.Record{State: journal.Conflict, Chunk: chunkOf[cf.Seq], IDs: cf.DistinctIDs, TaskIDs: cf.TaskIDs}); err != nil {
			return err
		}
		what := "following those tasks"
		if j.Kind != mpgdpr.Deletion {
			what = "those IDs are not retrieved"
		}
		env.Note("%s: request %d: 409: a deletion is already running for %s (%s %s): %s; filing the others",
			j.Command, chunkOf[cf.Seq], words.Count(len(cf.DistinctIDs), "ID"), words.Noun(len(cf.TaskIDs), "task"), strings.Join(cf.TaskIDs, ", "), what)
		return nil
	}
	opts := []mpgdpr.BatchOption{
		mpgdpr.WithChunkSize(j.ChunkSize),
		mpgdpr.WithBeforeChunk(beforeChunk),
		mpgdpr.WithBeforeSend(beforeSend),
		mpgdpr.WithOnChunk(onChunk),
		mpgdpr.WithOnUnknown(onUnknown),
		mpgdpr.WithOnConflict(onConflict),
	}
	res, err := j.Client.CreateAll(ctx, j.Kind, pending, j.Compliance, j.Disclosure, opts...)
	if err != nil && last != 0 && !ended[last] && jerr == nil {
		// The batch stopped at a request that went out and has no outcome
		// recorded: the answer proved it was not acted on (a 4xx, a 503
		// with Retry-After), or the batch says it may have been.
		state := journal.Unsent
		if len(res.Unknown) > 0 {
			state = journal.Unknown
		}
		_ = record(journal.Record{State: state, Chunk: chunkOf[last], Error: env.Redact(err.Error())})
	}
	if jerr != nil {
		return res, &journalError{jerr}
	}
	return res, err
}
