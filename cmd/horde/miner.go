package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"

	"github.com/computehorde/horde/internal/minerd"
)

func runMiner(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := "Usage: horde miner <command> [flags]\n\n" +
		"  run            run the miner: serve validators, start executors, follow the chain\n" +
		"  status         what the running miner knows: jobs, manifest, axon, chain, declines and why\n" +
		"  jobs           the jobs in the miner's database: validator, class, status, outcome\n" +
		"  hash-password  hash the admin panel's password (read from stdin) for [admin] password_hash\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: name a command (run, status, jobs, hash-password)", errUsage)
	}
	if args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	switch args[0] {
	case "run":
		return runMinerRun(ctx, args[1:], stdout, stderr)
	case "status":
		return runMinerStatus(ctx, args[1:], stdout, stderr)
	case "jobs":
		return runMinerJobs(ctx, args[1:], stdout, stderr)
	case "hash-password":
		return runMinerHashPassword(args[1:], stdout, stderr)
	default:
		return fmt.Errorf("%w: unknown command %q (run, status, jobs, hash-password)", errUsage, args[0])
	}
}

func runMinerRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("miner run", "miner run --config miner.toml [--wallet NAME --hotkey NAME] [-v]", stderr)
	rf := addRoleFlags(fs, "miner", minerd.EnvPrefix)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	cfg, err := minerd.Load(*rf.config, rf.getenv())
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	level := slog.LevelInfo
	if *rf.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return minerd.Run(ctx, cfg, minerd.Options{
		Logger: logger,
		Ready: func(addr netip.AddrPort) {
			fmt.Fprintf(stdout, "horde miner: serving on %s\n", addr)
		},
	})
}
