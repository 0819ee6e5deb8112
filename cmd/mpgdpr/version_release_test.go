package main

import (
	"runtime/debug"
	"testing"

	"github.com/privacykit/mpgdpr"
)

// The version line of `go install …@vX.Y.Z` (no VCS information, the module
// version in the build info), and of a release build that names itself
// through the linker (release, set by GoReleaser).
func TestVersionLineModuleAndRelease(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/privacykit/mpgdpr/cmd/mpgdpr", Version: "v0.9.0"}}
	if got, want := versionLine(bi, true), "mpgdpr "+mpgdpr.Version+" (go1.26.8, module v0.9.0)"; got != want {
		t.Errorf("go install build: %q, want %q", got, want)
	}
	defer func(r string) { release = r }(release)
	release = "0.9.1-snapshot"
	bi = &debug.BuildInfo{GoVersion: "go1.26.8", Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef"}}}
	if got, want := versionLine(bi, true), "mpgdpr "+mpgdpr.Version+" (go1.26.8, revision 0123456789ab, release 0.9.1-snapshot)"; got != want {
		t.Errorf("release build: %q, want %q", got, want)
	}
}
