package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/journal"
)

// jobOpts are the flags of delete and retrieve.
type jobOpts struct {
	api             apiFlags
	compliance      string
	disclosure      string
	in              idInput
	journal         string
	chunkSize       int
	wait            bool
	pollStart       time.Duration
	pollMax         time.Duration
	download        string
	extract         bool
	resubmitUnknown bool
	dryRun          bool
	showIDs         bool
}

// addJobFlags defines the flags of delete or retrieve on fs.
func (cl *cli) addJobFlags(fs *pflag.FlagSet, cmd string) *jobOpts {
	o := &jobOpts{}
	fs.StringVar(&o.compliance, "compliance", "", "compliance type, required: GDPR or CCPA")
	if cmd == "retrieve" {
		fs.StringVar(&o.disclosure, "disclosure", "", "CCPA only: Data (Mixpanel's default), Categories or Sources")
		fs.StringVar(&o.download, "download", "", "save each finished retrieval's export in `DIR` as TASK_ID.zip (implies --wait)")
		fs.BoolVar(&o.extract, "extract", false, "with --download: also extract each export into DIR/TASK_ID/ (needs the API secret)")
		fs.BoolVar(&o.resubmitUnknown, "resubmit-unknown", false, "file again the IDs of requests whose outcome is unknown (may create a second export for them)")
	}
	fs.StringVar(&o.in.file, "file", "", "read IDs from `PATH`, one per line (- for stdin)")
	fs.StringVar(&o.in.csvColumn, "csv-column", "", "with --file: read IDs from this column of a CSV file with a header row")
	fs.BoolVar(&o.in.trimSpace, "trim-space", false, "remove spaces around IDs instead of refusing them")
	fs.BoolVar(&o.in.stripBOM, "strip-bom", true, "remove a UTF-8 byte order mark at the start of --file (said in a note); --strip-bom=false refuses it")
	fs.StringVar(&o.journal, "journal", "", "the job's journal `PATH` (default mpgdpr-"+cmd+"-<digest of the job>.journal.jsonl in the current directory)")
	fs.IntVar(&o.chunkSize, "chunk-size", 0, "IDs per request (default and maximum: "+strconv.Itoa(limitFor(cmd))+"; some projects allow fewer)")
	fs.BoolVar(&o.wait, "wait", false, "follow every task until it ends (SUCCESS, FAILURE, REVOKED or NOT_FOUND)")
	fs.DurationVar(&o.pollStart, "poll-interval", mpgdpr.DefaultPollStart, "with --wait: first wait between two checks of a task; it doubles up to --poll-max")
	fs.DurationVar(&o.pollMax, "poll-max", mpgdpr.DefaultPollMax, "with --wait: longest wait between two checks of a task")
	fs.BoolVar(&o.dryRun, "dry-run", false, "read and check the whole input, print the requests that would be sent (counts and sizes), send nothing")
	fs.BoolVar(&o.showIDs, "show-ids", false, "with --dry-run: also print each request's IDs (personal data)")
	cl.addAPIFlags(fs, &o.api)
	return o
}

// newJobCmd is delete or retrieve: the two share everything but a few
// flags and the words of their help.
func newJobCmd(cl *cli, cmd, use, short, long string) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.ArbitraryArgs,
	}
	o := cl.addJobFlags(c.Flags(), cmd)
	c.RunE = cl.exits(func(ctx context.Context, _ *cobra.Command, args []string) int {
		o.in.args = args
		j, err := cl.prepareJob(cmd, o)
		if err != nil {
			return cl.fail(cmd, exitFor(err), err)
		}
		if o.dryRun {
			return cl.dryRun(j, o.showIDs)
		}
		return cl.runJob(ctx, j).code
	})
	return c
}

func limitFor(cmd string) int {
	if cmd == "delete" {
		return mpgdpr.DefaultMaxDeletionIDs
	}
	return mpgdpr.DefaultMaxRetrievalIDs
}

const jobCommon = `
IDs come from the arguments, or from --file: one ID per line, or one column
of a CSV file (--csv-column NAME; the first row names the columns). IDs are
matched exactly: a blank line, an ID with spaces around it (unless
--trim-space), an ID holding an invisible or format character (zero-width
space, word joiner, bidirectional control, byte order mark, unassigned code
point: such an ID names no one) or a malformed CSV is an error naming the
line and the character, never the ID, and nothing is sent. CRLF line endings
are accepted; a UTF-8 byte order mark at the start of the file is removed,
with a note (--strip-bom=false refuses it). Repeated IDs are filed once. IDs
that begin with "-" go after "--".

IDs are sent in requests of at most --chunk-size, at most --rate requests per
second, with the library's retries where they are safe. --dry-run reads and
checks the whole input as a real run does, prints the requests it would send
(IDs and bytes per request; the IDs themselves only with --show-ids) and
sends nothing: no request, no journal.

Journal: the job is recorded in a journal of JSON lines (mode 0600: it
holds the IDs; it never holds a token): each request right before it goes
out (after its turn at the rate limit) and its task id after, each synced to
disk before going on, then each task's final status and each export saved.
Run the same command again (same IDs, same options, same journal) to resume
after an interruption, a crash or SIGKILL: requests already filed are never
filed again, unsent IDs are sent, tasks are followed to the end. A journal of
another job is refused, and so is a --journal that is not a regular file or
is far larger than a journal of this job could be (exit 1). A job whose
journal says it is complete files nothing: to file the same IDs again, use
another --journal.
`

const deleteHead = `Erase everything Mixpanel holds about people, by distinct_id. A deletion can
take Mixpanel up to 30 days; it can be cancelled (mpgdpr cancel) while it is
PENDING or STAGING.
` + jobCommon + `
A request whose outcome is unknown (a 5xx answer other than a 503 with
Retry-After, a connection that failed after it was sent, or a previous run
that stopped during it) is filed again, at once within the retry policy and
by the next run: if Mixpanel had filed it, it answers 409 naming the task
already covering those IDs, and that task is followed instead. The same
holds for IDs that already have a deletion running from elsewhere.
`

const retrieveHead = `Ask Mixpanel for everything it holds about people, by distinct_id. Each
request yields its own export, a zip archive encrypted with the project's
API secret; --download DIR saves each one as it is ready.
` + jobCommon + `
A request whose outcome is unknown (a 5xx answer other than a 503 with
Retry-After, a connection that failed after it was sent, or a previous run
that stopped during it) cannot be checked: Mixpanel lists no tasks. Its IDs
are reported as unknown (exit 4) and not filed again unless
--resubmit-unknown is given, which may create a second export for them.
`

// job is a validated delete or retrieve.
type job struct {
	cmd      string // delete or retrieve
	deletion bool
	ct       mpgdpr.ComplianceType
	dt       mpgdpr.DisclosureType
	ids      *idList
	c        *mpgdpr.Client
	chunk    int
	jpath    string
	wait     bool
	poll     [2]time.Duration
	dir      string
	extract  bool
	secret   string
	resubmit bool
	json     bool
	progress string
	rate     float64 // --rate
}

// parseJob reads a delete or retrieve command line, for the demo's steps.
// A nil job means the command ends now, with the exit code returned.
func (cl *cli) parseJob(cmd string, args []string) (*job, int) {
	fs := pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := cl.addJobFlags(fs, cmd)
	if err := fs.Parse(args); err != nil {
		return nil, cl.fail(cmd, exitUsage, &usageError{err.Error()})
	}
	o.in.args = fs.Args()
	j, err := cl.prepareJob(cmd, o)
	if err != nil {
		return nil, cl.fail(cmd, exitFor(err), err)
	}
	return j, exitOK
}

// prepareJob checks everything it can before anything is sent.
func (cl *cli) prepareJob(cmd string, o *jobOpts) (*job, error) {
	j := &job{cmd: cmd, deletion: cmd == "delete", wait: o.wait || o.download != "", dir: o.download,
		extract: o.extract, resubmit: o.resubmitUnknown, json: o.api.json, progress: o.api.progress, rate: o.api.rate,
		poll: [2]time.Duration{o.pollStart, o.pollMax}}
	if o.compliance == "" {
		return nil, usagef("--compliance is required: GDPR or CCPA")
	}
	ct, err := mpgdpr.ParseComplianceType(o.compliance)
	if err != nil {
		return nil, usagef("--compliance %q: want GDPR or CCPA", o.compliance)
	}
	j.ct = ct
	if o.disclosure != "" {
		if ct != mpgdpr.CCPA {
			return nil, usagef("--disclosure is for CCPA retrievals only; this is a %s retrieval", ct)
		}
		if j.dt, err = mpgdpr.ParseDisclosureType(o.disclosure); err != nil {
			return nil, usagef("--disclosure %q: want Data, Categories or Sources", o.disclosure)
		}
	}
	if o.extract && o.download == "" {
		return nil, usagef("--extract needs --download DIR")
	}
	if o.showIDs && !o.dryRun {
		return nil, usagef("--show-ids is for --dry-run only")
	}
	if o.chunkSize < 0 || o.chunkSize > limitFor(cmd) {
		return nil, usagef("--chunk-size %d: want 1 to %d IDs per request", o.chunkSize, limitFor(cmd))
	}
	if o.pollStart <= 0 || o.pollMax <= 0 {
		return nil, usagef("--poll-interval and --poll-max must be positive")
	}
	if j.c, err = cl.client(&o.api); err != nil {
		return nil, err
	}
	j.secret = o.api.apiSecret
	if o.extract && j.secret == "" {
		return nil, usagef("--extract needs the API secret: set %s (or pass --api-secret)", envAPISecret)
	}
	j.chunk = o.chunkSize
	if j.chunk == 0 {
		r, d := j.c.MaxIDsPerRequest()
		j.chunk = r
		if j.deletion {
			j.chunk = d
		}
	}
	if j.ids, err = readIDs(o.in, cl.stdin); err != nil {
		return nil, err
	}
	j.jpath = o.journal
	if j.jpath == "" {
		j.jpath = fmt.Sprintf("mpgdpr-%s-%s.journal.jsonl", cmd, j.header().Key())
	}
	return j, nil
}

func (j *job) header() journal.Header {
	return journal.Header{
		Command:    j.cmd,
		Compliance: string(j.ct),
		Disclosure: string(j.dt),
		API:        apiHost(j.c),
		IDs:        len(j.ids.ids),
		IDsSHA256:  journal.DigestIDs(j.ids.ids),
		ChunkSize:  j.chunk,
	}
}

func (j *job) kind() string {
	if j.deletion {
		return "deletion"
	}
	return "retrieval"
}

// jobResult is what a job ended with, for output and for the demo.
type jobResult struct {
	code    int
	journal string
	tasks   []journal.Task
	counts  idCounts
}

// idCounts accounts for every distinct ID of a job.
type idCounts struct {
	total, filed, covered, refused, unknown, unsent int
	unknownChunks                                   []int
}

// journalError is a failure to record the job: it stops the job at once.
type journalError struct{ err error }

func (e *journalError) Error() string { return e.err.Error() }
func (e *journalError) Unwrap() error { return e.err }

// runJob files the job's IDs, resuming from its journal, then follows its
// tasks if asked, and reports.
func (cl *cli) runJob(ctx context.Context, j *job) *jobResult {
	res := &jobResult{journal: j.jpath}
	jr, opened, err := journal.Open(j.jpath, j.header(), journal.MaxSize(len(j.ids.ids), j.ids.bytes))
	if err != nil {
		res.code = exitLocal
		if errors.Is(err, journal.ErrMismatch) {
			res.code = exitUsage
			err = fmt.Errorf("%w\nUse the original input and options to resume that job, or another --journal for a new one", err)
		}
		cl.fail(j.cmd, res.code, err)
		return res
	}
	defer jr.Close()
	st := jr.State()
	if j.ids.bomDropped {
		fmt.Fprintf(cl.stderr, "note: %s starts with a UTF-8 byte order mark: removed (it marks the encoding, it is no part of the first ID)\n", j.ids.source)
	}
	if j.ids.duplicates > 0 {
		fmt.Fprintf(cl.stderr, "note: %d repeated IDs in %s were dropped; each ID is filed once\n", j.ids.duplicates, j.ids.source)
	}
	if opened.DroppedTail {
		fmt.Fprintf(cl.stderr, "note: the journal's last line was cut short by a crash and was dropped (that is safe: see 'mpgdpr help %s')\n", j.cmd)
	}
	if opened.Resumed {
		c := j.count(st)
		fmt.Fprintf(cl.stderr, "journal: %s (resuming: %d of %d IDs filed in %d tasks)\n", j.jpath, c.filed+c.covered, c.total, len(j.followed(st)))
	} else {
		fmt.Fprintf(cl.stderr, "journal: %s (new)\n", j.jpath)
	}

	prog := cl.newProgress(j.progress, j.cmd, j.rate)
	prog.start()
	defer prog.finish()

	code, stopErr := cl.resume(jr, opened)
	if c := j.count(st); stopErr == nil && c.unknown > 0 {
		if j.deletion || j.resubmit {
			how := "if Mixpanel had filed them, its 409 names the task"
			if !j.deletion {
				how = "--resubmit-unknown: a second export may result"
			}
			fmt.Fprintf(cl.stderr, "note: %d IDs of requests %s have an unknown outcome: filing them again (%s)\n", c.unknown, joinInts(c.unknownChunks), how)
		} else {
			fmt.Fprintf(cl.stderr, "note: %d IDs of requests %s have an unknown outcome: not filed again without --resubmit-unknown\n", c.unknown, joinInts(c.unknownChunks))
		}
	}
	if stopErr == nil {
		code, stopErr = cl.submitAll(ctx, j, jr, prog)
	}
	if stopErr == nil && j.wait && ctx.Err() == nil {
		code = worse(code, cl.follow(ctx, j, jr, prog))
	}
	prog.finish()
	if stopErr != nil {
		cl.fail(j.cmd, code, stopErr)
	}
	if ctx.Err() != nil {
		code = worse(code, exitInterrupted)
		fmt.Fprintf(cl.stderr, "mpgdpr %s: interrupted; the journal is up to date: run the same command again to resume\n", j.cmd)
	}
	res.tasks = j.followed(st)
	res.counts = j.count(st)
	res.code = cl.report(j, res, code)
	return res
}

// resume turns the requests a previous run left in flight into unknown
// outcomes, so that the journal says what is known: Mixpanel may or may not
// have filed them.
func (cl *cli) resume(jr *journal.Journal, opened journal.Opened) (int, error) {
	if !opened.Resumed {
		return exitOK, nil
	}
	var inflight []int
	for _, c := range jr.State().Chunks() {
		if c.State == journal.Sending {
			inflight = append(inflight, c.N)
		}
	}
	if err := jr.Append(journal.Record{State: journal.Resumed}); err != nil {
		return exitLocal, err
	}
	for _, n := range inflight {
		err := jr.Append(journal.Record{State: journal.Unknown, Chunk: n,
			Error: "the previous run stopped while this request was in flight: Mixpanel may or may not have filed it"})
		if err != nil {
			return exitLocal, err
		}
	}
	return exitOK, nil
}

// pending lists, in input order, the IDs still to file. The IDs of requests
// whose outcome is unknown are filed again for a deletion (if Mixpanel had
// filed it, it answers 409 naming the task) but, for a retrieval, only when
// --resubmit-unknown says a second export is acceptable.
func (j *job) pending(st *journal.State) []string {
	var out []string
	for _, id := range j.ids.ids {
		s, _ := st.ID(id)
		switch s {
		case journal.IDUnsent:
			out = append(out, id)
		case journal.IDInFlight, journal.IDUnknown:
			if j.deletion || j.resubmit {
				out = append(out, id)
			}
		}
	}
	return out
}

// maxUnknownInARow stops a retrieval whose requests keep ending with an
// unknown outcome: the network or the service is failing, and going on
// would only pile up uncertainty. (A deletion's unknowns are settled by
// DeleteAll itself, within the retry policy; one it could not settle stops
// the job at once.)
const maxUnknownInARow = 3

// submitAll files every pending ID, through the library's batch helper,
// whose hooks let each request be journaled right before it goes on the
// wire and its outcome after.
func (cl *cli) submitAll(ctx context.Context, j *job, jr *journal.Journal, prog *progress) (int, error) {
	st := jr.State()
	unknownRun := 0
	left := -1
	for {
		pending := j.pending(st)
		if left >= 0 && len(pending) >= left {
			// A batch that ended without error accounts for every ID it
			// was given; sending the same IDs again would loop.
			return exitAPI, fmt.Errorf("%d IDs are still unfiled after a complete batch; stopping", len(pending))
		}
		done := 0
		for _, c := range st.Chunks() {
			if c.State == journal.Accepted {
				done++
			}
		}
		prog.chunksDone.Store(int64(done))
		prog.chunksTotal.Store(int64(done + (len(pending)+j.chunk-1)/j.chunk))
		if len(pending) == 0 {
			return exitOK, nil
		}
		res, err := cl.submit(ctx, j, jr, pending, prog)
		var je *journalError
		left = -1
		switch {
		case err == nil:
			left = len(pending)
			continue
		case errors.As(err, &je):
			return exitLocal, fmt.Errorf("%w\nStopped: the journal must be written before anything else is sent. Requests filed so far are in it", je.err)
		case ctx.Err() != nil:
			return exitInterrupted, nil
		case errors.Is(err, mpgdpr.ErrOutcomeUnknown) && j.deletion:
			// DeleteAll resubmitted the request for as long as its retry
			// policy allows: the service is not answering.
			return exitAPI, fmt.Errorf("%w\nThe IDs of unknown outcome are in the journal: run the same command again to file them (where Mixpanel had filed them, its 409 names the task)", err)
		case errors.Is(err, mpgdpr.ErrOutcomeUnknown):
			if len(res.Tasks) > 0 {
				unknownRun = 0
			}
			unknownRun++
			if unknownRun >= maxUnknownInARow {
				return exitAPI, fmt.Errorf("%d requests in a row ended with an unknown outcome; stopping: %w", unknownRun, err)
			}
			continue
		default:
			return exitFor(err), err
		}
	}
}

// submit runs one DeleteAll or RetrieveAll over pending, journaling each
// request: "sending" right before it goes on the wire (after its turn at
// the rate limiter, so that a job killed while waiting has recorded
// nothing for it), then its outcome. A failure to write the journal is a
// *journalError.
func (cl *cli) submit(ctx context.Context, j *job, jr *journal.Journal, pending []string, prog *progress) (*mpgdpr.BatchResult, error) {
	// The hooks run one at a time on the batch's goroutine.
	chunkOf := map[int]int{} // batch sequence number → journal request number
	ended := map[int]bool{}
	queued := map[int]time.Time{} // when each request started waiting for its turn
	last := 0
	var jerr error
	record := func(r journal.Record) error {
		if err := jr.Append(r); err != nil {
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
		n, every := len(ids), time.Duration(float64(time.Second)/j.rate)
		paced = time.AfterFunc(cl.noteAfter, func() {
			pacedMu.Lock()
			defer pacedMu.Unlock()
			if pacedOver {
				return
			}
			msg := fmt.Sprintf("the next request (%s) waits for its turn at the rate limit (--rate %g: one request every %s)", plural(n, "ID"), j.rate, roundDuration(every))
			// Until the turn is expected: a turn that comes while this is
			// being said must not leave it on the line.
			cl.waitNote(msg, msg, time.Now().Add(every), slog.LevelDebug)
		})
		return nil
	}
	beforeSend := func(seq int, ids []string) error {
		if paced != nil && !paced.Stop() {
			prog.clearWait()
		}
		n := jr.State().NextChunk()
		if err := record(journal.Record{State: journal.Sending, Chunk: n, IDs: ids}); err != nil {
			return err
		}
		chunkOf[seq], last = n, seq
		waited := time.Since(queued[seq])
		prog.requests.Add(1)
		cl.logger.Debug("sending", "command", j.cmd, "request", n, "ids", len(ids), "paced", waited.Round(time.Millisecond))
		return nil
	}
	onChunk := func(t mpgdpr.BatchTask) error {
		ended[t.Seq] = true
		if err := record(journal.Record{State: journal.Accepted, Chunk: chunkOf[t.Seq], TaskID: t.TaskID}); err != nil {
			jerr = fmt.Errorf("task %s was filed for request %d but could not be recorded: %w", t.TaskID, chunkOf[t.Seq], err)
			return err
		}
		prog.chunksDone.Add(1)
		cl.logger.Info("filed", "command", j.cmd, "request", chunkOf[t.Seq], "ids", len(t.DistinctIDs), "task", t.TaskID)
		return nil
	}
	onUnknown := func(seq int, ids []string, err error) error {
		ended[seq] = true
		msg := string(cl.secrets.redact([]byte(err.Error())))
		if err := record(journal.Record{State: journal.Unknown, Chunk: chunkOf[seq], Error: msg}); err != nil {
			return err
		}
		what := "its IDs are reported as unknown; the other IDs are filed"
		if j.deletion {
			what = "filing its IDs again: a 409 will name the task if it was filed"
		}
		prog.note(cl.stderr, "%s: request %d's outcome is unknown (%s); %s", j.cmd, chunkOf[seq], trimLibMsg(msg), what)
		return nil
	}
	onConflict := func(cf mpgdpr.Conflict) error {
		ended[cf.Seq] = true
		if err := record(journal.Record{State: journal.Conflict, Chunk: chunkOf[cf.Seq], IDs: cf.DistinctIDs, TaskIDs: cf.TaskIDs}); err != nil {
			return err
		}
		what := "following those tasks"
		if !j.deletion {
			what = "those IDs are not retrieved"
		}
		prog.note(cl.stderr, "%s: request %d: 409: %d IDs already have a deletion running (task %s): %s; filing the others",
			j.cmd, chunkOf[cf.Seq], len(cf.DistinctIDs), strings.Join(cf.TaskIDs, ", "), what)
		return nil
	}
	opts := []mpgdpr.BatchOption{
		mpgdpr.WithChunkSize(j.chunk),
		mpgdpr.WithBeforeChunk(beforeChunk),
		mpgdpr.WithBeforeSend(beforeSend),
		mpgdpr.WithOnChunk(onChunk),
		mpgdpr.WithOnUnknown(onUnknown),
		mpgdpr.WithOnConflict(onConflict),
	}
	var res *mpgdpr.BatchResult
	var err error
	if j.deletion {
		res, err = j.c.DeleteAll(ctx, pending, j.ct, opts...)
	} else {
		res, err = j.c.RetrieveAll(ctx, pending, j.ct, j.dt, opts...)
	}
	if err != nil && last != 0 && !ended[last] && jerr == nil {
		// The batch stopped at a request that went out and has no outcome
		// recorded: the answer proved it was not acted on (a 4xx, a 503
		// with Retry-After), or the batch says it may have been.
		state := journal.Unsent
		if len(res.Unknown) > 0 {
			state = journal.Unknown
		}
		_ = record(journal.Record{State: state, Chunk: chunkOf[last], Error: string(cl.secrets.redact([]byte(err.Error())))})
	}
	if jerr != nil {
		return res, &journalError{jerr}
	}
	return res, err
}

// followed lists the tasks the job follows: those it filed and, for a
// deletion, the running deletions a 409 named as covering its IDs.
func (j *job) followed(st *journal.State) []journal.Task {
	var out []journal.Task
	for _, t := range st.Tasks() {
		if t.Chunk == 0 && !j.deletion {
			continue // a retrieval's 409 names deletions: nothing to retrieve there
		}
		out = append(out, t)
	}
	return out
}

func (j *job) count(st *journal.State) idCounts {
	c := idCounts{total: len(j.ids.ids)}
	chunks := map[int]bool{}
	for _, id := range j.ids.ids {
		s, n := st.ID(id)
		switch s {
		case journal.IDAccepted:
			c.filed++
		case journal.IDConflict:
			if j.deletion {
				c.covered++
			} else {
				c.refused++
			}
		case journal.IDInFlight, journal.IDUnknown:
			c.unknown++
			if !chunks[n] {
				chunks[n] = true
				c.unknownChunks = append(c.unknownChunks, n)
			}
		default:
			c.unsent++
		}
	}
	sort.Ints(c.unknownChunks)
	return c
}

// follow waits for every task of the job that has not ended, all at once
// (the client's rate limiter spaces the checks), recording each end in the
// journal and, with --download, saving each finished export.
func (cl *cli) follow(ctx context.Context, j *job, jr *journal.Journal, prog *progress) int {
	tasks := j.followed(jr.State())
	prog.tasksTotal.Store(int64(len(tasks)))
	var mu sync.Mutex
	code := exitOK
	setCode := func(c int) {
		mu.Lock()
		code = worse(code, c)
		mu.Unlock()
	}
	dl := make(chan struct{}, 2) // exports downloaded at once
	var wg sync.WaitGroup
	var open []journal.Task
	for _, t := range tasks {
		if t.Status != "" {
			prog.setStatus(t.ID, t.Status)
		}
		needsDownload := !j.deletion && j.dir != "" && t.Status == string(mpgdpr.StatusSuccess) && !downloaded(t)
		if t.Status == "" || needsDownload {
			open = append(open, t)
		}
		if !j.deletion && j.dir != "" && (t.Status == "" || t.Status == string(mpgdpr.StatusSuccess)) {
			prog.exportsTotal.Add(1)
			if !needsDownload && t.Status != "" {
				prog.exportsDone.Add(1)
			}
		}
	}
	if n := len(open); n > 0 && !prog.on && j.poll[0] >= cl.noteAfter {
		// Without a progress line, say once what the coming silence is.
		prog.note(cl.stderr, "%s: waiting for %s to end: each is checked after %s, the wait doubling up to %s; Mixpanel takes minutes to days%s",
			j.cmd, plural(n, "task"), roundDuration(j.poll[0]), roundDuration(j.poll[1]), map[bool]string{true: " (up to 30 for a deletion)", false: ""}[j.deletion])
	}
	for _, t := range open {
		wg.Add(1)
		go func() {
			defer wg.Done()
			task, err := cl.waitTask(ctx, j.c, j.deletion, t.ID, j.poll, prog)
			if err != nil {
				if ctx.Err() == nil {
					prog.note(cl.stderr, "mpgdpr %s: task %s: %v", j.cmd, t.ID, err)
				}
				setCode(exitFor(err))
				return
			}
			if t.Status == "" {
				if err := jr.Append(journal.Record{State: journal.Finished, TaskID: t.ID, Status: string(task.Status)}); err != nil {
					prog.note(cl.stderr, "mpgdpr %s: %v", j.cmd, err)
					setCode(exitLocal)
					return
				}
			}
			if !j.deletion && j.dir != "" && !task.Status.Succeeded() {
				prog.exportsTotal.Add(-1) // no export to save
			}
			if j.deletion || j.dir == "" || !task.Status.Succeeded() {
				return
			}
			dl <- struct{}{}
			defer func() { <-dl }()
			d, err := cl.saveExport(ctx, j.c, task, j.dir, j.secret, j.extract)
			if d.path != "" {
				prog.exportsDone.Add(1)
			}
			if err != nil {
				prog.note(cl.stderr, "mpgdpr %s: task %s: %v", j.cmd, t.ID, err)
				setCode(d.code)
				if d.path == "" {
					return
				}
			}
			if err := jr.Append(journal.Record{State: journal.Downloaded, TaskID: t.ID, Path: d.path, Bytes: d.bytes, Files: d.files}); err != nil {
				prog.note(cl.stderr, "mpgdpr %s: %v", j.cmd, err)
				setCode(exitLocal)
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

// waitTask waits for one task to end, with the library's backoff.
func (cl *cli) waitTask(ctx context.Context, c *mpgdpr.Client, deletion bool, id string, poll [2]time.Duration, prog *progress) (*mpgdpr.Task, error) {
	kind := kindName(deletion)
	opts := []mpgdpr.WaitOption{
		mpgdpr.WithPollInterval(poll[0], poll[1]),
		mpgdpr.WithOnPoll(func(t *mpgdpr.Task) {
			prog.requests.Add(1)
			prog.setStatus(id, string(t.Status))
			cl.logger.Debug("checked", "kind", kind, "task", id, "status", string(t.Status))
			if t.Status.Terminal() {
				cl.logger.Info("task ended", "kind", kind, "task", id, "status", string(t.Status))
				if !prog.on && cl.logOn > slog.LevelInfo {
					prog.note(cl.stderr, "%s task %s ended: %s", kind, id, t.Status)
				}
			}
		}),
	}
	if deletion {
		return c.WaitDeletion(ctx, id, opts...)
	}
	return c.WaitRetrieval(ctx, id, opts...)
}

// report prints the job's tasks and what became of every ID, and returns
// the exit code: code (how the run went) or worse, as the outcome calls for.
func (cl *cli) report(j *job, res *jobResult, code int) int {
	c := res.counts
	statuses := map[string]int{}
	var rows [][]string
	for _, t := range res.tasks {
		status := t.Status
		if status == "" {
			status = "filed"
			if !j.wait {
				status = "filed (not followed)"
			}
		} else if status != string(mpgdpr.StatusSuccess) {
			code = worse(code, exitIncomplete)
		}
		statuses[status]++
		req, ids := strconv.Itoa(t.Chunk), strconv.Itoa(t.IDs)
		if t.Chunk == 0 {
			req, ids = "409", fmt.Sprintf("covers %d", t.Covering)
		}
		export := ""
		if t.Download != nil {
			export = t.Download.Path
			if t.Download.Files > 0 {
				export += fmt.Sprintf(" (%d files)", t.Download.Files)
			}
		}
		if j.json {
			cl.jsonLine(taskLine{Type: "task", Command: j.cmd, Kind: j.kind(), Request: t.Chunk, TaskID: t.ID,
				IDs: t.IDs, Covering: t.Covering, Status: t.Status, Export: pathOf(t.Download), ExportBytes: bytesOf(t.Download), ExportFiles: filesOf(t.Download)})
			continue
		}
		row := []string{req, t.ID, ids, status}
		if !j.deletion {
			row = append(row, orDash(export))
		}
		rows = append(rows, row)
	}
	if c.unknown > 0 || c.unsent > 0 || c.refused > 0 {
		code = worse(code, exitIncomplete)
	}
	if j.wait && len(res.tasks) > 0 && statuses["filed"] > 0 {
		code = worse(code, exitIncomplete)
	}
	if j.json {
		cl.jsonLine(summaryLine{Type: "summary", Command: j.cmd, Compliance: string(j.ct), Disclosure: string(j.dt),
			IDs: c.total, Duplicates: j.ids.duplicates, Filed: c.filed, Covered: c.covered, Refused: c.refused,
			Unknown: c.unknown, UnknownRequests: c.unknownChunks, Unsent: c.unsent, Tasks: len(res.tasks),
			Statuses: statuses, Journal: res.journal, Exit: code})
		return code
	}
	if len(rows) > 0 {
		header := []string{"REQUEST", "TASK ID", "IDS", "STATUS"}
		if !j.deletion {
			header = append(header, "EXPORT")
		}
		cl.table(header, rows)
	}
	var parts []string
	for s, n := range statuses {
		parts = append(parts, fmt.Sprintf("%d %s", n, s))
	}
	sort.Strings(parts)
	fmt.Fprintf(cl.stdout, "%s %s: %s: %d filed in %s", j.cmd, j.ct, plural(c.total, "ID"), c.filed, plural(len(res.tasks), "task"))
	if c.covered > 0 {
		fmt.Fprintf(cl.stdout, ", %d already covered by running deletions (409)", c.covered)
	}
	if len(parts) > 0 {
		fmt.Fprintf(cl.stdout, "; tasks: %s", strings.Join(parts, ", "))
	}
	fmt.Fprintln(cl.stdout)
	if c.refused > 0 {
		fmt.Fprintf(cl.stdout, "%d IDs refused with 409 (a deletion is running for them): not retrieved\n", c.refused)
	}
	if c.unknown > 0 {
		again := "Re-run with --resubmit-unknown to file them again (a second export may result)"
		if j.deletion {
			again = "Run the same command again to file them again (where Mixpanel had filed them, its 409 names the task)"
		}
		fmt.Fprintf(cl.stdout, "%d IDs in requests %s: outcome unknown, Mixpanel may or may not have filed them; they are in the journal. %s\n",
			c.unknown, joinInts(c.unknownChunks), again)
	}
	if c.unsent > 0 {
		fmt.Fprintf(cl.stdout, "%d IDs not sent yet: run the same command again to send them\n", c.unsent)
	}
	fmt.Fprintf(cl.stdout, "journal: %s\n", res.journal)
	return code
}

type taskLine struct {
	Type        string `json:"type"`
	Command     string `json:"command,omitempty"`
	Kind        string `json:"kind"`
	Request     int    `json:"request,omitempty"`
	TaskID      string `json:"task_id"`
	IDs         int    `json:"ids,omitempty"`
	Covering    int    `json:"covering,omitempty"`
	Status      string `json:"status,omitempty"`
	Export      string `json:"export,omitempty"`
	ExportBytes int64  `json:"export_bytes,omitempty"`
	ExportFiles int    `json:"export_files,omitempty"`
	ExportReady bool   `json:"export_ready,omitempty"`
	Requested   string `json:"requested,omitempty"`
	Cancelled   *bool  `json:"cancelled,omitempty"`
	Error       string `json:"error,omitempty"`
}

type summaryLine struct {
	Type            string         `json:"type"`
	Command         string         `json:"command"`
	Compliance      string         `json:"compliance"`
	Disclosure      string         `json:"disclosure,omitempty"`
	IDs             int            `json:"ids"`
	Duplicates      int            `json:"duplicates"`
	Filed           int            `json:"filed"`
	Covered         int            `json:"covered"`
	Refused         int            `json:"refused"`
	Unknown         int            `json:"unknown"`
	UnknownRequests []int          `json:"unknown_requests,omitempty"`
	Unsent          int            `json:"unsent"`
	Tasks           int            `json:"tasks"`
	Statuses        map[string]int `json:"statuses"`
	Journal         string         `json:"journal"`
	Exit            int            `json:"exit"`
}

func pathOf(r *journal.Record) string {
	if r == nil {
		return ""
	}
	return r.Path
}

func bytesOf(r *journal.Record) int64 {
	if r == nil {
		return 0
	}
	return r.Bytes
}

func filesOf(r *journal.Record) int {
	if r == nil {
		return 0
	}
	return r.Files
}

// plural is "1 task", "2 tasks".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// safeName turns a task id (the server's text) into a file name that
// cannot leave the download directory or hide.
func safeName(id string) string {
	ok := id != "" && len(id) <= 128 && id[0] != '.'
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			ok = false
			break
		}
	}
	if ok {
		return id
	}
	return "task-" + journal.DigestIDs([]string{id})[:16]
}
