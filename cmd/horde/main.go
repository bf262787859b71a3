// Command horde is ComputeHorde in one static binary: the facilitator, validator, miner and
// executor roles, the whole subnet in one process for development (`horde dev`), and Bittensor
// hotkey tools (`horde wallet`).
//
// This package only parses flags and wires packages together; the logic lives in internal/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one `horde` sub-command.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
	hidden  bool
}

func commands() []command {
	return []command{
		{name: "dev", summary: "run the whole subnet in one process (simulated chain, SQLite, local Docker) and run a job", run: runDev},
		{name: "bench", summary: "whole-system figures: hello jobs through the devnet, latency and throughput", run: runBench},
		{name: "executor", summary: "run a job spec locally exactly as a miner's executor would; pre-load images", run: runExecutor},
		{name: "chain", summary: "the chain: serve a simulated one (`horde chain sim`), read and write through any backend", run: runChain},
		{name: "validator", summary: "run a validator (`horde validator run --config validator.toml`)", run: runValidator},
		{name: "miner", summary: "run a miner (`horde miner run --config miner.toml`)", run: runMiner},
		{name: "facilitator", summary: "run a facilitator: users' paid job API, credits, validators' channel (`horde facilitator run`)", run: runFacilitator},
		{name: "job", summary: "a user's jobs on a facilitator: run, status, list, cancel", run: runUserJob},
		{name: "account", summary: "a user's account on a facilitator: balance, API keys", run: runAccount},
		{name: "doctor", summary: "check this machine for a role (`horde doctor --role miner`) and say what to fix", run: runDoctor},
		{name: "wallet", summary: "Bittensor hotkeys: inspect a secret URI, create or show a wallet hotkey", run: runWallet},
		{name: jobCommand, summary: "run a built-in job program (used inside job images)", run: runJob, hidden: true},
	}
}

// errUsage marks errors whose message is a usage problem; main prints it and exits 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printHelp(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		var code exitCode
		var outcome jobOutcome
		switch {
		case errors.As(err, &code):
			return int(code)
		case errors.As(err, &outcome):
			fmt.Fprintf(stderr, "horde %s: %v\n", c.name, err)
			return outcome.code
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "horde %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "horde %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "horde: unknown command %q; run `horde --help` for the list\n", args[0])
	return 2
}

func printHelp(w io.Writer) {
	fmt.Fprint(w, "horde: ComputeHorde (Bittensor subnet 12) in one binary.\n\nUsage: horde <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		if !c.hidden {
			fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprint(w, "\nRun `horde <command> --help` for a command's flags.\n")
}

// newFlagSet returns a FlagSet that reports errors instead of exiting, printing usage to w.
func newFlagSet(name, usage string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintf(w, "Usage: horde %s\n\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and turns flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}
