package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// newRootCmd builds the command tree for one run. Every command is a
// func(*cli) *cobra.Command in a file of its own, added here with one line;
// it reaches the run's streams, environment, logger and exit code through
// cl (see cli.go and exits below).
func newRootCmd(cl *cli) *cobra.Command {
	root := &cobra.Command{
		Use:   "mpgdpr",
		Short: "File and follow Mixpanel GDPR/CCPA data requests",
		Long:  rootLong,
		// Errors and usage are printed by run, once, in the command's own
		// words: cobra would print them before the exit code is known.
		SilenceErrors:     true,
		SilenceUsage:      true,
		Args:              cobra.ArbitraryArgs,
		RunE:              cl.exits(cl.cmdRoot),
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		// cobra sets this only on its own error path; SuggestionsFor needs it.
		SuggestionsMinimumDistance: 2,
	}
	root.SetIn(cl.stdin)
	root.SetOut(cl.stdout)
	root.SetErr(cl.stderr)
	root.Flags().Bool("version", false, "print the version and exit")
	root.PersistentFlags().BoolVarP(&cl.verbose, "verbose", "v", false,
		"log retries, waits, pacing and polls to stderr (as MPGDPR_LOG=debug)")
	root.PersistentPreRunE = func(*cobra.Command, []string) error { return cl.setupLogging() }
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	root.InitDefaultHelpFlag() // listed in 'mpgdpr help' too, not only in --help
	root.SetHelpCommand(newHelpCmd(cl))
	// Every help ends with the exit statuses, after the flags: all of them
	// in the main help, a summary in a command's.
	root.SetHelpTemplate(`{{with (or .Long .Short)}}{{. | trimTrailingWhitespaces}}

{{end}}{{if or .Runnable .HasSubCommands}}{{.UsageString}}{{end}}{{if not .HasParent}}` + exitStatusText + `{{else}}` + exitShort + `{{end}}`)

	root.AddCommand(newDeleteCmd(cl, nil))
	root.AddCommand(newRetrieveCmd(cl, nil))
	root.AddCommand(newStatusCmd(cl, nil))
	root.AddCommand(newWaitCmd(cl, nil))
	root.AddCommand(newCancelCmd(cl, nil))
	root.AddCommand(newDownloadCmd(cl, nil))
	root.AddCommand(newDemoCmd(cl))
	root.AddCommand(newFakeCmd(cl))
	root.AddCommand(newVersionCmd(cl))
	root.AddCommand(newCompletionCmd(cl))
	root.AddCommand(newManCmd(cl))
	root.AddCommand(newWorkerCmd(cl), newRequestCmd(cl))
	root.AddCommand(newServeCmd(cl, nil))
	root.AddCommand(newReportCmd(cl))
	return root
}

// exits adapts a command body that returns an exit code to cobra: the code
// is kept in cl for run to return. An error returned to cobra is reserved
// for usage errors found while parsing (exit 2).
func (cl *cli) exits(f func(ctx context.Context, cmd *cobra.Command, args []string) int) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cl.code = f(cmd.Context(), cmd, args)
		return nil
	}
}

// unknownCommand reports a first word that is no command, before any flag
// of the line is parsed (the flags of the command meant are unknown to
// the root, and their error would hide the typo).
func (cl *cli) unknownCommand(root *cobra.Command, args []string) bool {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return false
	}
	for _, c := range root.Commands() {
		if c.Name() == args[0] || c.HasAlias(args[0]) {
			return false
		}
	}
	if args[0] == "help" || strings.HasPrefix(args[0], "__complete") {
		return false
	}
	msg := fmt.Sprintf("mpgdpr: unknown command %q", args[0])
	if s := root.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	fmt.Fprintf(cl.stderr, "%s\nRun 'mpgdpr help' for the list of commands.\n", msg)
	return true
}

// cmdRoot runs for "mpgdpr" alone, "mpgdpr --version", and a word that is
// no command.
func (cl *cli) cmdRoot(_ context.Context, cmd *cobra.Command, args []string) int {
	if v, _ := cmd.Flags().GetBool("version"); v {
		cl.printVersion()
		return exitOK
	}
	if len(args) == 0 {
		cmd.SetOut(cl.stderr)
		_ = cmd.Usage()
		return exitUsage
	}
	cl.unknownCommand(cmd, args)
	return exitUsage
}

// newHelpCmd replaces cobra's help command, which answers an unknown topic
// with exit 0.
func newHelpCmd(cl *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Show the help of mpgdpr or of a command",
		Args:  cobra.ArbitraryArgs,
		RunE: cl.exits(func(_ context.Context, cmd *cobra.Command, args []string) int {
			root := cmd.Root()
			target, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 || (target == root && len(args) > 0) {
				msg := fmt.Sprintf("mpgdpr help: unknown command %q", strings.Join(args, " "))
				if len(args) > 0 {
					if s := root.SuggestionsFor(args[0]); len(s) > 0 {
						msg += fmt.Sprintf("; did you mean %q?", s[0])
					}
				}
				fmt.Fprintf(cl.stderr, "%s\nRun 'mpgdpr help' for the list of commands.\n", msg)
				return exitUsage
			}
			target.SetOut(cl.stdout)
			_ = target.Help()
			return exitOK
		}),
	}
}

// normalizeArgs turns single-dash long flags ("-rate 2", "-json") into the
// GNU form pflag reads ("--rate 2", "--json"). Versions before the move to
// cobra parsed flags with the standard library, which takes both forms,
// and scripts written then keep working. Only names that are long flags of
// some command are rewritten; everything after "--" is left alone, as is
// the value that follows a flag that takes one.
func normalizeArgs(root *cobra.Command, args []string) []string {
	takesValue := map[string]bool{"help": false, "version": false}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		visit := func(f *pflag.Flag) {
			if _, seen := takesValue[f.Name]; !seen {
				takesValue[f.Name] = f.NoOptDefVal == ""
			}
		}
		c.LocalFlags().VisitAll(visit)
		c.PersistentFlags().VisitAll(visit)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			out = append(out, a)
			continue
		}
		long := strings.HasPrefix(a, "--")
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		value, known := takesValue[name]
		if !long && known && len(name) > 1 {
			a = "-" + a
			long = true
		}
		out = append(out, a)
		if long && known && value && !hasValue && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	return out
}

// usageFor is the usage error for err from cobra: an unknown flag, a bad
// value, a missing argument.
func usageFor(err error) (*usageError, bool) {
	var ue *usageError
	if errors.As(err, &ue) {
		return ue, true
	}
	return nil, false
}

const rootLong = `mpgdpr files and follows Mixpanel GDPR/CCPA data requests: it exports
(retrieves) or erases (deletes) everything Mixpanel holds about people, by
distinct_id, for lists of any length.

Try it without an account or a network:
  mpgdpr demo
  (from a checkout of the repository: make demo, or cd cmd/mpgdpr && go run . demo)

Credentials: the environment is preferred, because command-line flags are
visible to other users of the machine (ps, /proc) and stay in shell history.
  MIXPANEL_GDPR_TOKEN     or --token          GDPR OAuth token (sent as the bearer token)
  MIXPANEL_PROJECT_TOKEN  or --project-token  project token
  MIXPANEL_API_SECRET     or --api-secret     API secret: the password of export archives
  MIXPANEL_REGION         or --region         us (default), eu or in
  MIXPANEL_BASE_URL       or --base-url       another API base URL, e.g. a proxy (https;
                                              http only on loopback)
A base URL replaces the region's host: a region and a base URL together
(flag or variable) are refused (exit 2), lest one of them be ignored.
Tokens are never printed, logged or written to a journal.

Output: a table on stdout; --json prints one JSON object per line instead.
Notes and errors go to stderr, with a progress line when stderr is a
terminal. A wait of more than a few seconds (a retry, a poll) is always
said, on the progress line or as a note.
  --verbose, -v           log retries, waits, pacing and polls to stderr
  MPGDPR_LOG=LEVEL        the same at debug; info: the job's steps; warn: retries only
  MPGDPR_NOTE_AFTER=3s    how long a wait may last before it is said (0: every wait)
`

const exitStatusText = `
Exit status:
  0    success: every ID filed (with --wait: every task SUCCESS), every command done
  1    local failure: the journal or an export file could not be written, the
       journal is not a regular file or is too large to be one, or the
       journal is in use by another mpgdpr process
  2    usage or bad input, nothing sent: unknown command or flag, missing
       token, unknown region, unreadable or malformed ID list (blank line,
       spaces, invisible characters), journal of another job
  3    API or network error: Mixpanel refused a request (401, 403, 404, 429
       after retries, ...) or could not be reached
  4    incomplete: some tasks ended FAILURE, REVOKED or NOT_FOUND, a deletion
       could not be cancelled, a task is not finished (download), a downloaded
       export does not open, decrypt or verify, or IDs are left unknown or unsent
  130  interrupted (SIGINT, SIGTERM): the journal is consistent; run the same
       command again to resume
`

// exitShort ends every command's help.
const exitShort = `
Exit status: 0 success, 1 local failure, 2 usage or bad input, 3 API or network error,
4 incomplete (tasks failed, exports that do not verify, IDs unknown or unsent),
130 interrupted. See 'mpgdpr help'.
`
