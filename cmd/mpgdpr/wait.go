package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/privacykit/mpgdpr"
)

func newWaitCmd(cl *cli, runF func(context.Context, string, *checkOpts, []string) int) *cobra.Command {
	return newCheckCmd(cl, "wait", "Wait until tasks end", waitLong, runF)
}

// waitTask waits for one task to end, with the library's backoff.
func (cl *cli) waitTask(ctx context.Context, c *mpgdpr.Client, kind mpgdpr.Kind, id string, poll [2]time.Duration, prog *progress) (*mpgdpr.Task, error) {
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
	return c.Wait(ctx, kind, id, opts...)
}
