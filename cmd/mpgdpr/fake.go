package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/words"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// Environment variables of `mpgdpr fake`. They are not the MIXPANEL_*
// ones on purpose: a fake must never pick up real credentials by accident.
const (
	envFakeOAuthToken   = "MPGDPR_FAKE_OAUTH_TOKEN"
	envFakeProjectToken = "MPGDPR_FAKE_PROJECT_TOKEN"
	envFakeAPISecret    = "MPGDPR_FAKE_API_SECRET"
	envFakeControlToken = "MPGDPR_FAKE_CONTROL_TOKEN"
)

type fakeOpts struct {
	listen, downloadListen, downloadURL string
	allowRemote                         bool
	oauth, project, secret, control     string
	rate                                float64
	schedule                            string
	createStatus                        int
	createShape                         string
	linkField                           string
	maxRetrieval, maxDeletion           int
	projectID                           int64
	json, log                           bool
}

func newFakeCmd(cl *cli) *cobra.Command {
	o := &fakeOpts{}
	c := &cobra.Command{
		Use:   "fake [flags]",
		Short: "Serve the fake Mixpanel GDPR API, for tests in any language",
		Long: `Serve the fake Mixpanel GDPR/CCPA API of package mpgdprtest as a process, so
that tests written in any language (or a docker-compose service) can use it:
the five operations, every request and answer validated against
api/openapi.yaml (a violation is answered 400 and kept), tasks that move
along a schedule, 409 conflicts, 401/403 for wrong tokens, an optional rate
limit (429 with Retry-After), and encrypted exports on a second host.

The first line of stdout says where it serves (--json: one JSON object):
  api=http://127.0.0.1:PORT/api/app download=127.0.0.2:PORT control=http://127.0.0.1:PORT/_fake
Nothing else is printed on stdout. It runs until SIGINT or SIGTERM.

The control API under /_fake/ (JSON; docs/FAKE_SERVER.md, and its OpenAPI
document mpgdprtest/control.openapi.yaml) lists tasks, advances them, sets
their status, injects faults, shows and clears recorded requests and
contract violations, and resets everything. GET /_fake/violations answers
409 while any violation exists, so "curl -fsS .../_fake/violations" fails a
CI step.

It listens on loopback only, unless --allow-remote; then the control API
needs a control token (--control-token or $` + envFakeControlToken + `), sent as
"Authorization: Bearer TOKEN".

Tokens the fake accepts (test values by default, never printed):
  $` + envFakeOAuthToken + `    or --oauth-token    bearer token (default ` + mpgdprtest.DefaultOAuthToken + `)
  $` + envFakeProjectToken + `  or --project-token  token parameter (default ` + mpgdprtest.DefaultProjectToken + `)
  $` + envFakeAPISecret + `     or --api-secret     export password (default ` + mpgdprtest.DefaultAPISecret + `;
                                                    empty: unencrypted exports)
`,
		Example: `  mpgdpr fake --json                                  # a port of the system's choosing
  mpgdpr fake --listen 127.0.0.1:8080 --rate 1 --schedule manual
  mpgdpr fake --listen 0.0.0.0:8080 --allow-remote --download-listen 0.0.0.0:8081 \
      --download-url http://mixpanel-fake:8081       # docker-compose; needs $` + envFakeControlToken,
		Args: cobra.NoArgs,
	}
	fs := c.Flags()
	fs.StringVar(&o.listen, "listen", mpgdprtest.DefaultListen, "`ADDRESS` of the API and control API, host:port (port 0: the system chooses)")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow a --listen or --download-listen address beyond loopback (needs a control token)")
	fs.StringVar(&o.downloadListen, "download-listen", "", "`ADDRESS` of the export download host (default "+mpgdprtest.DefaultDownloadListen+" on loopback, else the --listen host on port 0)")
	fs.StringVar(&o.downloadURL, "download-url", "", "base `URL` of export links, when clients reach the download host by another name (e.g. http://fake:8081)")
	fs.StringVar(&o.control, "control-token", "", "token the control API requires (default $"+envFakeControlToken+"; required beyond loopback)")
	fs.StringVar(&o.oauth, "oauth-token", "", "the OAuth (bearer) token to accept (default $"+envFakeOAuthToken+", else a test value)")
	fs.StringVar(&o.project, "project-token", "", "the project token to accept (default $"+envFakeProjectToken+", else a test value)")
	fs.StringVar(&o.secret, "api-secret", "", "the API secret exports are encrypted with (default $"+envFakeAPISecret+", else a test value; \"\" for none)")
	fs.Float64Var(&o.rate, "rate", 0, "answer 429 with Retry-After above this many API requests per second (0: no limit; Mixpanel's is 1)")
	fs.StringVar(&o.schedule, "schedule", "step-per-poll", "how tasks advance: step-per-poll, manual (control API), or timed:PENDING,STAGING,STARTED durations, e.g. timed:1s,1s,2s")
	fs.IntVar(&o.createStatus, "create-status", 200, "status of a create's answer: 200 or 201 (both documented)")
	fs.StringVar(&o.createShape, "create-shape", "object", `shape of a create's answer: object ({"results":{"task_id":...}}) or array (of tasks)`)
	fs.StringVar(&o.linkField, "link-field", mpgdprtest.LinkDownloadURL, "task field carrying the export link: download_url, result or results")
	fs.IntVar(&o.maxRetrieval, "max-retrieval-ids", 0, "refuse (400) retrievals of more IDs than this (0: the document's 2000)")
	fs.IntVar(&o.maxDeletion, "max-deletion-ids", 0, "refuse (400) deletions of more IDs than this (0: the document's 1999)")
	fs.Int64Var(&o.projectID, "project-id", mpgdprtest.DefaultProjectID, "project_id shown in tasks")
	fs.BoolVar(&o.json, "json", false, "print the first line as a JSON object")
	fs.BoolVar(&o.log, "log", false, "log every request to stderr, one line each (no credential values)")
	c.RunE = cl.exits(func(ctx context.Context, cmd *cobra.Command, _ []string) int {
		return cl.cmdFake(ctx, cmd, o)
	})
	return c
}

// fakeReady is the first line of stdout with --json.
type fakeReady struct {
	APIURL       string `json:"api_url"`
	DownloadHost string `json:"download_host"`
	DownloadURL  string `json:"download_url"`
	ControlURL   string `json:"control_url"`
	PID          int    `json:"pid"`
}

// fakeOptions turns the flags into mpgdprtest options. Its errors are
// usage errors.
func (cl *cli) fakeOptions(cmd *cobra.Command, o *fakeOpts) ([]mpgdprtest.Option, error) {
	fromEnv := func(flag, val, env, def string) string {
		if cmd.Flags().Changed(flag) {
			cl.secrets.add(val)
			return val
		}
		if v, ok := cl.env[env]; ok {
			cl.secrets.add(v)
			return v
		}
		return def
	}
	oauth := fromEnv("oauth-token", o.oauth, envFakeOAuthToken, mpgdprtest.DefaultOAuthToken)
	project := fromEnv("project-token", o.project, envFakeProjectToken, mpgdprtest.DefaultProjectToken)
	secret := fromEnv("api-secret", o.secret, envFakeAPISecret, mpgdprtest.DefaultAPISecret)
	control := fromEnv("control-token", o.control, envFakeControlToken, "")
	if oauth == "" || project == "" {
		return nil, usagef("the OAuth and project tokens must not be empty")
	}
	for _, a := range []struct{ flag, addr string }{{"listen", o.listen}, {"download-listen", o.downloadListen}} {
		if a.addr != "" && !mpgdprtest.IsLoopback(a.addr) && !o.allowRemote {
			return nil, usagef("--%s %s is beyond loopback: add --allow-remote (and a control token) to serve other machines", a.flag, a.addr)
		}
	}
	if !mpgdprtest.IsLoopback(o.listen) && control == "" {
		return nil, usagef("--listen %s is beyond loopback: set $%s (or --control-token), or anyone who can reach the fake could drive it", o.listen, envFakeControlToken)
	}
	sched, err := mpgdprtest.ParseSchedule(o.schedule)
	if err != nil {
		return nil, usagef("--schedule: %s", strings.TrimPrefix(err.Error(), "mpgdprtest: "))
	}
	shape := mpgdprtest.CreateObject
	switch o.createShape {
	case "object":
	case "array":
		shape = mpgdprtest.CreateArray
	default:
		return nil, usagef("--create-shape %q: want object or array", o.createShape)
	}
	if o.createStatus != http.StatusOK && o.createStatus != http.StatusCreated {
		return nil, usagef("--create-status %d: want 200 or 201", o.createStatus)
	}
	switch o.linkField {
	case mpgdprtest.LinkDownloadURL, mpgdprtest.LinkResult, mpgdprtest.LinkResults:
	default:
		return nil, usagef("--link-field %q: want download_url, result or results", o.linkField)
	}
	if o.downloadURL != "" {
		u, err := url.Parse(o.downloadURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
			return nil, usagef("--download-url %q: want http://HOST[:PORT] (or https), with no path", o.downloadURL)
		}
	}
	if o.rate < 0 || o.maxRetrieval < 0 || o.maxDeletion < 0 {
		return nil, usagef("--rate, --max-retrieval-ids and --max-deletion-ids must not be negative")
	}
	opts := []mpgdprtest.Option{
		mpgdprtest.WithListen(o.listen),
		mpgdprtest.WithTokens(oauth, project),
		mpgdprtest.WithAPISecret(secret),
		mpgdprtest.WithRateLimit(o.rate),
		mpgdprtest.WithSchedule(sched),
		mpgdprtest.WithCreateResponse(o.createStatus, shape),
		mpgdprtest.WithLinkField(o.linkField),
		mpgdprtest.WithMaxIDs(o.maxRetrieval, o.maxDeletion),
		mpgdprtest.WithProjectID(o.projectID),
		mpgdprtest.WithControlToken(control), // mounts the control API; "" requires none
	}
	if o.downloadListen != "" {
		opts = append(opts, mpgdprtest.WithDownloadListen(o.downloadListen))
	}
	if o.downloadURL != "" {
		opts = append(opts, mpgdprtest.WithDownloadURL(o.downloadURL))
	}
	if o.log {
		var mu sync.Mutex
		opts = append(opts, mpgdprtest.WithRequestHook(func(r mpgdprtest.Request) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintln(cl.stderr, fakeLogLine(r))
		}))
	}
	return opts, nil
}

// fakeLogLine is one request of --log: what arrived of the credentials,
// never their values (the path has known ones replaced already).
func fakeLogLine(r mpgdprtest.Request) string {
	op := r.Op
	if op == "" {
		op = "-"
	}
	line := fmt.Sprintf("%s %s %s %s -> %d (bearer %s, token %s)", r.Time.UTC().Format("15:04:05.000"), op, r.Method, r.Path, r.Status, r.Bearer, r.ProjectToken)
	if r.Fault != "" {
		line += " fault=" + r.Fault
	}
	if r.Violation {
		line += " VIOLATION"
	}
	return line
}

func (cl *cli) cmdFake(ctx context.Context, cmd *cobra.Command, o *fakeOpts) int {
	opts, err := cl.fakeOptions(cmd, o)
	if err != nil {
		return cl.fail("fake", exitUsage, err)
	}
	if o.allowRemote && (!mpgdprtest.IsLoopback(o.listen) || (o.downloadListen != "" && !mpgdprtest.IsLoopback(o.downloadListen))) {
		fmt.Fprintln(cl.stderr, "warning: mpgdpr fake is listening beyond loopback: anyone who can reach it can call its API (with its test tokens); its control API requires the control token")
	}
	s, err := mpgdprtest.Start(opts...)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "mpgdprtest: ")
		return cl.fail("fake", exitLocal, errors.New(msg))
	}
	defer s.Close()
	if host := s.DownloadHost(); o.downloadURL == "" && (strings.HasPrefix(host, "0.0.0.0:") || strings.HasPrefix(host, "[::]:")) {
		fmt.Fprintf(cl.stderr, "warning: export links name %s; set --download-url to the name clients reach the download host by\n", host)
	}
	if o.json {
		cl.jsonLine(fakeReady{APIURL: s.URL(), DownloadHost: s.DownloadHost(), DownloadURL: s.DownloadURL(), ControlURL: s.ControlURL(), PID: os.Getpid()})
	} else {
		fmt.Fprintf(cl.stdout, "api=%s download=%s control=%s\n", s.URL(), s.DownloadHost(), s.ControlURL())
	}
	fmt.Fprintf(cl.stderr, "mpgdpr fake: serving the Mixpanel GDPR API at %s (schedule %s); SIGINT or SIGTERM stops it\n", s.URL(), o.schedule)
	<-ctx.Done()
	s.Close()
	fmt.Fprintf(cl.stderr, "mpgdpr fake: stopped after %s, %s; %s\n", words.Count(len(s.Requests()), "request"), words.Count(len(s.Tasks()), "task"), words.Count(len(s.Violations()), "contract violation"))
	return exitOK
}
