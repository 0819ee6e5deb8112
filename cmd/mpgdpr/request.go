package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/words"
	"github.com/privacykit/mpgdpr/worker"
)

const requestLong = `Enqueue a data-subject request for the worker (mpgdpr worker), or show one.
A request names a reference (your ticket id: enqueuing it again is a no-op,
and the same reference with other IDs is refused), the people's distinct
IDs (arguments, or --file with the same checks as delete), and the projects
(--project, repeatable, or --all-projects). Nothing is sent to Mixpanel
here: the worker files it, batched with others.
`

type requestOpts struct {
	wf         workerFlags
	ref        string
	projects   []string
	all        bool
	compliance string
	disclosure string
	file       string
	csvColumn  string
	trimSpace  bool
	stripBOM   bool
	receivedAt string
	jsonOut    bool
}

func newRequestCmd(cl *cli) *cobra.Command {
	c := &cobra.Command{
		Use:   "request delete|retrieve|status|cancel|list",
		Short: "Enqueue a request for the worker, or show one",
		Long:  requestLong,
	}
	c.AddCommand(newRequestEnqueueCmd(cl, worker.Deletion), newRequestEnqueueCmd(cl, worker.Retrieval), newRequestStatusCmd(cl),
		newRequestCancelCmd(cl, nil), newRequestListCmd(cl, nil))
	return c
}

func newRequestEnqueueCmd(cl *cli, kind worker.Kind) *cobra.Command {
	name := "delete"
	if kind == worker.Retrieval {
		name = "retrieve"
	}
	o := &requestOpts{}
	c := &cobra.Command{
		Use:   name + " --config FILE --ref REF --compliance GDPR|CCPA (--project NAME... | --all-projects) [ID...]",
		Short: "Enqueue a " + string(kind) + " request",
		Args:  cobra.ArbitraryArgs,
	}
	fs := c.Flags()
	addWorkerFlags(fs, &o.wf)
	fs.StringVar(&o.ref, "ref", "", "your reference for the request (e.g. the DSR ticket id), required")
	fs.StringArrayVar(&o.projects, "project", nil, "a configured project (repeat for several)")
	fs.BoolVar(&o.all, "all-projects", false, "every configured project")
	fs.StringVar(&o.compliance, "compliance", "", "GDPR or CCPA, required")
	if kind == worker.Retrieval {
		fs.StringVar(&o.disclosure, "disclosure", "", "CCPA only: Data, Categories or Sources")
	}
	fs.StringVar(&o.file, "file", "", "read IDs from this file, one per line ('-' for stdin)")
	fs.StringVar(&o.csvColumn, "csv-column", "", "read IDs from this CSV column of --file")
	fs.BoolVar(&o.trimSpace, "trim-space", false, "strip spaces around each ID instead of refusing them")
	fs.BoolVar(&o.stripBOM, "strip-bom", true, "drop a byte order mark at the start of --file")
	fs.StringVar(&o.receivedAt, "received-at", "", "when the request was received (RFC 3339; default now)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the result as JSON")
	cmd := "request " + name
	c.RunE = cl.exits(func(ctx context.Context, _ *cobra.Command, args []string) int {
		if o.ref == "" {
			return cl.fail(cmd, exitUsage, usagef("--ref is required"))
		}
		if o.compliance == "" {
			return cl.fail(cmd, exitUsage, usagef("--compliance is required: GDPR or CCPA"))
		}
		ct, err := mpgdpr.ParseComplianceType(o.compliance)
		if err != nil {
			return cl.fail(cmd, exitUsage, &usageError{err.Error()})
		}
		var received time.Time
		if o.receivedAt != "" {
			if received, err = time.Parse(time.RFC3339, o.receivedAt); err != nil {
				return cl.fail(cmd, exitUsage, usagef("--received-at: not RFC 3339"))
			}
		}
		list, err := readIDs(idInput{args: args, file: o.file, csvColumn: o.csvColumn, trimSpace: o.trimSpace, stripBOM: o.stripBOM}, cl.stdin)
		if err != nil {
			return cl.fail(cmd, exitUsage, err)
		}
		svc, closeDB, err := cl.openIntake(ctx, &o.wf)
		if err != nil {
			return cl.fail(cmd, exitFor(err), err)
		}
		defer closeDB()
		res, err := svc.Enqueue(ctx, worker.Request{
			Reference: o.ref, Kind: kind, ComplianceType: ct, DisclosureType: mpgdpr.DisclosureType(o.disclosure),
			DistinctIDs: list.ids, Projects: o.projects, AllProjects: o.all, ReceivedAt: received,
		})
		switch {
		case errors.Is(err, worker.ErrInvalidRequest), errors.Is(err, worker.ErrConflictingRequest):
			return cl.fail(cmd, exitUsage, &usageError{err.Error()})
		case err != nil:
			return cl.fail(cmd, exitLocal, err)
		}
		if o.jsonOut {
			cl.jsonLine(res)
			return exitOK
		}
		what := "enqueued"
		if res.Duplicate {
			what = "already enqueued (same request): nothing added"
		}
		fmt.Fprintf(cl.stdout, "%s %s: %s for %v\n", res.Reference, what, words.Count(len(list.ids), "ID"), res.Projects)
		return exitOK
	})
	return c
}

func newRequestStatusCmd(cl *cli) *cobra.Command {
	o := &workerFlags{}
	var events, asJSON bool
	c := &cobra.Command{
		Use:   "status --config FILE REF",
		Short: "Show a request's items per project, their tasks and (with --events) every recorded change",
		Args:  cobra.ExactArgs(1),
	}
	addWorkerFlags(c.Flags(), o)
	c.Flags().BoolVar(&events, "events", false, "list every recorded change with its time")
	c.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	c.RunE = cl.exits(func(ctx context.Context, _ *cobra.Command, args []string) int {
		svc, closeDB, err := cl.openIntake(ctx, o)
		if err != nil {
			return cl.fail("request status", exitFor(err), err)
		}
		defer closeDB()
		var sopts []worker.StatusOption
		if events || asJSON { // the JSON has always held the events
			sopts = append(sopts, worker.WithEvents())
		}
		rs, err := svc.RequestStatus(ctx, args[0], sopts...)
		if errors.Is(err, worker.ErrUnknownReference) {
			return cl.fail("request status", exitUsage, &usageError{fmt.Sprintf("no request %q", args[0])})
		}
		if err != nil {
			return cl.fail("request status", exitLocal, err)
		}
		if asJSON {
			cl.jsonLine(rs)
			return exitOK
		}
		extended := ""
		if rs.Extended {
			extended = ", extended"
		}
		fmt.Fprintf(cl.stdout, "%s: %s %s %s, received %s, due %s (%s%s)\n", rs.Reference, rs.State, rs.ComplianceType, rs.Kind,
			rs.ReceivedAt.Format(time.RFC3339), orDash(rs.Due), orDash(rs.DeadlineState), extended)
		var rows [][]string
		code := exitOK
		for _, it := range rs.Items {
			tasks := ""
			for i, t := range it.Tasks {
				if i > 0 {
					tasks += " "
				}
				tasks += t.TaskID + ":" + orDash(t.Status)
			}
			rows = append(rows, []string{it.Project, it.State, orDash(tasks), orDash(it.Detail)})
			if it.State == worker.StateFailed || it.State == worker.StateUnknown {
				code = exitIncomplete
			}
		}
		cl.table([]string{"PROJECT", "STATE", "TASKS", "DETAIL"}, rows)
		if events {
			for _, it := range rs.Items {
				for _, e := range it.Events {
					fmt.Fprintf(cl.stdout, "%s  %-8s %-12s %s %s\n", e.At.Format(time.RFC3339Nano), it.Project, e.Event, orDash(e.TaskID), e.Detail)
				}
			}
		}
		return code
	})
	return c
}
