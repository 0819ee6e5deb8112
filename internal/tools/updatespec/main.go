// Command updatespec takes in a new upstream OpenAPI document: it replaces
// (or adds) one file in api/sources, merges the sources, regenerates gen/,
// and reports what changed in the merged document and in the generated Go
// API. Breaking changes, found by oasdiff and by comparing the generated
// code's exported names, stop it unless -accept-breaking is given. A failed
// update leaves api/ and gen/ exactly as they were.
//
//	go run ./internal/tools/updatespec -replace api/sources/<name>.txt -with /path/to/new.txt [-accept-breaking] [-dry-run]
//	go run ./internal/tools/updatespec -add api/sources/<name>.txt -with /path/to/new.txt
//	go run ./internal/tools/updatespec -check -replace api/sources/<name>.txt -with /path/to/new.yaml
//	go run ./internal/tools/updatespec            # report on the sources as they are
//
// The new document may be a saved docs page (YAML in a Markdown fence), the
// raw YAML or JSON file, with or without $refs into files beside it.
//
// Exit status: 0 done (or, with -dry-run, would be done; with -check, nothing
// to take); 1 the update failed (a merge conflict, an invalid document, a
// missing referenced file, generation or build failure) and nothing was
// changed; 2 bad usage; 3 breaking changes were found and not accepted, and
// nothing was changed; 4 (-check only) an update is there to take. See
// docs/UPDATING.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
)

// Exit statuses.
const (
	exitOK       = 0
	exitFailed   = 1
	exitUsage    = 2
	exitBreaking = 3
	exitUpdate   = 4 // -check: the new document would change the merged document or gen/
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command, with its output and exit status in the caller's hands
// so that tests can drive it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("updatespec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.StringVar(&cfg.Root, "root", ".", "the repository root")
	fs.StringVar(&cfg.Replace, "replace", "", "the source document to replace, `api/sources/<name>` (relative to -root)")
	fs.StringVar(&cfg.Add, "add", "", "a new source document to add, `api/sources/<name>` (relative to -root)")
	fs.StringVar(&cfg.With, "with", "", "the new upstream document (a page copy, as published)")
	fs.BoolVar(&cfg.AcceptBreaking, "accept-breaking", false, "install even if the update has breaking changes (then release a new major version)")
	fs.BoolVar(&cfg.DryRun, "dry-run", false, "report only: change nothing")
	fs.BoolVar(&cfg.Check, "check", false, "report only, for a scheduled job: exit 0 if there is nothing to take, 4 if there is an update, 3 if it is breaking, 1 on a conflict")
	fs.BoolVar(&cfg.NoBuild, "no-build", false, "install without checking that the module still compiles (go vet ./...)")
	fs.StringVar(&cfg.ToolsModfile, "tools-modfile", "", "the go.mod pinning oapi-codegen and oasdiff (default <root>/tools/go.mod)")
	fs.StringVar(&cfg.OasdiffBin, "oasdiff", "", "an oasdiff `executable` to run instead of go tool oasdiff (it must be the pinned version)")
	fs.StringVar(&cfg.CodegenBin, "oapi-codegen", "", "an oapi-codegen `executable` to run instead of go tool oapi-codegen (it must be the pinned version)")
	fs.StringVar(&cfg.Go, "go", "go", "the go `command` that runs go tool and go vet")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: updatespec [-replace|-add api/sources/<name> -with <file>] [-accept-breaking] [-dry-run|-check]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "updatespec: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return exitUsage
	}
	u, err := newUpdate(cfg, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "updatespec:", err)
		return exitUsage
	}
	return u.run(ctx, stderr)
}
