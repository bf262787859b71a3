package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"

	"github.com/computehorde/horde/internal/facilitatord"
)

func runFacilitator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := "Usage: horde facilitator <command> [flags]\n\n" +
		"  run    run the facilitator: users' job API, credits, and the validators' channel\n" +
		"  grant  add credits to a user's balance (micro-credits)\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: name a command (run, grant)", errUsage)
	}
	switch args[0] {
	case "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "run":
		return runFacilitatorRun(ctx, args[1:], stdout, stderr)
	case "grant":
		return runFacilitatorGrant(ctx, args[1:], stdout, stderr)
	default:
		return fmt.Errorf("%w: unknown command %q (run, grant)", errUsage, args[0])
	}
}

func runFacilitatorRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("facilitator run", "facilitator run --config facilitator.toml [--wallet NAME --hotkey NAME] [-v]", stderr)
	rf := addRoleFlags(fs, "facilitator", facilitatord.EnvPrefix)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	cfg, err := facilitatord.Load(*rf.config, rf.getenv())
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	level := slog.LevelInfo
	if *rf.verbose {
		level = slog.LevelDebug
	}
	return facilitatord.Run(ctx, cfg, facilitatord.Options{
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
		Ready:  func(addr netip.AddrPort) { fmt.Fprintf(stdout, "horde facilitator: serving on %s\n", addr) },
	})
}

func runFacilitatorGrant(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("facilitator grant", "facilitator grant --config facilitator.toml [--key K] HOTKEY MICRO_CREDITS", stderr)
	path := fs.String("config", "", "the facilitator's configuration file (its database)")
	key := fs.String("key", "", "idempotency key: a grant repeated with the same key is applied once")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("%w: give the user's hotkey (ss58) and the amount in micro-credits", errUsage)
	}
	amount, err := strconv.ParseInt(fs.Arg(1), 10, 64)
	if err != nil || amount <= 0 {
		return fmt.Errorf("%w: amount %q: a positive whole number of micro-credits (1 credit = 1000000)", errUsage, fs.Arg(1))
	}
	cfg, err := facilitatord.LoadLocal(*path, os.Getenv)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	applied, err := facilitatord.Grant(ctx, cfg, fs.Arg(0), amount, *key)
	if err != nil {
		return err
	}
	if !applied {
		fmt.Fprintf(stdout, "grant %s was already applied; nothing changed\n", *key)
		return nil
	}
	fmt.Fprintf(stdout, "granted %d micro-credits to %s\n", amount, fs.Arg(0))
	return nil
}
