package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/privacykit/mpgdpr"
)

type checkOpts struct {
	api       apiFlags
	pollStart time.Duration
	pollMax   time.Duration
}

const statusLong = `Show the status of retrieval or deletion tasks (Mixpanel keeps the two apart:
say which). A finished retrieval's download link is not shown, as anyone
holding it can fetch the export: use mpgdpr download.
`

const waitLong = `Wait until every task has ended (SUCCESS, FAILURE, REVOKED or NOT_FOUND),
checking each with a growing interval (--poll-interval doubling up to
--poll-max). Exit 0 when all ended in SUCCESS, 4 when some did not.
`

// newCheckCmd is status or wait; runF, if not nil, runs instead of
// cmdCheck with the options and arguments parsed (tests of the command
// line).
func newCheckCmd(cl *cli, cmd, short, long string, runF func(context.Context, string, *checkOpts, []string) int) *cobra.Command {
	c := &cobra.Command{
		Use:   cmd + " [flags] retrieval|deletion TASK_ID...",
		Short: short,
		Long:  long,
		Args:  cobra.ArbitraryArgs,
	}
	o := &checkOpts{}
	fs := c.Flags()
	if cmd == "wait" {
		fs.DurationVar(&o.pollStart, "poll-interval", mpgdpr.DefaultPollStart, "first wait between two checks of a task; it doubles up to --poll-max")
		fs.DurationVar(&o.pollMax, "poll-max", mpgdpr.DefaultPollMax, "longest wait between two checks of a task")
	}
	cl.addAPIFlags(fs, &o.api)
	if runF == nil {
		runF = cl.cmdCheck
	}
	c.RunE = cl.exits(func(ctx context.Context, _ *cobra.Command, pos []string) int {
		return runF(ctx, cmd, o, pos)
	})
	return c
}

func newStatusCmd(cl *cli, runF func(context.Context, string, *checkOpts, []string) int) *cobra.Command {
	return newCheckCmd(cl, "status", "Show tasks' status", statusLong, runF)
}

// parseKind reads the task kind argument of status and wait.
func parseKind(s string) (mpgdpr.Kind, error) {
	switch s {
	case "deletion", "deletions", "delete":
		return mpgdpr.Deletion, nil
	case "retrieval", "retrievals", "retrieve":
		return mpgdpr.Retrieval, nil
	}
	return "", usagef("the first argument must say which kind of task: retrieval or deletion (got %q)", s)
}

// cmdCheck is status and wait.
func (cl *cli) cmdCheck(ctx context.Context, cmd string, o *checkOpts, pos []string) int {
	if len(pos) < 2 {
		return cl.fail(cmd, exitUsage, usagef("want retrieval|deletion and at least one task id"))
	}
	kind, err := parseKind(pos[0])
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
	mode := o.api.progress
	if cmd == "status" {
		mode = "never" // one check per task: nothing to show progress of
	}
	prog := cl.newProgress(mode, cmd, o.api.rate)
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
				results[i], errs[i] = cl.waitTask(ctx, c, kind, id, [2]time.Duration{o.pollStart, o.pollMax}, prog)
			}()
		}
		for range ids {
			<-done
		}
	} else {
		for i, id := range ids {
			results[i], errs[i] = c.Check(ctx, kind, id)
		}
	}
	prog.finish()
	code := exitOK
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
				cl.jsonLine(taskLine{Type: "error", Kind: string(kind), TaskID: id, Error: trimLib(err)})
			}
			continue
		}
		if cmd == "wait" && !t.Status.Succeeded() {
			code = worse(code, exitIncomplete)
		}
		ready := kind == mpgdpr.Retrieval && t.Status.Succeeded() && t.DownloadURL != ""
		n := t.DistinctIDCount
		if len(t.DistinctIDs) > 0 {
			n = len(t.DistinctIDs)
		}
		requested := ""
		if !t.DateRequested.IsZero() {
			requested = t.DateRequested.UTC().Format(time.RFC3339)
		}
		if o.api.json {
			cl.jsonLine(taskLine{Type: "task", Kind: string(kind), TaskID: id, Status: string(t.Status),
				IDs: n, Requested: requested, ExportReady: ready})
			continue
		}
		export := ""
		if ready {
			export = "ready (mpgdpr download)"
		}
		rows = append(rows, []string{id, string(kind), string(t.Status), countOrDash(n), orDash(requested), export})
	}
	if len(rows) > 0 {
		cl.table([]string{"TASK ID", "KIND", "STATUS", "IDS", "REQUESTED", "EXPORT"}, rows)
	}
	return code
}
