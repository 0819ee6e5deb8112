package main

import "github.com/spf13/cobra"

func newDeleteCmd(cl *cli) *cobra.Command {
	return newJobCmd(cl, "delete", "delete --compliance GDPR|CCPA [flags] [ID...]",
		"Erase people's data (bulk, resumable)", deleteHead, nil)
}
