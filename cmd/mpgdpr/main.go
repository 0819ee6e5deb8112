// Command mpgdpr files and follows Mixpanel GDPR/CCPA data requests:
// it exports (retrieves) or erases (deletes) everything Mixpanel holds
// about people, by distinct_id, for lists of any length.
//
// Bulk jobs (delete, retrieve) are journaled: every request is recorded
// before it is sent and after it is answered, so an interrupted job is
// resumed by running the same command again, without losing or re-filing
// an ID. `mpgdpr demo` runs a whole job against an embedded fake server,
// with no account. `mpgdpr help` lists the commands, flags and exit codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes, documented in the usage text; scripts rely on them.
const (
	exitOK          = 0   // everything done
	exitLocal       = 1   // a local failure: journal, files
	exitUsage       = 2   // bad usage or bad input; nothing was sent
	exitAPI         = 3   // Mixpanel refused a request, or could not be reached
	exitIncomplete  = 4   // tasks failed, or IDs are left unknown or unsent
	exitInterrupted = 130 // SIGINT/SIGTERM; the journal is consistent
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling: a second
		// Ctrl-C ends the process at once. The journal makes that safe.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Environ())
	stop()
	os.Exit(code)
}

// run is the whole command: main without the process. Tests call it
// in-process with their own streams and environment.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) int {
	cl := newCLI(stdin, stdout, stderr, environ)
	if len(args) == 0 {
		fmt.Fprint(cl.stderr, mainUsage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	var code int
	switch cmd {
	case "delete", "retrieve":
		code = cl.cmdJob(ctx, cmd, rest)
	case "status", "wait":
		code = cl.cmdCheck(ctx, cmd, rest)
	case "cancel":
		code = cl.cmdCancel(ctx, rest)
	case "download":
		code = cl.cmdDownload(ctx, rest)
	case "demo":
		code = cl.cmdDemo(ctx, rest)
	case "help", "-h", "-help", "--help":
		return cl.cmdHelp(rest)
	default:
		fmt.Fprintf(cl.stderr, "mpgdpr: unknown command %q\n\n%s", cmd, mainUsage)
		return exitUsage
	}
	if code != exitOK && code != exitUsage && ctx.Err() != nil {
		return exitInterrupted
	}
	return code
}

func (cl *cli) cmdHelp(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(cl.stdout, mainUsage)
		return exitOK
	}
	fs := cl.flagSet(args[0])
	if fs == nil {
		fmt.Fprintf(cl.stderr, "mpgdpr help: unknown command %q\n", args[0])
		return exitUsage
	}
	fs.SetOutput(cl.stdout)
	fs.Usage()
	return exitOK
}

// flagSet returns the flags of a command, for help.
func (cl *cli) flagSet(cmd string) *flag.FlagSet {
	switch cmd {
	case "delete", "retrieve":
		fs, _ := cl.jobFlags(cmd)
		return fs
	case "status", "wait":
		fs, _ := cl.checkFlags(cmd)
		return fs
	case "cancel":
		fs, _ := cl.cancelFlags()
		return fs
	case "download":
		fs, _ := cl.downloadFlags()
		return fs
	case "demo":
		fs, _ := cl.demoFlags()
		return fs
	}
	return nil
}

const mainUsage = `mpgdpr files and follows Mixpanel GDPR/CCPA data requests: it exports
(retrieves) or erases (deletes) everything Mixpanel holds about people, by
distinct_id, for lists of any length.

Usage:
  mpgdpr delete   --compliance GDPR|CCPA [flags] [ID...]    erase people (bulk, resumable)
  mpgdpr retrieve --compliance GDPR|CCPA [flags] [ID...]    export people's data (bulk, resumable)
  mpgdpr status   [flags] retrieval|deletion TASK_ID...     show tasks' status
  mpgdpr wait     [flags] retrieval|deletion TASK_ID...     wait until tasks end
  mpgdpr cancel   [flags] TASK_ID...                        cancel deletions not yet started
  mpgdpr download [flags] TASK_ID...                        save finished retrievals' exports
  mpgdpr demo     [flags]                                   a whole job on an embedded fake server
  mpgdpr help     [COMMAND]                                 a command's flags

Try it without an account:
  go run ./cmd/mpgdpr demo

Credentials: the environment is preferred, because command-line flags are
visible to other users of the machine (ps, /proc) and stay in shell history.
  MIXPANEL_GDPR_TOKEN     or --token          GDPR OAuth token (sent as the bearer token)
  MIXPANEL_PROJECT_TOKEN  or --project-token  project token
  MIXPANEL_API_SECRET     or --api-secret     API secret: the password of export archives
  MIXPANEL_REGION         or --region         us (default), eu or in
                             --base-url       another API base URL, e.g. a proxy (https;
                                              http only on loopback)
Tokens are never printed, logged or written to a journal.

Output: a table on stdout; --json prints one JSON object per line instead.
Notes and errors go to stderr, with a progress line when stderr is a terminal.

Exit status:
  0    success: every ID filed (with --wait: every task SUCCESS), every command done
  1    local failure: the journal or an export file could not be written, or
       the journal is in use by another mpgdpr process
  2    usage or bad input, nothing sent: unknown flag, missing token, unknown
       region, unreadable or malformed ID list, journal of another job
  3    API or network error: Mixpanel refused a request (401, 403, 404, 429
       after retries, ...) or could not be reached
  4    incomplete: some tasks ended FAILURE, REVOKED or NOT_FOUND, a deletion
       could not be cancelled, or IDs are left unknown or unsent
  130  interrupted (SIGINT, SIGTERM): the journal is consistent; run the same
       command again to resume
`

// usageError is bad usage or bad input: exit 2, with a hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error {
	return &usageError{fmt.Sprintf(format, a...)}
}

// fail reports err for command cmd on stderr and returns its exit code.
func (cl *cli) fail(cmd string, code int, err error) int {
	// The library prefixes its errors with "mpgdpr: "; the command says
	// so once, in front.
	msg := strings.ReplaceAll(err.Error(), ": mpgdpr: ", ": ")
	msg = strings.TrimPrefix(msg, "mpgdpr: ")
	fmt.Fprintf(cl.stderr, "mpgdpr %s: %s\n", cmd, msg)
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(cl.stderr, "Run 'mpgdpr help %s' for usage.\n", cmd)
	}
	return code
}
