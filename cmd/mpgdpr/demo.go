package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/bulk"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/words"
	"github.com/privacykit/mpgdpr/export"
	"github.com/privacykit/mpgdpr/mpgdprtest"
)

// The demo's pace: the fake refuses more than demoServerRate requests a
// second (as Mixpanel refuses more than one), the client stays under it,
// and tasks end in under two seconds instead of days.
const (
	demoServerRate = 50
	demoClientRate = 40
	demoStep       = 200 * time.Millisecond
	// demoPending is longer than the other steps so that part 3's cancel,
	// sent right after its create, finds the task still PENDING even on a
	// loaded machine or a race-detector build (200ms was a narrow window).
	demoPending = time.Second
)

type demoOpts struct {
	n        int
	download string
	json     bool
	progress string
}

func newDemoCmd(cl *cli) *cobra.Command {
	o := &demoOpts{}
	c := &cobra.Command{
		Use:   "demo [flags]",
		Short: "Run a whole job on an embedded fake server",
		Long: `Run a whole job with no account and no network, against the fake Mixpanel
GDPR server embedded in this binary (package mpgdprtest: it holds Mixpanel's
contract, checks tokens, limits the request rate, moves tasks along and
serves encrypted exports from a second host). The same commands and code
run as against Mixpanel, only faster:

  1. retrieve N generated IDs in requests of 2000, follow every task to its
     end, download each export and open it with the API secret;
  2. delete the same IDs in requests of 1999 and follow every task;
  3. file a deletion by mistake and cancel it while it is still PENDING;
  4. run the durable worker (mpgdpr worker) on a stream of single-person
     requests (N/10 people, at most 300) for two projects in two regions
     (two fakes): batched, filed, followed to the end, exports checked.

Credentials in the environment are ignored: the fake's test values are used.
`,
		Args: cobra.ArbitraryArgs,
	}
	fs := c.Flags()
	fs.IntVar(&o.n, "ids", 10000, "how many IDs to generate (user-00001, user-00002, ...)")
	fs.StringVar(&o.download, "download", "", "keep the exports in `DIR` (default: a temporary directory, removed at the end)")
	fs.BoolVar(&o.json, "json", false, "print one JSON object per line (the story goes to stderr)")
	fs.StringVar(&o.progress, "progress", "auto", "progress line on stderr: auto (when stderr is a terminal), always or never")
	c.RunE = cl.exits(func(ctx context.Context, _ *cobra.Command, pos []string) int {
		return cl.cmdDemo(ctx, o, pos)
	})
	return c
}

func (cl *cli) cmdDemo(ctx context.Context, o *demoOpts, pos []string) int {
	if len(pos) > 0 {
		return cl.fail("demo", exitUsage, usagef("demo takes no arguments"))
	}
	if o.n < 1 || o.n > 1_000_000 {
		return cl.fail("demo", exitUsage, usagef("--ids %d: want 1 to 1000000", o.n))
	}
	start := time.Now()
	work, err := os.MkdirTemp("", "mpgdpr-demo-*")
	if err != nil {
		return cl.fail("demo", exitLocal, err)
	}
	defer os.RemoveAll(work)
	exports := o.download
	if exports == "" {
		exports = filepath.Join(work, "exports")
	}

	srv := mpgdprtest.NewServer(
		mpgdprtest.WithRateLimit(demoServerRate),
		mpgdprtest.WithSchedule(mpgdprtest.Timed(demoPending, demoStep, demoStep)),
		mpgdprtest.WithAPISecret(mpgdprtest.DefaultAPISecret),
	)
	defer srv.Close()

	// The story goes where the results do not: stdout for a table, stderr
	// when stdout carries JSON.
	story := cl.stdout
	if o.json {
		story = cl.stderr
	}
	say := func(format string, a ...any) { fmt.Fprintf(story, format+"\n", a...) }

	// The steps run as sub-commands of a cli whose environment holds the
	// fake's credentials, exactly as a user's would hold real ones.
	env := map[string]string{}
	for k, v := range cl.env {
		env[k] = v
	}
	env[envToken], env[envProjectToken], env[envAPISecret] = srv.OAuthToken(), srv.ProjectToken(), srv.APISecret()
	delete(env, envRegion)
	sub := &cli{stdin: cl.stdin, stdout: cl.stdout, stderr: cl.stderr, rawStderr: cl.rawStderr, env: env, secrets: cl.secrets,
		verbose: cl.verbose, limiter: rate.NewLimiter(demoClientRate, 1)}
	if err := sub.setupLogging(); err != nil {
		return cl.fail("demo", exitUsage, err)
	}
	common := []string{"--base-url", srv.URL(), "--rate", fmt.Sprint(demoClientRate), "--progress", o.progress}
	if o.json {
		common = append(common, "--json")
	}
	wait := []string{"--wait", "--poll-interval", "150ms", "--poll-max", "300ms"}

	idsFile := filepath.Join(work, "ids.txt")
	var b strings.Builder
	for i := 1; i <= o.n; i++ {
		fmt.Fprintf(&b, "user-%05d\n", i)
	}
	if err := os.WriteFile(idsFile, []byte(b.String()), 0o600); err != nil {
		return cl.fail("demo", exitLocal, err)
	}

	say("mpgdpr demo: a whole job against the fake Mixpanel GDPR server embedded in this binary")
	say("  API %s, exports from %s: loopback only, no account, no network.", srv.URL(), srv.DownloadHost())
	say("  The fake holds Mixpanel's contract, refuses more than %d requests/s (the client sends %d/s;", demoServerRate, demoClientRate)
	say("  Mixpanel allows 1), holds a new task PENDING for %s, then moves it to STAGING, STARTED and SUCCESS every %s.", demoPending, demoStep)
	say("  Generated %s (user-00001 …) in %s.", words.Count(o.n, "ID"), idsFile)
	code := exitOK

	step := func(n int, title, cmd string, args ...string) *bulk.Result {
		say("")
		say("[%d/4] %s", n, title)
		say("$ mpgdpr %s %s %s", cmd, strings.Join(args, " "), strings.Join(common[:4], " "))
		j, c := sub.parseJob(cmd, append(args, common...))
		if j == nil {
			code = worse(code, c)
			return nil
		}
		res := sub.runJob(ctx, j)
		code = worse(code, res.Code)
		return res
	}

	ret := step(1, fmt.Sprintf("Retrieve %s (GDPR) in requests of 2000, follow every task, download and open the exports", words.Count(o.n, "ID")),
		"retrieve", append([]string{"--compliance", "GDPR", "--file", idsFile, "--journal", filepath.Join(work, "retrieve.journal.jsonl"),
			"--download", exports}, wait...)...)
	if ret != nil && ret.Code == exitOK {
		files, first := 0, []string(nil)
		for _, t := range ret.Tasks {
			if t.Download == nil {
				continue
			}
			a, err := export.OpenFile(t.Download.Path, srv.APISecret())
			if err != nil {
				say("opening %s: %v", t.Download.Path, err)
				code = worse(code, exitIncomplete)
				continue
			}
			for _, f := range a.Files() {
				if !f.IsDir() {
					files++
					if len(first) < 4 {
						first = append(first, f.Name)
					}
				}
			}
			_ = a.Close()
		}
		say("The %s (zip archives encrypted with the API secret) hold %s for %s: %s, …",
			words.Count(len(ret.Tasks), "export"), words.Count(files, "file"), words.Count(o.n, "ID"), strings.Join(first, ", "))
	}

	step(2, fmt.Sprintf("Delete the same %s (GDPR) in requests of 1999 and follow every task", words.Count(o.n, "ID")),
		"delete", append([]string{"--compliance", "GDPR", "--file", idsFile, "--journal", filepath.Join(work, "delete.journal.jsonl")}, wait...)...)

	extra := []string{fmt.Sprintf("user-%05d", o.n+1), fmt.Sprintf("user-%05d", o.n+2), fmt.Sprintf("user-%05d", o.n+3)}
	mistake := step(3, "File a deletion by mistake, then cancel it while it is still PENDING",
		"delete", append([]string{"--compliance", "GDPR", "--journal", filepath.Join(work, "mistake.journal.jsonl")}, extra...)...)
	if mistake != nil && len(mistake.Tasks) == 1 {
		id := mistake.Tasks[0].ID
		say("$ mpgdpr cancel %s %s", id, strings.Join(common[:4], " "))
		code = worse(code, sub.runSub(ctx, append([]string{"cancel", id}, common...)))
	} else {
		code = worse(code, exitIncomplete)
	}

	say("")
	say("[4/4] The worker: a stream of single-person requests, two projects in two regions, batched and followed to the end")
	code = worse(code, cl.demoWorker(ctx, say, work, o.n))

	say("")
	if v := srv.Violations(); len(v) > 0 {
		for _, x := range v {
			say("contract violation: %s", x)
		}
		code = worse(code, exitIncomplete)
	}
	where := "removed with the rest of " + work
	if o.download != "" {
		where = "kept in " + o.download
	}
	if code == exitOK {
		say("Demo done in %s: every request within Mixpanel's contract; exports %s.", time.Since(start).Round(100*time.Millisecond), where)
		say("Against your project: export %s and %s (and %s for exports), then e.g.", envToken, envProjectToken, envAPISecret)
		say("  mpgdpr delete --compliance GDPR --file ids.txt --wait")
	} else {
		say("Demo failed (exit %d); see the messages above.", code)
	}
	return code
}

// runSub runs a command line of the tree with this cli's streams and
// environment, and returns its exit code.
func (cl *cli) runSub(ctx context.Context, args []string) int {
	root := newRootCmd(cl)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		return cl.fail(args[0], exitUsage, err)
	}
	return cl.code
}
