package main

import (
	"context"

	"github.com/spf13/cobra"
)

// newDeleteCmd is delete; runF, if not nil, runs instead with the options
// parsed (see newJobCmd).
func newDeleteCmd(cl *cli, runF func(context.Context, *jobOpts) int) *cobra.Command {
	return newJobCmd(cl, "delete", "delete --compliance GDPR|CCPA [flags] [ID...]",
		"Erase people's data (bulk, resumable)", deleteHead, runF)
}
