package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/privacykit/mpgdpr"
)

func newVersionCmd(cl *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the Go version and the source revision",
		Long: `Print the library's version (mpgdpr.Version), the Go version the binary
was built with and, for a build from a checkout, the VCS revision (with
"+dirty" when the work tree had changes). A build without VCS information
(go build -buildvcs=false, or from outside a checkout) says so.
`,
		Args: cobra.NoArgs,
		RunE: cl.exits(func(context.Context, *cobra.Command, []string) int {
			cl.printVersion()
			return exitOK
		}),
	}
}

func (cl *cli) printVersion() {
	fmt.Fprintln(cl.stdout, versionLine(readBuildInfo()))
}

// release is the version a release build names itself, set by the linker
// (GoReleaser, .goreleaser.yaml: -X main.release={{.Version}}); empty in
// other builds, which `go install …@version` names in the build info.
var release string

// readBuildInfo is debug.ReadBuildInfo, replaced in tests.
var readBuildInfo = func() (*debug.BuildInfo, bool) { return debug.ReadBuildInfo() }

// versionLine is "mpgdpr 0.9.0 (go1.25.0, revision 1a2b3c4d5e6f)": what a bug
// report needs to name the build; "mpgdpr 0.9.0 (go1.26.8, module v0.9.0)"
// for `go install …@v0.9.0`, and ", release 0.9.0" at the end of a
// GoReleaser build.
func versionLine(bi *debug.BuildInfo, ok bool) string {
	goVersion := runtime.Version()
	rev := "revision unknown (built without VCS information)"
	if ok && bi != nil {
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		var r, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				r = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		switch {
		case r != "":
			if len(r) > 12 {
				r = r[:12]
			}
			rev = "revision " + r
			if modified == "true" {
				rev += "+dirty"
			}
		case bi.Main.Version != "" && bi.Main.Version != "(devel)":
			rev = "module " + bi.Main.Version
		}
	}
	if release != "" {
		rev += ", release " + release
	}
	return fmt.Sprintf("mpgdpr %s (%s, %s)", mpgdpr.Version, goVersion, rev)
}

func versionShort() string { return mpgdpr.Version }

// userAgent names the command and the library in every request.
func userAgent() string {
	return "mpgdpr-cli/" + mpgdpr.Version + " mpgdpr-go/" + mpgdpr.Version
}
