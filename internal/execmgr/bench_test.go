package execmgr_test

// BenchmarkProcessExecutorJob compares one hello job through the miner with process
// executors (`horde executor serve` children, as `horde miner run` starts them) with a bare
// Engine API run of the same container. It needs the local Docker engine and is skipped
// without one:
//
//	go test -run '^$' -bench ProcessExecutorJob -benchtime 10x ./internal/execmgr/

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/sim"
	"github.com/computehorde/horde/internal/execmgr"
	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/executor/docker/dockertest"
	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/miner"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/syncbuf"
	"github.com/computehorde/horde/internal/validator"
)

const benchNetUID chain.NetUID = 12

// benchHelloPrefix starts the hello job's stdout.
const benchHelloPrefix = "hello from horde"

// BenchmarkProcessExecutorJob runs, per op:
//
//   - process-executor: a validator (package validator, in this process) runs the hello job
//     on a miner (loopback, SQLite file stores, a simulated chain) whose executor manager is
//     execmgr.Process: each job starts a `horde executor serve` child, built here with
//     CGO_ENABLED=0 as the release is, which creates, starts, waits and removes the
//     container on the local engine. An op ends when the child has exited, so ops do not
//     overlap; roundtrip-ms is the validator's part (connect → JobFinished) and exit-ms
//     what follows it (the child removing its container and exiting).
//   - bare-engine: the same container created, started, waited, its logs read and removed
//     straight through the Engine API (dockertest.BareRun), with the host config of
//     localrun's BenchmarkExecutorVsBare: no network, no capabilities, /volume and /output
//     bind mounts, the same limits.
//   - side-by-side: one of each per op, so that both see the same engine and host load
//     (container start times drift by tens of percent between runs); bare-ms, executor-ms
//     (the whole process-executor op) and overhead-ms, their difference.
func BenchmarkProcessExecutorJob(b *testing.B) {
	cli := jobimagetest.Engine(b) // skips without a Docker engine
	img := jobimagetest.Hello(b)
	b.Cleanup(jobimagetest.Cleanup)
	bin := benchBuildHorde(b)
	b.Run("process-executor", func(b *testing.B) {
		job := benchProcessMiner(b, bin, img)
		var roundTrip, exit time.Duration
		for b.Loop() {
			rt, ex := job()
			roundTrip, exit = roundTrip+rt, exit+ex
		}
		b.ReportMetric(benchPerOpMS(b, roundTrip), "roundtrip-ms")
		b.ReportMetric(benchPerOpMS(b, exit), "exit-ms")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
	})
	b.Run("bare-engine", func(b *testing.B) {
		run := benchBareRun(b, cli, img)
		for b.Loop() {
			run()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
	})
	b.Run("side-by-side", func(b *testing.B) {
		job, run := benchProcessMiner(b, bin, img), benchBareRun(b, cli, img)
		var bare, executor time.Duration
		for b.Loop() {
			start := time.Now()
			run()
			bare += time.Since(start)
			start = time.Now()
			job()
			executor += time.Since(start)
		}
		b.ReportMetric(benchPerOpMS(b, bare), "bare-ms")
		b.ReportMetric(benchPerOpMS(b, executor), "executor-ms")
		b.ReportMetric(benchPerOpMS(b, executor-bare), "overhead-ms")
	})
}

func benchPerOpMS(b *testing.B, d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000 / float64(b.N)
}

// benchBuildHorde builds the horde executable as cmd/horde's tests do: static, CGO_ENABLED=0.
func benchBuildHorde(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "horde")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/computehorde/horde/cmd/horde")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("CGO_ENABLED=0 go build ./cmd/horde: %v\n%s", err, out)
	}
	return bin
}

// benchProcessMiner starts the miner with process executors and a validator, and returns
// the function that runs one hello job on it: it returns once the job's executor process has
// exited, with the validator's round trip and the wait for the exit after it.
func benchProcessMiner(b *testing.B, bin, img string) (job func() (roundTrip, exit time.Duration)) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	b.Cleanup(cancel)
	logs := &syncbuf.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	fail := func(format string, args ...any) {
		b.Helper()
		b.Fatalf(format+"\n--- miner and executor log ---\n%s", append(args, logs.String())...)
	}

	alice, bob := benchKey(b, "//Alice"), benchKey(b, "//Bob")
	permit := true
	c, err := sim.New(sim.Genesis{
		NetUID: benchNetUID, Hyperparams: sim.DefaultHyperparams(), RelaxedAxonIPs: true, // the miner is on loopback
		Neurons: []sim.NeuronSpec{
			{Hotkey: chain.Hotkey(alice.SS58()), Coldkey: "c1", Stake: 1e13, ValidatorPermit: &permit},
			{Hotkey: chain.Hotkey(bob.SS58()), Coldkey: "c2"},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	openStore := func(name string) *store.DB {
		db, err := store.Open(ctx, store.Config{DSN: "sqlite:" + filepath.Join(dir, name)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		return db
	}
	minerDB, validatorDB := openStore("miner.db"), openStore("validator.db")
	mc, err := chain.NewMetagraphCache(chain.CacheConfig{Chain: c, NetUID: benchNetUID, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := netip.MustParseAddrPort(lis.Addr().String())
	workDir := filepath.Join(dir, "jobs")
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		b.Fatal(err)
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	execID := "horde-bench-" + hex.EncodeToString(suffix[:])
	execs := &execmgr.Process{
		Binary: bin, MinerURL: "ws://" + addr.String(),
		Args:   []string{"--work-dir", workDir, "--executor-id", execID},
		Logger: logger,
	}
	m, err := miner.New(miner.Config{
		Keypair: bob, Chain: c, Metagraph: mc, NetUID: benchNetUID, Store: minerDB, Executors: execs,
		Manifest:          protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 1}},
		MinValidatorStake: 1000, Axon: addr, Logger: logger,
	})
	if err != nil {
		lis.Close()
		b.Fatal(err)
	}
	srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	b.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			b.Errorf("miner server: %v", err)
		}
		m.Close()
		if err := execs.Close(); err != nil {
			b.Errorf("executors: %v", err)
		}
		benchSweep(b, workDir, execID)
	})
	// The miner checks its axon in the metagraph and announces it; the next block shows it
	// to the validator.
	if err := mc.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	if st := m.CheckAxon(ctx); !st.OK {
		b.Fatalf("miner axon: %v", st.Err)
	}
	c.Advance(1)
	if err := mc.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	v, err := validator.New(validator.Config{
		Keypair: alice, Chain: c, Metagraph: mc, NetUID: benchNetUID, Store: validatorDB,
		Classes: hwclass.Default(), Logger: logger,
	})
	if err != nil {
		b.Fatal(err)
	}
	spec := protocol.V2JobRequest{
		ExecutorClass: protocol.ExecutorClassAlwaysOnTest, DockerImage: img,
		DownloadTimeLimit: 30, ExecutionTimeLimit: 60, UploadTimeLimit: 30,
	}
	return func() (roundTrip, exit time.Duration) {
		start := time.Now()
		res, err := v.RunJob(ctx, m.Hotkey(), spec)
		finished := time.Now()
		if err != nil {
			fail("RunJob: %v", err)
		}
		if res.Status != protocol.JobStatusCompleted || !strings.HasPrefix(res.Stdout, benchHelloPrefix) {
			fail("job %+v", res)
		}
		for execs.Running() > 0 {
			if time.Since(finished) > time.Minute {
				fail("the executor process has not exited a minute after its job finished")
			}
			time.Sleep(200 * time.Microsecond)
		}
		return finished.Sub(start), time.Since(finished)
	}
}

// benchBareRuns numbers the bare containers of this process.
var benchBareRuns atomic.Int64

// benchBareRun returns the function that runs the hello container once through the Engine
// API.
func benchBareRun(b *testing.B, cli *client.Client, img string) (run func()) {
	ctx := context.Background()
	dir := b.TempDir()
	for _, d := range []string{"volume", "output"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o777); err != nil {
			b.Fatal(err)
		}
	}
	limits := executor.Limits{MemoryBytes: 512 << 20, NanoCPUs: 1e9, Pids: 256}
	host := &container.HostConfig{
		NetworkMode: "none", SecurityOpt: []string{"no-new-privileges"}, CapDrop: []string{"ALL"},
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: filepath.Join(dir, "volume"), Target: "/volume", ReadOnly: true},
			{Type: mount.TypeBind, Source: filepath.Join(dir, "output"), Target: "/output"},
		},
		Resources: container.Resources{Memory: limits.MemoryBytes, MemorySwap: limits.MemoryBytes, NanoCPUs: limits.NanoCPUs, PidsLimit: &limits.Pids},
	}
	return func() {
		name := fmt.Sprintf("horde-bench-bare-%d-%d", os.Getpid(), benchBareRuns.Add(1))
		stdout, err := dockertest.BareRun(ctx, cli, &container.Config{Image: img}, host, name)
		if err != nil || !strings.HasPrefix(stdout, benchHelloPrefix) {
			b.Fatalf("bare run: %q %v", stdout, err)
		}
	}
}

// benchSweep removes whatever the benchmark's executors left on the engine and in workDir.
func benchSweep(b *testing.B, workDir, execID string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rt, err := docker.New(ctx, docker.Options{WorkDir: workDir, ExecutorID: execID})
	if err != nil {
		b.Errorf("sweep: %v", err)
		return
	}
	defer rt.Close()
	if err := rt.Sweep(ctx); err != nil {
		b.Errorf("sweep: %v", err)
	}
}

func benchKey(b *testing.B, uri string) *keys.Keypair {
	b.Helper()
	k, err := keys.FromURI(uri)
	if err != nil {
		b.Fatal(err)
	}
	return k
}
