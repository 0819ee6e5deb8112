package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// workerCheckOpts are `mpgdpr worker check`'s.
type workerCheckOpts struct {
	wf      workerFlags
	url     string
	timeout time.Duration
}

const workerCheckLong = `Check that the worker's database answers and its migrations (the worker's
and River's) are applied, opening it as the intake does (no Mixpanel
credential needed). With --url, also GET URL/readyz of a running
mpgdpr serve and want 200. Exit 0 when ready, 1 when not (why on stderr):
for container health checks.
`

func newWorkerCheckCmd(cl *cli, run func(context.Context, *workerCheckOpts) int) *cobra.Command {
	o := &workerCheckOpts{}
	c := &cobra.Command{
		Use:   "check --config FILE [--database URL] [--url http://ADDR]",
		Short: "Exit 0 if the worker's database is ready (and --url answers /readyz), 1 if not",
		Long:  workerCheckLong,
		Args:  cobra.NoArgs,
	}
	addWorkerFlags(c.Flags(), &o.wf)
	c.Flags().StringVar(&o.url, "url", "", "also GET this address's /readyz (e.g. http://127.0.0.1:8080)")
	c.Flags().DurationVar(&o.timeout, "timeout", 10*time.Second, "give up after this long")
	if run == nil {
		run = cl.runWorkerCheck
	}
	c.RunE = cl.exits(func(ctx context.Context, _ *cobra.Command, _ []string) int { return run(ctx, o) })
	return c
}

func (cl *cli) runWorkerCheck(ctx context.Context, o *workerCheckOpts) int {
	const cmd = "worker check"
	var target *url.URL
	if o.url != "" {
		u, err := url.Parse(o.url)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return cl.fail(cmd, exitUsage, usagef("--url: want http://HOST:PORT or https://HOST:PORT, without user info"))
		}
		u.Path = strings.TrimSuffix(u.Path, "/") + "/readyz"
		u.RawQuery, u.Fragment = "", ""
		target = u
	}
	if o.timeout <= 0 {
		return cl.fail(cmd, exitUsage, usagef("--timeout: want more than 0"))
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	svc, closeDB, err := cl.openIntake(ctx, &o.wf)
	if err != nil {
		return cl.fail(cmd, exitFor(err), err)
	}
	defer closeDB()
	if err := svc.Ready(ctx); err != nil {
		return cl.fail(cmd, exitLocal, err)
	}
	if target != nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
		if err != nil {
			return cl.fail(cmd, exitLocal, err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			// The error quotes the URL, which the caller gave: no secret in it.
			return cl.fail(cmd, exitLocal, fmt.Errorf("%s: %w", target.Redacted(), errorsUnwrapURL(err)))
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return cl.fail(cmd, exitLocal, fmt.Errorf("%s answered %s", target.Redacted(), resp.Status))
		}
	}
	fmt.Fprintln(cl.stdout, "ready")
	return exitOK
}

// errorsUnwrapURL drops net/http's *url.Error wrapper (which repeats the
// method and URL) from err.
func errorsUnwrapURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
