package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/bulk"
	"github.com/privacykit/mpgdpr/export"
	"github.com/privacykit/mpgdpr/internal/exportfile"
)

type downloadOpts struct {
	api       apiFlags
	dir       string
	extract   bool
	wait      bool
	pollStart time.Duration
	pollMax   time.Duration
}

// newDownloadCmd is download; runF, if not nil, runs instead of
// cmdDownload with the options and task ids parsed (tests of the command
// line).
func newDownloadCmd(cl *cli, runF func(context.Context, *downloadOpts, []string) int) *cobra.Command {
	o := &downloadOpts{}
	c := &cobra.Command{
		Use:   "download [flags] TASK_ID...",
		Short: "Save finished retrievals' exports",
		Long: `Save finished retrievals' exports as DIR/TASK_ID.zip (mode 0600: they hold
personal data), fetched from the link Mixpanel gives, without credentials.
With the API secret (MIXPANEL_API_SECRET) each archive is opened and every
entry decrypted and checked; --extract also writes the files into
DIR/TASK_ID/. A task that has not finished is an error (exit 4) unless
--wait is given. An export that is saved but does not open, decrypt with
the API secret or verify is exit 4.
`,
		Args: cobra.ArbitraryArgs,
	}
	fs := c.Flags()
	fs.StringVar(&o.dir, "dir", ".", "save exports in `DIR` (created 0700 if missing)")
	fs.BoolVar(&o.extract, "extract", false, "also extract each export into DIR/TASK_ID/ (needs the API secret)")
	fs.BoolVar(&o.wait, "wait", false, "wait for tasks that have not finished yet")
	fs.DurationVar(&o.pollStart, "poll-interval", mpgdpr.DefaultPollStart, "with --wait: first wait between two checks of a task; it doubles up to --poll-max")
	fs.DurationVar(&o.pollMax, "poll-max", mpgdpr.DefaultPollMax, "with --wait: longest wait between two checks of a task")
	cl.addAPIFlags(fs, &o.api)
	if runF == nil {
		runF = cl.cmdDownload
	}
	c.RunE = cl.exits(func(ctx context.Context, _ *cobra.Command, ids []string) int {
		return runF(ctx, o, ids)
	})
	return c
}

func (cl *cli) cmdDownload(ctx context.Context, o *downloadOpts, ids []string) int {
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
	prog := cl.newProgress(o.api.progress, "download", o.api.rate)
	code := exitOK
	var rows [][]string
	for _, id := range ids {
		var t *mpgdpr.Task
		var err error
		if o.wait {
			t, err = cl.waitTask(ctx, c, mpgdpr.Retrieval, id, [2]time.Duration{o.pollStart, o.pollMax}, prog)
		} else {
			t, err = c.CheckRetrieval(ctx, id)
		}
		if err == nil && !t.Status.Succeeded() {
			err = fmt.Errorf("not ready: the task is %s", orDash(string(t.Status)))
			code = worse(code, exitIncomplete)
		} else if err != nil {
			code = worse(code, exitFor(err))
		}
		var s bulk.Saved
		if err == nil {
			s, err = cl.saveExport(ctx, c, t, o.dir, o.api.apiSecret, o.extract)
			if err != nil {
				code = worse(code, s.Code)
			}
		}
		if err != nil {
			fmt.Fprintf(cl.stderr, "mpgdpr download: task %s: %s\n", id, trimLib(err))
			if o.api.json {
				cl.jsonLine(taskLine{Type: "error", Kind: "retrieval", TaskID: id, Export: s.Path, Error: trimLib(err)})
			}
			continue
		}
		if o.api.json {
			cl.jsonLine(taskLine{Type: "download", Kind: "retrieval", TaskID: id, Status: string(t.Status),
				Export: s.Path, ExportBytes: s.Size, ExportFiles: s.Entries})
			continue
		}
		rows = append(rows, []string{id, string(t.Status), s.Path, strconv.FormatInt(s.Size, 10), filesText(s)})
	}
	if len(rows) > 0 {
		cl.table([]string{"TASK ID", "STATUS", "EXPORT", "BYTES", "FILES"}, rows)
	}
	return code
}

func filesText(s bulk.Saved) string {
	if !s.Verified {
		return "not verified (no API secret)"
	}
	return strconv.Itoa(s.Entries) + " verified"
}

// saveExport saves a finished retrieval's export with internal/exportfile
// (download, then open it and read every entry, so that a wrong secret or
// a damaged archive is found now rather than when the data is needed),
// and gives the exit code of its error.
func (cl *cli) saveExport(ctx context.Context, c *mpgdpr.Client, t *mpgdpr.Task, dir, secret string, extract bool) (bulk.Saved, error) {
	opts := []exportfile.Option{exportfile.AllowUnverified()}
	if extract {
		opts = append(opts, exportfile.Extract())
	}
	s, err := exportfile.Save(ctx, c, t, dir, secret, opts...)
	saved := bulk.Saved{Saved: s}
	var fe *exportfile.Error
	var pe *fs.PathError
	switch {
	case err == nil:
	case errors.As(err, &fe) && fe.Step == exportfile.StepExtract:
		saved.Code = exitLocal
	case errors.As(err, &fe) && errors.Is(err, export.ErrWrongSecret):
		saved.Code = exitIncomplete
		err = fmt.Errorf("%w (check %s)", err, envAPISecret)
	case errors.As(err, &fe):
		saved.Code = exitIncomplete // saved, but it does not open or verify
	case errors.As(err, &pe):
		saved.Code = exitLocal // nothing saved: the directory or the file
	default:
		saved.Code = exitAPI // nothing saved: the download failed
	}
	return saved, err
}
