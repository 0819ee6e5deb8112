package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

func newCompletionCmd(cl *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `Print the completion script of a shell on stdout. To load it:

  bash:  source <(mpgdpr completion bash)
         (or save it in /etc/bash_completion.d/mpgdpr; needs bash-completion)
  zsh:   mpgdpr completion zsh > "${fpath[1]}/_mpgdpr"   (then start a new shell)
  fish:  mpgdpr completion fish > ~/.config/fish/completions/mpgdpr.fish
  powershell:  mpgdpr completion powershell | Out-String | Invoke-Expression
`,
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		Args:      cobra.ArbitraryArgs,
		RunE: cl.exits(func(_ context.Context, cmd *cobra.Command, args []string) int {
			if len(args) != 1 {
				return cl.fail("completion", exitUsage, usagef("want one shell: bash, zsh, fish or powershell"))
			}
			root := cmd.Root()
			var err error
			switch args[0] {
			case "bash":
				err = root.GenBashCompletionV2(cl.stdout, true)
			case "zsh":
				err = root.GenZshCompletion(cl.stdout)
			case "fish":
				err = root.GenFishCompletion(cl.stdout, true)
			case "powershell":
				err = root.GenPowerShellCompletionWithDesc(cl.stdout)
			default:
				return cl.fail("completion", exitUsage, usagef("unknown shell %q: want bash, zsh, fish or powershell", args[0]))
			}
			if err != nil {
				return cl.fail("completion", exitLocal, fmt.Errorf("writing the script: %w", err))
			}
			return exitOK
		}),
	}
}
