package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/devnet"
)

// runBench measures whole-system figures on the devnet: hello jobs from the validator's
// request to its receipt of the outcome, through miner, executor and Docker.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "faults" {
		return runBenchFaults(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("bench", "bench [flags]", stderr)
	jobs := fs.Int("jobs", 20, "number of hello jobs to run")
	concurrency := fs.Int("concurrency", 1, "jobs in flight at once (the miner offers this many executors)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *jobs < 1 || *concurrency < 1 {
		return fmt.Errorf("%w: -jobs and -concurrency must be at least 1", errUsage)
	}
	net, err := startDevnet(ctx, devnet.Config{
		Executors: *concurrency,
		Logger:    slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer net.Close()

	// One warm-up job so image and engine caches do not count against the first sample.
	if _, err := net.RunJob(ctx, net.HelloJob()); err != nil {
		return err
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failed    int
		firstErr  error
	)
	next := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for range *concurrency {
		wg.Go(func() {
			for range next {
				t0 := time.Now()
				res, err := net.RunJob(ctx, net.HelloJob())
				mu.Lock()
				if err == nil && res.Failed() {
					err = fmt.Errorf("job %s: %s %s: %s", res.UUID, res.Status, res.Reason, res.Message)
				}
				if err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					latencies = append(latencies, time.Since(t0))
				}
				mu.Unlock()
			}
		})
	}
feed:
	for range *jobs {
		select {
		case next <- struct{}{}:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	wall := time.Since(start)

	fmt.Fprintf(stdout, "hello jobs on the devnet (validator -> miner -> executor -> Docker and back)\n")
	fmt.Fprintf(stdout, "jobs %d, concurrency %d, completed %d, failed %d, wall %s, %.2f jobs/s\n",
		*jobs, *concurrency, len(latencies), failed, wall.Round(time.Millisecond), float64(len(latencies))/wall.Seconds())
	if len(latencies) > 0 {
		slices.Sort(latencies)
		q := func(p float64) time.Duration {
			return latencies[int(p*float64(len(latencies)-1))].Round(time.Millisecond)
		}
		fmt.Fprintf(stdout, "job latency: min %s  p50 %s  p90 %s  max %s\n", q(0), q(0.5), q(0.9), q(1))
	}
	if firstErr != nil {
		return fmt.Errorf("%d of %d jobs failed; first: %w", failed, *jobs, firstErr)
	}
	return nil
}
