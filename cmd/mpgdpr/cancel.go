package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/privacykit/mpgdpr"
)

type cancelOpts struct{ api apiFlags }

// newCancelCmd is cancel; runF, if not nil, runs instead of cmdCancel with
// the options and task ids parsed (tests of the command line).
func newCancelCmd(cl *cli, runF func(context.Context, *cancelOpts, []string) int) *cobra.Command {
	o := &cancelOpts{}
	c := &cobra.Command{
		Use:   "cancel [flags] TASK_ID...",
		Short: "Cancel deletions not yet started",
		Long: `Cancel deletion tasks that have not started (PENDING or STAGING); they end
REVOKED. Mixpanel answers 405 once a deletion has started: exit 4 then. A
task already REVOKED is reported as "already cancelled" (exit 0) and not
sent a second cancel.
`,
		Args: cobra.ArbitraryArgs,
	}
	cl.addAPIFlags(c.Flags(), &o.api)
	if runF == nil {
		runF = cl.cmdCancel
	}
	c.RunE = cl.exits(func(ctx context.Context, _ *cobra.Command, ids []string) int {
		return runF(ctx, o, ids)
	})
	return c
}

func (cl *cli) cmdCancel(ctx context.Context, o *cancelOpts, ids []string) int {
	if len(ids) == 0 {
		return cl.fail("cancel", exitUsage, usagef("want at least one deletion task id"))
	}
	c, err := cl.client(&o.api)
	if err != nil {
		return cl.fail("cancel", exitFor(err), err)
	}
	code := exitOK
	var rows [][]string
	for _, id := range ids {
		// A task already REVOKED is said to be so, not cancelled again: the
		// library takes a 405 on a REVOKED task for a cancel whose answer
		// was lost, which would read "cancelled" a second time.
		// A cancel Mixpanel accepts ends the task REVOKED; one it refuses
		// is checked again, to show why (STARTED, SUCCESS, ...).
		result, status := "cancelled", string(mpgdpr.StatusRevoked)
		if t, err := c.CheckDeletion(ctx, id); err == nil && t.Status == mpgdpr.StatusRevoked {
			result = "already cancelled"
		} else if err := c.CancelDeletion(ctx, id); err != nil {
			if !errors.Is(err, mpgdpr.ErrCannotCancel) {
				code = worse(code, exitFor(err))
				fmt.Fprintf(cl.stderr, "mpgdpr cancel: task %s: %s\n", id, trimLib(err))
				if o.api.json {
					cl.jsonLine(taskLine{Type: "error", Kind: "deletion", TaskID: id, Error: trimLib(err)})
				}
				continue
			}
			result, status = "not cancellable (started or ended)", ""
			code = worse(code, exitIncomplete)
			if t, err := c.CheckDeletion(ctx, id); err == nil {
				status = string(t.Status)
			}
		}
		if o.api.json {
			ok := result != "not cancellable (started or ended)"
			cl.jsonLine(taskLine{Type: "cancel", Kind: "deletion", TaskID: id, Status: status, Cancelled: &ok, Result: result})
			continue
		}
		rows = append(rows, []string{id, result, orDash(status)})
	}
	if len(rows) > 0 {
		cl.table([]string{"TASK ID", "RESULT", "STATUS"}, rows)
	}
	return code
}
