package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/computehorde/horde/internal/devnet"
	"github.com/computehorde/horde/internal/validator"
)

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dev", "dev [flags] [-- job args…]", stderr)
	once := fs.Bool("once", false, "run one hello job, print its output and exit (0 if it completed)")
	dataDir := fs.String("data-dir", "", "directory for the SQLite databases (default: a temporary directory)")
	blockTime := fs.Duration("block-time", time.Second, "simulated chain block time")
	interval := fs.Duration("interval", time.Minute, "without --once: how often the validator runs the hello job")
	verbose := fs.Bool("v", false, "log every event (default: warnings and the job's result only)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	if *dataDir != "" {
		// Created here so that the error names the flag and the directory asked for; MkdirAll
		// alone names only the first path element that is not a directory.
		if err := os.MkdirAll(*dataDir, 0o700); err != nil {
			return fmt.Errorf("--data-dir %s: cannot create the directory: %w", *dataDir, err)
		}
	}

	// stopped reports an interrupt (Ctrl-C, SIGTERM): without --once that is the normal way to
	// stop, so it exits 0; with --once the job did not finish.
	stopped := func() error {
		fmt.Fprintln(stderr, "horde dev: stopping")
		if *once {
			return errors.New("interrupted before the job finished")
		}
		return nil
	}

	fmt.Fprintln(stderr, "horde dev: starting simulated chain, validator //Alice, miner //Bob and its executor on the local Docker engine")
	net, err := startDevnet(ctx, devnet.Config{DataDir: *dataDir, BlockTime: *blockTime, Logger: logger})
	if err != nil {
		if ctx.Err() != nil {
			return stopped()
		}
		return err
	}
	defer net.Close()

	// runOnce runs the hello job and prints its result. After an interrupt it returns
	// ctx.Err() and prints nothing: the result would only report the interrupt.
	runOnce := func() (*validator.JobResult, error) {
		res, err := net.RunJob(ctx, net.HelloJob(fs.Args()...))
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			return nil, err
		}
		printResult(stdout, res)
		return res, nil
	}
	res, err := runOnce()
	if ctx.Err() != nil {
		return stopped()
	}
	if err != nil {
		return err
	}
	if *once {
		if res.Failed() {
			return fmt.Errorf("job %s did not complete: %s", res.UUID, res.Status)
		}
		return nil
	}
	fmt.Fprintf(stderr, "horde dev: running; a hello job every %s. Press Ctrl-C to stop.\n", *interval)
	ticker := time.NewTicker(*interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return stopped()
		case <-ticker.C:
			if _, err := runOnce(); ctx.Err() != nil {
				return stopped()
			} else if err != nil {
				return err
			}
		}
	}
}

func printResult(w io.Writer, r *validator.JobResult) {
	fmt.Fprintf(w, "job %s: %s in %s\n", r.UUID, r.Status, r.Took.Round(time.Millisecond))
	if r.Failed() {
		fmt.Fprintf(w, "  reported by %s: %s (%s)", r.ReportedBy, r.Reason, r.Message)
		if r.Stage != "" {
			fmt.Fprintf(w, " at stage %s", r.Stage)
		}
		if r.ExitStatus != nil {
			fmt.Fprintf(w, ", exit status %d", *r.ExitStatus)
		}
		fmt.Fprintln(w)
	}
	if r.Stdout != "" {
		fmt.Fprintf(w, "--- stdout ---\n%s", ensureNewline(r.Stdout))
	}
	if r.Stderr != "" {
		fmt.Fprintf(w, "--- stderr ---\n%s", ensureNewline(r.Stderr))
	}
}

func ensureNewline(s string) string {
	if strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

// startDevnet starts a devnet whose job image is assembled from this very executable, which
// runs the hello job through its hidden `__job hello` command.
func startDevnet(ctx context.Context, cfg devnet.Config) (*devnet.Devnet, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot find the horde executable to build the job image from: %w", err)
	}
	cfg.JobBinary = self
	cfg.JobEntrypoint = []string{"/bin/horde", jobCommand, "hello"}
	return devnet.Start(ctx, cfg)
}
