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
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/exitcode"
)

// Exit codes, documented in the usage text; scripts rely on them. They are
// defined once, in package exitcode, which the bulk engine shares.
const (
	exitOK          = exitcode.OK
	exitLocal       = exitcode.Local
	exitUsage       = exitcode.Usage
	exitAPI         = exitcode.API
	exitIncomplete  = exitcode.Incomplete
	exitInterrupted = exitcode.Interrupted
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
	root := newRootCmd(cl)
	if cl.unknownCommand(root, args) {
		return exitUsage
	}
	root.SetArgs(normalizeArgs(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		// Only parsing fails here (flags, arguments): the command bodies
		// report their own errors and return exit codes.
		name := strings.TrimPrefix(cmd.CommandPath(), "mpgdpr ")
		if cmd == root {
			name = ""
		}
		msg := err.Error()
		if ue, ok := usageFor(err); ok {
			msg = ue.msg
		}
		fmt.Fprintf(cl.stderr, "%s: %s\nRun '%s' for usage.\n", cmd.CommandPath(), msg, strings.TrimSpace("mpgdpr help "+name))
		return exitUsage
	}
	code := cl.code
	if code != exitOK && code != exitUsage && ctx.Err() != nil {
		return exitInterrupted
	}
	return code
}
