package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/bulk"
)

// delete and retrieve: the command line and its wiring. The engine that
// files, journals, resumes and follows is package bulk; the summary is
// job_summary.go, the help job_help.go, the dry run dryrun.go.

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
	fs.BoolVar(&o.in.verbatim, "verbatim-ids", false, "send IDs byte for byte, control and invisible characters (a tab) included: only for IDs that really hold one (a stray one names no one; see below)")
	fs.BoolVar(&o.in.stripBOM, "strip-bom", true, "remove a UTF-8 byte order mark at the start of --file (said in a note); --strip-bom=false refuses it")
	fs.StringVar(&o.journal, "journal", "", "the job's journal `PATH` (default mpgdpr-"+cmd+"-<digest of the job>.journal.jsonl in the current directory)")
	fs.IntVar(&o.chunkSize, "chunk-size", 0, "IDs per request (default and maximum: "+strconv.Itoa(kindOf(cmd).DefaultMaxIDs())+"; some projects allow fewer)")
	fs.BoolVar(&o.wait, "wait", false, "follow every task until it ends (SUCCESS, FAILURE, REVOKED or NOT_FOUND)")
	fs.DurationVar(&o.pollStart, "poll-interval", mpgdpr.DefaultPollStart, "with --wait: first wait between two checks of a task; it doubles up to --poll-max")
	fs.DurationVar(&o.pollMax, "poll-max", mpgdpr.DefaultPollMax, "with --wait: longest wait between two checks of a task")
	fs.BoolVar(&o.dryRun, "dry-run", false, "read and check the whole input, print the requests that would be sent (counts and sizes), send nothing")
	fs.BoolVar(&o.showIDs, "show-ids", false, "with --dry-run: also print each request's IDs (personal data)")
	cl.addAPIFlags(fs, &o.api)
	return o
}

// newJobCmd is delete or retrieve: the two share everything but a few
// flags and the words of their help. runF, if not nil, runs instead of
// the job with the options parsed (tests of the command line).
func newJobCmd(cl *cli, cmd, use, short, long string, runF func(context.Context, *jobOpts) int) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.ArbitraryArgs,
	}
	o := cl.addJobFlags(c.Flags(), cmd)
	if runF == nil {
		runF = func(ctx context.Context, o *jobOpts) int { return cl.jobCmd(ctx, cmd, o) }
	}
	c.RunE = cl.exits(func(ctx context.Context, _ *cobra.Command, args []string) int {
		o.in.args = args
		return runF(ctx, o)
	})
	return c
}

// jobCmd runs delete or retrieve as its options say.
func (cl *cli) jobCmd(ctx context.Context, cmd string, o *jobOpts) int {
	j, err := cl.prepareJob(cmd, o)
	if err != nil {
		return cl.fail(cmd, exitFor(err), err)
	}
	if o.dryRun {
		return cl.dryRun(j, o.showIDs)
	}
	return cl.runJob(ctx, j).Code
}

// kindOf is what the command files: deletions for delete, retrievals for
// retrieve.
func kindOf(cmd string) mpgdpr.Kind {
	if cmd == "delete" {
		return mpgdpr.Deletion
	}
	return mpgdpr.Retrieval
}

// job is a validated delete or retrieve: the engine's job, and how the
// command reads, saves and shows it.
type job struct {
	bulk.Job
	ids      *idList
	dir      string // --download
	extract  bool
	secret   string
	json     bool
	progress string
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
	j := &job{Job: bulk.Job{Command: cmd, Kind: kindOf(cmd), Wait: o.wait || o.download != "", Download: o.download != "",
		Resubmit: o.resubmitUnknown, Rate: o.api.rate, PollStart: o.pollStart, PollMax: o.pollMax},
		dir: o.download, extract: o.extract, json: o.api.json, progress: o.api.progress}
	if o.compliance == "" {
		return nil, usagef("--compliance is required: GDPR or CCPA")
	}
	ct, err := mpgdpr.ParseComplianceType(o.compliance)
	if err != nil {
		return nil, usagef("--compliance %q: want GDPR or CCPA", o.compliance)
	}
	j.Compliance = ct
	if o.disclosure != "" {
		if ct != mpgdpr.CCPA {
			return nil, usagef("--disclosure is for CCPA retrievals only; this is a %s retrieval", ct)
		}
		if j.Disclosure, err = mpgdpr.ParseDisclosureType(o.disclosure); err != nil {
			return nil, usagef("--disclosure %q: want Data, Categories or Sources", o.disclosure)
		}
	}
	if o.extract && o.download == "" {
		return nil, usagef("--extract needs --download DIR")
	}
	if o.showIDs && !o.dryRun {
		return nil, usagef("--show-ids is for --dry-run only")
	}
	if limit := j.Kind.DefaultMaxIDs(); o.chunkSize < 0 || o.chunkSize > limit {
		return nil, usagef("--chunk-size %d: want 1 to %d IDs per request", o.chunkSize, limit)
	}
	if o.pollStart <= 0 || o.pollMax <= 0 {
		return nil, usagef("--poll-interval and --poll-max must be positive")
	}
	// A dry run sends nothing: it needs no token.
	var extra []mpgdpr.Option
	if o.in.verbatim {
		extra = append(extra, mpgdpr.WithVerbatimDistinctIDs())
	}
	if j.Client, err = cl.newClient(&o.api, !o.dryRun, extra...); err != nil {
		return nil, err
	}
	j.secret = o.api.apiSecret
	if o.extract && j.secret == "" {
		return nil, usagef("--extract needs the API secret: set %s (or pass --api-secret)", envAPISecret)
	}
	j.ChunkSize = o.chunkSize
	if j.ChunkSize == 0 {
		r, d := j.Client.MaxIDsPerRequest()
		j.ChunkSize = r
		if j.Kind == mpgdpr.Deletion {
			j.ChunkSize = d
		}
	}
	if j.ids, err = readIDs(o.in, cl.stdin); err != nil {
		return nil, err
	}
	j.IDs, j.IDBytes = j.ids.ids, j.ids.bytes
	j.Journal = o.journal
	if j.Journal == "" {
		j.Journal = j.DefaultJournal()
	}
	return j, nil
}

// runJob runs the job with the engine, this command's notes, progress
// line, log and export saving, then prints its summary.
func (cl *cli) runJob(ctx context.Context, j *job) *bulk.Result {
	prog := cl.newProgress(j.progress, j.Command, j.Rate)
	env := bulk.Env{
		Note:      func(format string, a ...any) { prog.note(cl.stderr, format, a...) },
		WaitNote:  cl.waitNote,
		NoteAfter: cl.noteAfter,
		Progress:  bulkProgress{prog},
		Logger:    cl.logger,
		Redact:    cl.secrets.redactString,
		Wait: func(ctx context.Context, id string) (*mpgdpr.Task, error) {
			return cl.waitTask(ctx, j.Client, j.Kind, id, [2]time.Duration{j.PollStart, j.PollMax}, prog)
		},
		Save: func(ctx context.Context, t *mpgdpr.Task) (bulk.Saved, error) {
			return cl.saveExport(ctx, j.Client, t, j.dir, j.secret, j.extract)
		},
	}
	prog.start()
	res, err := bulk.Run(ctx, &j.Job, env, j.ids.notes()...)
	prog.finish()
	if err != nil {
		cl.fail(j.Command, res.Code, err)
		return res
	}
	if res.Stop != nil {
		cl.fail(j.Command, res.Code, res.Stop)
	}
	if ctx.Err() != nil {
		fmt.Fprintf(cl.stderr, "mpgdpr %s: interrupted; the journal is up to date: run the same command again to resume\n", j.Command)
	}
	res.Code = cl.summary(j, res)
	return res
}
