package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/volume"
	"github.com/computehorde/horde/internal/gpu"
)

// envExecutorToken carries the executor's token from the miner that starts it, so that it
// stays out of process listings (upstream's EXECUTOR_TOKEN).
const envExecutorToken = "HORDE_EXECUTOR_TOKEN"

// envExecutorGPUs is the default of `executor serve --gpus`.
const envExecutorGPUs = "HORDE_EXECUTOR_GPUS"

// runExecutorServe is upstream's run_executor: one executor, one job. It connects to the
// miner with its single-use token, runs the job the miner sends on the local Docker engine,
// reports every stage and exits. A miner's process executor manager starts it.
func runExecutorServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("executor serve", "executor serve --miner-url ws://HOST:PORT [flags] (token in $"+envExecutorToken+")", stderr)
	minerURL := fs.String("miner-url", "", "the miner's executor endpoint base, e.g. ws://127.0.0.1:8000 (upstream's MINER_ADDRESS)")
	token := fs.String("token", "", "this executor's single-use token (default: $"+envExecutorToken+", which stays out of process listings)")
	allowEgress := fs.String("allow-egress", "", "comma-separated CIDRs or addresses that volume downloads and uploads may reach although they are internal (default: $HORDE_ALLOW_EGRESS)")
	maxVolume := fs.Int64("max-volume-bytes", volume.DefaultMaxBytes, "cap on the job's unpacked input volume (negative: none)")
	gpus := fs.String("gpus", "", "comma-separated GPUs of this host the executor owns, nvidia-smi indices or UUIDs, e.g. 0,1: GPU jobs get only these (default: $"+envExecutorGPUs+"; none: every GPU, for one executor per host)")
	verbose := fs.Bool("v", false, "log every executor event to stderr")
	engine := addEngineFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *token == "" {
		*token = os.Getenv(envExecutorToken)
	}
	if *minerURL == "" || *token == "" {
		return fmt.Errorf("%w: --miner-url and a token (--token or $%s) are required", errUsage, envExecutorToken)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	devices, err := executorGPUs(*gpus, os.Getenv)
	if err != nil {
		return err
	}
	policy, err := egressPolicy(*allowEgress)
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	rt, err := engine.runtime(ctx, logger)
	if err != nil {
		return err
	}
	defer rt.Close()
	cfg := executor.Config{
		MinerURL:   *minerURL,
		Token:      *token,
		Runtime:    rt,
		GPUs:       gpu.NvidiaSMI{},
		GPUDevices: devices,
		SpecsDisk:  *engine.workDir,
		Egress:     policy,
		Volumes: volume.New(volume.Config{
			Egress: policy, MaxBytes: *maxVolume, Logger: logger,
			HuggingFaceEndpoint: os.Getenv("HF_ENDPOINT"), HuggingFaceToken: os.Getenv("HF_ACCESS_TOKEN"),
		}),
		Logger: logger,
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return executor.Run(ctx, cfg)
}

// executorGPUs is the executor's GPU devices: --gpus, else $HORDE_EXECUTOR_GPUS; none when both
// are empty.
func executorGPUs(flagValue string, getenv func(string) string) ([]string, error) {
	if flagValue == "" {
		flagValue = getenv(envExecutorGPUs)
	}
	devices, err := executor.ParseGPUDevices(flagValue)
	if err != nil {
		return nil, fmt.Errorf("%w: --gpus (or $%s): %v", errUsage, envExecutorGPUs, err)
	}
	return devices, nil
}
