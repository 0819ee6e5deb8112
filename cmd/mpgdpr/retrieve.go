package main

import "github.com/spf13/cobra"

func newRetrieveCmd(cl *cli) *cobra.Command {
	return newJobCmd(cl, "retrieve", "retrieve --compliance GDPR|CCPA [--disclosure TYPE] [flags] [ID...]",
		"Export people's data (bulk, resumable)", retrieveHead, nil)
}
