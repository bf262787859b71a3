package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"

	"github.com/computehorde/horde/internal/validatord"
)

func runValidator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := "Usage: horde validator <command> [flags]\n\n" +
		"  run     run the validator: follow the chain, route jobs to miners, account work, set weights\n" +
		"  scores  the points formula from the database: every factor, the points and the weight per miner\n" +
		"  miners  the manifests the running validator honours, and the changes it ignored (2-hour rule)\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: name a command (run, scores, miners)", errUsage)
	}
	if args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	switch args[0] {
	case "run":
		return runValidatorRun(ctx, args[1:], stdout, stderr)
	case "scores":
		return runValidatorScores(ctx, args[1:], stdout, stderr)
	case "miners":
		return runValidatorMiners(ctx, args[1:], stdout, stderr)
	default:
		return fmt.Errorf("%w: unknown command %q (run, scores, miners)", errUsage, args[0])
	}
}

func runValidatorRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("validator run", "validator run --config validator.toml [--wallet NAME --hotkey NAME] [-v]", stderr)
	rf := addRoleFlags(fs, "validator", validatord.EnvPrefix)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	cfg, err := validatord.Load(*rf.config, rf.getenv())
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	level := slog.LevelInfo
	if *rf.verbose {
		level = slog.LevelDebug
	}
	return validatord.Run(ctx, cfg, validatord.Options{
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
		Ready:  func(addr netip.AddrPort) { fmt.Fprintf(stdout, "horde validator: job API on %s\n", addr) },
	})
}
