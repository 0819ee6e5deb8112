package main

import (
	"context"

	"github.com/spf13/cobra"
)

// newRetrieveCmd is retrieve; runF, if not nil, runs instead with the
// options parsed (see newJobCmd).
func newRetrieveCmd(cl *cli, runF func(context.Context, *jobOpts) int) *cobra.Command {
	return newJobCmd(cl, "retrieve", "retrieve --compliance GDPR|CCPA [--disclosure TYPE] [flags] [ID...]",
		"Export people's data (bulk, resumable)", retrieveHead, runF)
}
