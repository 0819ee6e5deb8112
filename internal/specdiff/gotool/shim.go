package gotool

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// WriteShim writes dir/go, a go command for tests of code that runs
// `go tool -modfile=M NAME args...`: it appends each call's arguments to
// dir/log, runs NAME's executable from bins (built by Path) for `go tool`,
// and the real go for anything else. It checks the calls without building
// the tools a second time: `go tool` takes no -race, so under make test it
// would compile a non-race standard library just for them. make
// check-generate runs the real `go tool -modfile=tools/go.mod`.
func WriteShim(dir string, bins map[string]string) (goCmd, log string, err error) {
	realGo, err := exec.LookPath("go")
	if err != nil {
		return "", "", err
	}
	goCmd, log = filepath.Join(dir, "go"), filepath.Join(dir, "log")
	names := make([]string, 0, len(bins))
	for name := range bins {
		names = append(names, name)
	}
	sort.Strings(names)
	var cases strings.Builder
	for _, name := range names {
		fmt.Fprintf(&cases, "\t%s) shift 3; exec %s \"$@\" ;;\n", shQuote(name), shQuote(bins[name]))
	}
	script := fmt.Sprintf(`#!/bin/sh
printf '%%s\n' "$*" >>%s
if [ "$1" = tool ]; then
	case "$3" in
%s	esac
	echo "go shim: no executable for go $*" >&2
	exit 2
fi
exec %s "$@"
`, shQuote(log), cases.String(), shQuote(realGo))
	if err := os.WriteFile(goCmd, []byte(script), 0o755); err != nil {
		return "", "", err
	}
	return goCmd, log, nil
}

// shQuote quotes s for sh.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
