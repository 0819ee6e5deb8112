// Command quickstart answers a data-subject request end to end: it files a
// GDPR retrieval for the distinct IDs given, waits for it, saves the export
// and lists what it holds; with -delete it then files their erasure.
//
//	export MIXPANEL_GDPR_TOKEN=... MIXPANEL_PROJECT_TOKEN=... MIXPANEL_API_SECRET=...
//	export MIXPANEL_REGION=eu                  # us (default), eu or in
//	go run ./examples/quickstart -out export.zip user-1 user-2
//
// MIXPANEL_BASE_URL sends every call elsewhere instead, such as a proxy or
// a fake server on loopback (examples/quickstart/main_test.go runs this
// program against mpgdprtest).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/export"
)

func main() {
	out := flag.String("out", "export.zip", "where to save the export (it holds personal data)")
	erase := flag.Bool("delete", false, "then file the erasure of the same people (irreversible)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, flag.Args(), *out, *erase, nil, nil); err != nil {
		log.Fatal(err)
	}
}

// run does the work; the test passes extra options (no pacing, fast polls)
// to run it against the fake in a moment.
func run(ctx context.Context, w io.Writer, ids []string, out string, erase bool, opts []mpgdpr.Option, wait []mpgdpr.WaitOption) error {
	region, err := mpgdpr.ParseRegion(os.Getenv("MIXPANEL_REGION"))
	if err != nil {
		return err
	}
	opts = append([]mpgdpr.Option{mpgdpr.WithRegion(region)}, opts...)
	if base := os.Getenv("MIXPANEL_BASE_URL"); base != "" {
		opts = append(opts, mpgdpr.WithBaseURL(base))
	}
	secret := os.Getenv("MIXPANEL_API_SECRET")
	c, err := mpgdpr.New(os.Getenv("MIXPANEL_GDPR_TOKEN"), os.Getenv("MIXPANEL_PROJECT_TOKEN"),
		append(opts, mpgdpr.WithAPISecret(secret))...)
	if err != nil {
		return err // also when a token is missing: nothing was sent
	}

	// 1. Export what Mixpanel holds about them.
	id, err := c.CreateRetrieval(ctx, mpgdpr.RetrievalRequest{DistinctIDs: ids, ComplianceType: mpgdpr.GDPR})
	if errors.Is(err, mpgdpr.ErrOutcomeUnknown) {
		return fmt.Errorf("the retrieval may have been filed; check before filing it again: %w", err)
	} else if err != nil {
		return err
	}
	fmt.Fprintf(w, "retrieval %s filed for %d people\n", id, len(ids))
	task, err := c.WaitRetrieval(ctx, id, wait...) // polls from 5 s up to 10 min apart
	if err != nil {
		return err
	}
	if !task.Status.Succeeded() {
		return fmt.Errorf("retrieval %s ended %s", id, task.Status)
	}
	n, err := c.DownloadExportFile(ctx, task, out) // atomic, mode 0600, a complete zip or an error
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "saved %s (%d bytes)\n", out, n)
	archive, err := export.OpenFile(out, secret) // export.ErrWrongSecret on a wrong secret
	if err != nil {
		return err
	}
	defer archive.Close()
	for _, f := range archive.Files() {
		fmt.Fprintf(w, "  %s (%d bytes)\n", f.Name, f.UncompressedSize)
	}

	// 2. Erase them, if asked: Mixpanel may take up to 30 days.
	if !erase {
		return nil
	}
	del, err := c.CreateDeletion(ctx, mpgdpr.DeletionRequest{DistinctIDs: ids, ComplianceType: mpgdpr.GDPR})
	if errors.Is(err, mpgdpr.ErrOutcomeUnknown) {
		return fmt.Errorf("the deletion may have been filed; resubmitting is safe (a filed one draws a 409): %w", err)
	} else if err != nil {
		return err
	}
	dt, err := c.CheckDeletion(ctx, del)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "deletion %s filed: %s (cancellable while PENDING or STAGING)\n", del, dt.Status)
	return nil
}
