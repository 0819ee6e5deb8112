package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/export"
)

type checkOpts struct {
	api       apiFlags
	pollStart time.Duration
	pollMax   time.Duration
}

func (cl *cli) checkFlags(cmd string) (*flag.FlagSet, *checkOpts) {
	o := &checkOpts{}
	head := `Usage: mpgdpr status [flags] retrieval|deletion TASK_ID...

Show the status of retrieval or deletion tasks (Mixpanel keeps the two apart:
say which). A finished retrieval's download link is not shown, as anyone
holding it can fetch the export: use mpgdpr download.
`
	if cmd == "wait" {
		head = `Usage: mpgdpr wait [flags] retrieval|deletion TASK_ID...

Wait until every task has ended (SUCCESS, FAILURE, REVOKED or NOT_FOUND),
checking each with a growing interval (--poll-interval doubling up to
--poll-max). Exit 0 when all ended in SUCCESS, 4 when some did not.
`
	}
	fs := cl.newFlagSet(cmd, head)
	if cmd == "wait" {
		fs.DurationVar(&o.pollStart, "poll-interval", mpgdpr.DefaultPollStart, "first wait between two checks of a task; it doubles up to --poll-max")
		fs.DurationVar(&o.pollMax, "poll-max", mpgdpr.DefaultPollMax, "longest wait between two checks of a task")
	}
	cl.addAPIFlags(fs, &o.api)
	return fs, o
}

// parseKind reads the task kind argument of status and wait.
func parseKind(s string) (deletion bool, err error) {
	switch s {
	case "deletion", "deletions", "delete":
		return true, nil
	case "retrieval", "retrievals", "retrieve":
		return false, nil
	}
	return false, usagef("the first argument must say which kind of task: retrieval or deletion (got %q)", s)
}

func kindName(deletion bool) string {
	if deletion {
		return "deletion"
	}
	return "retrieval"
}

// cmdCheck is status and wait.
func (cl *cli) cmdCheck(ctx context.Context, cmd string, args []string) int {
	fs, o := cl.checkFlags(cmd)
	pos, code, done := cl.parseFlags(fs, args)
	if done {
		return code
	}
	if len(pos) < 2 {
		return cl.fail(cmd, exitUsage, usagef("want retrieval|deletion and at least one task id"))
	}
	deletion, err := parseKind(pos[0])
	if err != nil {
		return cl.fail(cmd, exitUsage, err)
	}
	if cmd == "wait" && (o.pollStart <= 0 || o.pollMax <= 0) {
		return cl.fail(cmd, exitUsage, usagef("--poll-interval and --poll-max must be positive"))
	}
	c, err := cl.client(&o.api)
	if err != nil {
		return cl.fail(cmd, exitFor(err), err)
	}
	ids := pos[1:]
	prog := newProgress(cl.rawStderr, o.api.progress, cmd)
	prog.tasksTotal.Store(int64(len(ids)))
	if cmd == "wait" {
		prog.start()
	}
	results := make([]*mpgdpr.Task, len(ids))
	errs := make([]error, len(ids))
	if cmd == "wait" {
		done := make(chan struct{})
		for i, id := range ids {
			go func() {
				defer func() { done <- struct{}{} }()
				results[i], errs[i] = cl.waitTask(ctx, c, deletion, id, [2]time.Duration{o.pollStart, o.pollMax}, prog)
				prog.tasksDone.Add(1)
			}()
		}
		for range ids {
			<-done
		}
	} else {
		for i, id := range ids {
			if deletion {
				results[i], errs[i] = c.CheckDeletion(ctx, id)
			} else {
				results[i], errs[i] = c.CheckRetrieval(ctx, id)
			}
		}
	}
	prog.finish()
	code = exitOK
	var rows [][]string
	for i, id := range ids {
		t, err := results[i], errs[i]
		if err != nil {
			code = worse(code, exitFor(err))
			if ctx.Err() != nil {
				code = worse(code, exitInterrupted)
			}
			fmt.Fprintf(cl.stderr, "mpgdpr %s: task %s: %s\n", cmd, id, trimLib(err))
			if o.api.json {
				cl.jsonLine(taskLine{Type: "error", Kind: kindName(deletion), TaskID: id, Error: trimLib(err)})
			}
			continue
		}
		if cmd == "wait" && !t.Status.Succeeded() {
			code = worse(code, exitIncomplete)
		}
		ready := !deletion && t.Status.Succeeded() && t.DownloadURL != ""
		n := t.DistinctIDCount
		if len(t.DistinctIDs) > 0 {
			n = len(t.DistinctIDs)
		}
		requested := ""
		if !t.DateRequested.IsZero() {
			requested = t.DateRequested.UTC().Format(time.RFC3339)
		}
		if o.api.json {
			cl.jsonLine(taskLine{Type: "task", Kind: kindName(deletion), TaskID: id, Status: string(t.Status),
				IDs: n, Requested: requested, ExportReady: ready})
			continue
		}
		export := ""
		if ready {
			export = "ready (mpgdpr download)"
		}
		rows = append(rows, []string{id, kindName(deletion), string(t.Status), countOrDash(n), orDash(requested), export})
	}
	if len(rows) > 0 {
		cl.table([]string{"TASK ID", "KIND", "STATUS", "IDS", "REQUESTED", "EXPORT"}, rows)
	}
	return code
}

type cancelOpts struct{ api apiFlags }

func (cl *cli) cancelFlags() (*flag.FlagSet, *cancelOpts) {
	o := &cancelOpts{}
	fs := cl.newFlagSet("cancel", `Usage: mpgdpr cancel [flags] TASK_ID...

Cancel deletion tasks that have not started (PENDING or STAGING); they end
REVOKED. Mixpanel answers 405 once a deletion has started: exit 4 then.
`)
	cl.addAPIFlags(fs, &o.api)
	return fs, o
}

func (cl *cli) cmdCancel(ctx context.Context, args []string) int {
	fs, o := cl.cancelFlags()
	ids, code, done := cl.parseFlags(fs, args)
	if done {
		return code
	}
	if len(ids) == 0 {
		return cl.fail("cancel", exitUsage, usagef("want at least one deletion task id"))
	}
	c, err := cl.client(&o.api)
	if err != nil {
		return cl.fail("cancel", exitFor(err), err)
	}
	code = exitOK
	var rows [][]string
	for _, id := range ids {
		err := c.CancelDeletion(ctx, id)
		result := "cancelled"
		switch {
		case err == nil:
		case errors.Is(err, mpgdpr.ErrCannotCancel):
			result = "not cancellable (started or ended)"
			code = worse(code, exitIncomplete)
		default:
			code = worse(code, exitFor(err))
			fmt.Fprintf(cl.stderr, "mpgdpr cancel: task %s: %s\n", id, trimLib(err))
			if o.api.json {
				cl.jsonLine(taskLine{Type: "error", Kind: "deletion", TaskID: id, Error: trimLib(err)})
			}
			continue
		}
		// Show where the task stands now: REVOKED, or why it could not be.
		status := ""
		if t, err := c.CheckDeletion(ctx, id); err == nil {
			status = string(t.Status)
		}
		if o.api.json {
			ok := result == "cancelled"
			cl.jsonLine(taskLine{Type: "cancel", Kind: "deletion", TaskID: id, Status: status, Cancelled: &ok})
			continue
		}
		rows = append(rows, []string{id, result, orDash(status)})
	}
	if len(rows) > 0 {
		cl.table([]string{"TASK ID", "RESULT", "STATUS"}, rows)
	}
	return code
}

type downloadOpts struct {
	api       apiFlags
	dir       string
	extract   bool
	wait      bool
	pollStart time.Duration
	pollMax   time.Duration
}

func (cl *cli) downloadFlags() (*flag.FlagSet, *downloadOpts) {
	o := &downloadOpts{}
	fs := cl.newFlagSet("download", `Usage: mpgdpr download [flags] TASK_ID...

Save finished retrievals' exports as DIR/TASK_ID.zip (mode 0600: they hold
personal data), fetched from the link Mixpanel gives, without credentials.
With the API secret (MIXPANEL_API_SECRET) each archive is opened and every
entry decrypted and checked; --extract also writes the files into
DIR/TASK_ID/. A task that has not finished is an error (exit 4) unless
--wait is given.
`)
	fs.StringVar(&o.dir, "dir", ".", "save exports in `DIR` (created 0700 if missing)")
	fs.BoolVar(&o.extract, "extract", false, "also extract each export into DIR/TASK_ID/ (needs the API secret)")
	fs.BoolVar(&o.wait, "wait", false, "wait for tasks that have not finished yet")
	fs.DurationVar(&o.pollStart, "poll-interval", mpgdpr.DefaultPollStart, "with --wait: first wait between two checks of a task; it doubles up to --poll-max")
	fs.DurationVar(&o.pollMax, "poll-max", mpgdpr.DefaultPollMax, "with --wait: longest wait between two checks of a task")
	cl.addAPIFlags(fs, &o.api)
	return fs, o
}

func (cl *cli) cmdDownload(ctx context.Context, args []string) int {
	fs, o := cl.downloadFlags()
	ids, code, done := cl.parseFlags(fs, args)
	if done {
		return code
	}
	if len(ids) == 0 {
		return cl.fail("download", exitUsage, usagef("want at least one retrieval task id"))
	}
	if o.pollStart <= 0 || o.pollMax <= 0 {
		return cl.fail("download", exitUsage, usagef("--poll-interval and --poll-max must be positive"))
	}
	c, err := cl.client(&o.api)
	if err != nil {
		return cl.fail("download", exitFor(err), err)
	}
	if o.extract && o.api.apiSecret == "" {
		return cl.fail("download", exitUsage, usagef("--extract needs the API secret: set %s (or pass --api-secret)", envAPISecret))
	}
	prog := newProgress(cl.rawStderr, o.api.progress, "download")
	code = exitOK
	var rows [][]string
	for _, id := range ids {
		var t *mpgdpr.Task
		var err error
		if o.wait {
			t, err = cl.waitTask(ctx, c, false, id, [2]time.Duration{o.pollStart, o.pollMax}, prog)
		} else {
			t, err = c.CheckRetrieval(ctx, id)
		}
		if err == nil && !t.Status.Succeeded() {
			err = fmt.Errorf("not ready: the task is %s", orDash(string(t.Status)))
			code = worse(code, exitIncomplete)
		} else if err != nil {
			code = worse(code, exitFor(err))
		}
		var s saved
		if err == nil {
			s, err = cl.saveExport(ctx, c, t, o.dir, o.api.apiSecret, o.extract)
			if err != nil {
				code = worse(code, s.code)
			}
		}
		if err != nil {
			fmt.Fprintf(cl.stderr, "mpgdpr download: task %s: %s\n", id, trimLib(err))
			if o.api.json {
				cl.jsonLine(taskLine{Type: "error", Kind: "retrieval", TaskID: id, Export: s.path, Error: trimLib(err)})
			}
			continue
		}
		if o.api.json {
			cl.jsonLine(taskLine{Type: "download", Kind: "retrieval", TaskID: id, Status: string(t.Status),
				Export: s.path, ExportBytes: s.bytes, ExportFiles: s.files})
			continue
		}
		rows = append(rows, []string{id, string(t.Status), s.path, strconv.FormatInt(s.bytes, 10), filesText(s)})
	}
	if len(rows) > 0 {
		cl.table([]string{"TASK ID", "STATUS", "EXPORT", "BYTES", "FILES"}, rows)
	}
	return code
}

// saved is an export written to disk.
type saved struct {
	path     string
	bytes    int64
	files    int  // entries verified (0 if it could not be opened)
	verified bool // every entry was decrypted and its CRC checked
	code     int  // the exit code of the error returned with it
}

func filesText(s saved) string {
	if !s.verified {
		return "not verified (no API secret)"
	}
	return strconv.Itoa(s.files) + " verified"
}

// saveExport downloads a finished retrieval's export into dir and, when it
// can, opens it and reads every entry, so that a wrong secret or a damaged
// archive is found now rather than when the data is needed.
func (cl *cli) saveExport(ctx context.Context, c *mpgdpr.Client, t *mpgdpr.Task, dir, secret string, extract bool) (saved, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return saved{code: exitLocal}, err
	}
	name := safeName(t.TrackingID)
	path := filepath.Join(dir, name+".zip")
	n, err := c.DownloadExportFile(ctx, t, path)
	if err != nil {
		code := exitAPI
		var pe *fs.PathError
		if errors.As(err, &pe) {
			code = exitLocal
		}
		return saved{code: code}, err
	}
	s := saved{path: path, bytes: n}
	a, err := export.OpenFile(path, secret)
	if errors.Is(err, export.ErrSecretRequired) {
		return s, nil // saved; verifying it needs the secret
	}
	if err != nil {
		s.code = exitIncomplete
		return s, fmt.Errorf("export saved as %s, but it cannot be opened: %w", path, err)
	}
	defer a.Close()
	err = a.Walk(func(fi export.FileInfo, _ io.Reader) error {
		if !fi.IsDir() {
			s.files++
		}
		return nil
	})
	if err != nil {
		s.code = exitIncomplete
		if errors.Is(err, export.ErrWrongSecret) {
			return s, fmt.Errorf("export saved as %s, but it does not decrypt with the API secret given (check %s)", path, envAPISecret)
		}
		return s, fmt.Errorf("export saved as %s, but it does not verify: %w", path, err)
	}
	s.verified = true
	if extract {
		if err := a.ExtractTo(filepath.Join(dir, name)); err != nil {
			s.code = exitLocal
			return s, fmt.Errorf("export saved as %s, but extracting it failed: %w", path, err)
		}
	}
	return s, nil
}

// trimLib drops the library's "mpgdpr: " prefix, which the command's own
// prefix already says.
func trimLib(err error) string {
	s := err.Error()
	if len(s) > 8 && s[:8] == "mpgdpr: " {
		return s[8:]
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func countOrDash(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}
