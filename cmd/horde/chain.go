package main

import (
	"context"
	"fmt"
	"io"
)

// chainCommands are the `horde chain` sub-commands.
func chainCommands() []command {
	return []command{
		{name: "sim", summary: "serve a simulated chain over Pylon's API (and an admin API) for roles in separate processes", run: runChainSim},
		{name: "show", summary: "show the head, hyperparameters and metagraph of any chain (--chain URL, or the embedded one)", run: runChainShow},
		{name: "weights", summary: "set weights as a Pylon identity and wait until they land or the epoch ends", run: runChainWeights},
	}
}

func runChain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	subs := chainCommands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, "Usage: horde chain <command> [flags]\n\nCommands:\n")
		for _, c := range subs {
			fmt.Fprintf(stdout, "  %-10s %s\n", c.name, c.summary)
		}
		return nil
	}
	for _, c := range subs {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	return fmt.Errorf("%w: unknown command %q; run `horde chain --help` for the list", errUsage, args[0])
}
