package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func newManCmd(cl *cli) *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "man --dir DIR",
		Short: "Write the man pages (section 1) into a directory",
		Long: `Write one man page per command, mpgdpr.1, mpgdpr-delete.1, ..., into DIR
(created if missing), from the same text as the help. To read one without
installing it: man ./DIR/mpgdpr-delete.1
`,
		Args: cobra.NoArgs,
		RunE: cl.exits(func(_ context.Context, cmd *cobra.Command, _ []string) int {
			if dir == "" {
				return cl.fail("man", exitUsage, usagef("--dir DIR is required"))
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return cl.fail("man", exitLocal, err)
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true // no "generated on DATE" footer
			// A page has no template footer: the exit statuses go at the end
			// of its description.
			var addExit func(*cobra.Command)
			addExit = func(c *cobra.Command) {
				if c.HasParent() {
					c.Long += exitShort
				} else {
					c.Long += exitStatusText
				}
				for _, sub := range c.Commands() {
					addExit(sub)
				}
			}
			addExit(root)
			h := &doc.GenManHeader{Title: "MPGDPR", Section: "1", Source: "mpgdpr " + versionShort(), Manual: "mpgdpr manual"}
			if err := doc.GenManTree(root, h, dir); err != nil {
				return cl.fail("man", exitLocal, fmt.Errorf("writing the man pages: %w", err))
			}
			fmt.Fprintf(cl.stderr, "man pages written in %s\n", dir)
			return exitOK
		}),
	}
	c.Flags().StringVar(&dir, "dir", "", "write the pages into `DIR`")
	return c
}
