package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/words"
	"github.com/privacykit/mpgdpr/worker"
)

const workerPurgeLong = `Replace the plain distinct IDs of every request that ended (each item done,
failed or unknown) at least --older-than ago (default: the config's
id_retention, 720h) by their keyed hash (HMAC-SHA-256 with the worker's ID
key), in every table; drop IDs left in River's job args; delete exports
downloaded at least --exports-older-than ago (default: export_retention),
recording each one's SHA-256. An open request is never purged. The worker
does this every hour by itself; this command does it now, beside running
workers or not, and says what it changed (counts, never an ID). Killed,
it is finished by the next run. With --dry-run it changes nothing.
`

func newWorkerPurgeCmd(cl *cli) *cobra.Command {
	o := &workerFlags{}
	var olderThan, exportsOlderThan time.Duration
	var dry, asJSON bool
	c := &cobra.Command{
		Use:   "purge --config FILE [--database URL] [--older-than D] [--exports-older-than D] [--dry-run] [--json]",
		Short: "Replace the IDs of ended requests by their keyed hash, delete old exports (retention)",
		Long:  workerPurgeLong,
		Args:  cobra.NoArgs,
	}
	addWorkerFlags(c.Flags(), o)
	c.Flags().DurationVar(&olderThan, "older-than", 0, "purge requests that ended at least this long ago (default: the config's id_retention)")
	c.Flags().DurationVar(&exportsOlderThan, "exports-older-than", 0, "delete exports downloaded at least this long ago (default: the config's export_retention)")
	c.Flags().BoolVar(&dry, "dry-run", false, "say what would change, change nothing")
	c.Flags().BoolVar(&asJSON, "json", false, "the counts as one JSON object")
	c.RunE = cl.exits(func(ctx context.Context, cmd *cobra.Command, _ []string) int {
		if olderThan < 0 || exportsOlderThan < 0 {
			return cl.fail("worker purge", exitUsage, usagef("--older-than and --exports-older-than take 0 or more"))
		}
		var opts []worker.PurgeOption
		if cmd.Flags().Changed("older-than") {
			opts = append(opts, worker.PurgeOlderThan(olderThan))
		}
		if cmd.Flags().Changed("exports-older-than") {
			opts = append(opts, worker.PurgeExportsOlderThan(exportsOlderThan))
		}
		if dry {
			opts = append(opts, worker.PurgeDryRun())
		}
		svc, closeDB, err := cl.openWorker(ctx, o)
		if err != nil {
			return cl.fail("worker purge", exitFor(err), err)
		}
		defer closeDB()
		res, err := svc.Purge(ctx, opts...)
		if res != nil {
			if asJSON {
				cl.jsonLine(res)
			} else {
				fmt.Fprintln(cl.stdout, purgeSummary(res))
			}
		}
		if err != nil {
			return cl.fail("worker purge", exitLocal, err)
		}
		return exitOK
	})
	return c
}

// purgeSummary says what a purge changed, in counts.
func purgeSummary(r *worker.PurgeResult) string {
	verb := "purged"
	if r.DryRun {
		verb = "dry run, nothing changed; would purge"
	}
	wait := "wait"
	if r.Waiting == 1 {
		wait = "waits"
	}
	return fmt.Sprintf("%s %s (%s replaced by their keyed hash, %s rewritten), the args of %s cleaned, %s deleted; %s %s for a batch still being filed",
		verb, words.Count(r.Requests, "ended request"), words.Count(r.IDs, "distinct ID"), words.Count(r.CreateRows, "create row"),
		words.Count(r.RiverJobs, "River job"), words.Count(r.Exports, "export"), words.Count(r.Waiting, "ended request"), wait)
}
