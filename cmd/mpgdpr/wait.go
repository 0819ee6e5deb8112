package main

import "github.com/spf13/cobra"

func newWaitCmd(cl *cli) *cobra.Command {
	return newCheckCmd(cl, "wait", "Wait until tasks end", waitLong)
}
