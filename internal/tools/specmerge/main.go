// Command specmerge writes api/openapi.yaml from api/reconcile.yaml and the
// upstream documents in api/sources. go generate runs it; see generate.go.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/privacykit/mpgdpr/internal/specmerge"
)

func main() {
	skeleton := flag.String("skeleton", "api/reconcile.yaml", "the recorded decisions")
	sources := flag.String("sources", "api/sources", "folder of upstream documents, merged in name order (the first wins where both fill a gap)")
	out := flag.String("out", "api/openapi.yaml", "the merged document")
	quiet := flag.Bool("q", false, "do not list repairs")
	flag.Parse()
	if err := run(*skeleton, *sources, *out, *quiet); err != nil {
		fmt.Fprintln(os.Stderr, "specmerge:", err)
		os.Exit(1)
	}
}

func run(skeletonPath, sourceDir, out string, quiet bool) error {
	skel, err := os.ReadFile(skeletonPath)
	if err != nil {
		return err
	}
	names, err := filepath.Glob(filepath.Join(sourceDir, "*"))
	if err != nil {
		return err
	}
	sort.Strings(names)
	var srcs []specmerge.Source
	for _, n := range names {
		raw, err := os.ReadFile(n)
		if err != nil {
			return err
		}
		srcs = append(srcs, specmerge.Source{Name: filepath.Base(n), Raw: raw, Dir: filepath.Dir(n)})
	}
	if len(srcs) == 0 {
		return fmt.Errorf("no sources in %s", sourceDir)
	}
	res, err := specmerge.Merge(skel, srcs)
	if err != nil {
		return err
	}
	data, err := specmerge.Marshal(res.Doc)
	if err != nil {
		return err
	}
	if _, err := specmerge.Validate(context.Background(), data); err != nil {
		return err
	}
	if !quiet {
		for _, r := range res.Repairs {
			fmt.Fprintln(os.Stderr, "specmerge: repaired", r)
		}
		for _, w := range res.Warnings {
			fmt.Fprintln(os.Stderr, "specmerge: warning:", w)
		}
	}
	// Always shown: an upstream document may have dropped a call the client offers.
	for _, op := range res.Unsourced {
		fmt.Fprintln(os.Stderr, "specmerge: warning: no source describes", op, "(kept from api/reconcile.yaml)")
	}
	return os.WriteFile(out, data, 0o644)
}
