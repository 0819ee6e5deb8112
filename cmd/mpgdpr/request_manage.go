package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/privacykit/mpgdpr/worker"
)

// requestCancelOpts are `mpgdpr request cancel`'s.
type requestCancelOpts struct {
	wf      workerFlags
	ref     string
	jsonOut bool
}

const requestCancelLong = `Cancel a deletion request: its items still waiting to be filed are
cancelled at once and never filed; for those already filed, a running
worker (mpgdpr worker) asks Mixpanel to cancel their tasks, which Mixpanel
allows only until a task has started, and never for a task that also
carries another request's IDs. No Mixpanel credential is needed here.
Asking again changes nothing and shows where each item stands. A
retrieval, or a request already ended, cannot be cancelled (exit 2).
`

func newRequestCancelCmd(cl *cli, run func(context.Context, *requestCancelOpts) int) *cobra.Command {
	o := &requestCancelOpts{}
	c := &cobra.Command{
		Use:   "cancel --config FILE REF",
		Short: "Cancel a deletion request while Mixpanel allows it",
		Long:  requestCancelLong,
		Args:  cobra.ExactArgs(1),
	}
	addWorkerFlags(c.Flags(), &o.wf)
	c.Flags().BoolVar(&o.jsonOut, "json", false, "print the result as JSON")
	if run == nil {
		run = cl.runRequestCancel
	}
	c.RunE = cl.exits(func(ctx context.Context, _ *cobra.Command, args []string) int {
		o.ref = args[0]
		return run(ctx, o)
	})
	return c
}

func (cl *cli) runRequestCancel(ctx context.Context, o *requestCancelOpts) int {
	const cmd = "request cancel"
	svc, closeDB, err := cl.openIntake(ctx, &o.wf)
	if err != nil {
		return cl.fail(cmd, exitFor(err), err)
	}
	defer closeDB()
	res, err := svc.Cancel(ctx, o.ref)
	switch {
	case errors.Is(err, worker.ErrUnknownReference):
		return cl.fail(cmd, exitUsage, &usageError{fmt.Sprintf("no request %q", o.ref)})
	case errors.Is(err, worker.ErrNotCancellable):
		return cl.fail(cmd, exitUsage, &usageError{err.Error()})
	case err != nil:
		return cl.fail(cmd, exitLocal, err)
	}
	if o.jsonOut {
		cl.jsonLine(res)
		return exitOK
	}
	var rows [][]string
	for _, it := range res.Items {
		rows = append(rows, []string{it.Project, it.State, it.Outcome, orDash(it.Detail)})
	}
	cl.table([]string{"PROJECT", "STATE", "OUTCOME", "DETAIL"}, rows)
	return exitOK
}

// requestListOpts are `mpgdpr request list`'s.
type requestListOpts struct {
	wf      workerFlags
	state   string
	limit   int
	after   string
	jsonOut bool
}

func newRequestListCmd(cl *cli, run func(context.Context, *requestListOpts) int) *cobra.Command {
	o := &requestListOpts{}
	c := &cobra.Command{
		Use:   "list --config FILE [--state S] [--limit N] [--after CURSOR] [--json]",
		Short: "List requests, oldest first, a page at a time",
		Long: `List requests in the order they were enqueued, with their state and the
statutory deadline's last day. --state keeps one state (` + strings.Join(worker.RequestStates, ", ") + `);
when more follow, the last line gives the cursor for --after.
`,
		Args: cobra.NoArgs,
	}
	addWorkerFlags(c.Flags(), &o.wf)
	c.Flags().StringVar(&o.state, "state", "", "only requests in this state")
	c.Flags().IntVar(&o.limit, "limit", 50, "requests per page (1 to 500)")
	c.Flags().StringVar(&o.after, "after", "", "the cursor the page before gave")
	c.Flags().BoolVar(&o.jsonOut, "json", false, "print the page as one JSON object")
	if run == nil {
		run = cl.runRequestList
	}
	c.RunE = cl.exits(func(ctx context.Context, _ *cobra.Command, _ []string) int { return run(ctx, o) })
	return c
}

func (cl *cli) runRequestList(ctx context.Context, o *requestListOpts) int {
	const cmd = "request list"
	svc, closeDB, err := cl.openIntake(ctx, &o.wf)
	if err != nil {
		return cl.fail(cmd, exitFor(err), err)
	}
	defer closeDB()
	page, err := svc.ListRequests(ctx, worker.ListOptions{State: o.state, Limit: o.limit, After: o.after})
	switch {
	case errors.Is(err, worker.ErrInvalidRequest):
		return cl.fail(cmd, exitUsage, &usageError{err.Error()})
	case err != nil:
		return cl.fail(cmd, exitLocal, err)
	}
	if o.jsonOut {
		cl.jsonLine(page)
		return exitOK
	}
	var rows [][]string
	for _, r := range page.Requests {
		completed := "-"
		if r.CompletedAt != nil {
			completed = r.CompletedAt.Format(time.RFC3339)
		}
		rows = append(rows, []string{r.Reference, string(r.Kind), r.ComplianceType, r.State, strings.Join(r.Projects, ","),
			r.ReceivedAt.Format(time.RFC3339), completed, r.Due})
	}
	cl.table([]string{"REFERENCE", "KIND", "TYPE", "STATE", "PROJECTS", "RECEIVED", "COMPLETED", "DUE"}, rows)
	if page.Next != "" {
		fmt.Fprintf(cl.stdout, "more: --after %s\n", page.Next)
	}
	return exitOK
}
