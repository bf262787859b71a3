package validator

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/scoring"
	"github.com/computehorde/horde/jobs/bench/benchjob"
)

// Benchmarks (mission rules 8 and 9): a validator runs jobs/bench on every class a miner
// offers — find the secret behind a hash in a search space it chose, so the answer is known
// — and turns the time the container ran into the miner's efficiency factor for the class:
// reference time ÷ measured time, bounded to [EfficiencyMin, EfficiencyMax], smoothed across
// runs. A wrong answer scores zero for its run. Until benchmarked a miner's factor is 1.
const (
	// DefaultBenchRate is the reference search speed, in hashes per second on one core: a
	// reference machine searches DefaultBenchRate × BenchSeconds candidates in BenchSeconds.
	DefaultBenchRate = 10_000_000
	// DefaultBenchSeconds is how long a benchmark takes a reference machine.
	DefaultBenchSeconds = 10
	EfficiencyMin       = 0.1
	EfficiencyMax       = 3.0
	// EfficiencySmoothing is the weight of the newest run in the factor.
	EfficiencySmoothing = 0.5
	// newMinerTimeFactor extends a first benchmark's limits: a new miner may still pull
	// the benchmark image.
	newMinerTimeFactor = 3
)

// BenchRun is one benchmark's outcome.
type BenchRun struct {
	Miner    string
	Class    protocol.ExecutorClass
	Result   *JobResult
	Correct  bool
	Factor   float64 // this run's factor (0 for a wrong answer)
	Smoothed float64 // the miner's efficiency factor for the class after this run
}

// efficiencyBook keeps each (miner, class)'s efficiency factor and run counts.
type efficiencyBook struct {
	mu sync.Mutex
	m  map[scoring.MinerClass]*efficiency
}

type efficiency struct {
	factor       float64
	runs, failed int
}

func (b *efficiencyBook) update(k scoring.MinerClass, run float64, failed bool) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[scoring.MinerClass]*efficiency{}
	}
	e := b.m[k]
	if e == nil {
		e = &efficiency{factor: run}
		b.m[k] = e
	} else {
		e.factor += EfficiencySmoothing * (run - e.factor)
	}
	e.runs++
	if failed {
		e.failed++
	}
	return e.factor
}

func (b *efficiencyBook) benchmarked(k scoring.MinerClass) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.m[k]
	return ok
}

func (b *efficiencyBook) snapshot() map[scoring.MinerClass]float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[scoring.MinerClass]float64, len(b.m))
	for k, e := range b.m {
		out[k] = e.factor
	}
	return out
}

// Efficiency returns miner's efficiency factor for class: 1 until it is benchmarked.
func (v *Validator) Efficiency(miner string, class protocol.ExecutorClass) float64 {
	if f, ok := v.efficiency.snapshot()[scoring.MinerClass{Miner: miner, Class: class}]; ok {
		return f
	}
	return 1
}

func (v *Validator) benchRate() float64 {
	if v.cfg.BenchRate > 0 {
		return v.cfg.BenchRate
	}
	return DefaultBenchRate
}

func (v *Validator) benchSeconds() int {
	if v.cfg.BenchSeconds > 0 {
		return v.cfg.BenchSeconds
	}
	return DefaultBenchSeconds
}

// Benchmark runs one benchmark of class on miner and updates its efficiency factor. A job
// that does not complete leaves the factor as it was (the failure is the job's record); a
// wrong answer is a run of factor 0.
func (v *Validator) Benchmark(ctx context.Context, miner string, class protocol.ExecutorClass) (BenchRun, error) {
	if v.cfg.BenchImage == "" {
		return BenchRun{}, fmt.Errorf("validator: no benchmark image configured")
	}
	k := scoring.MinerClass{Miner: miner, Class: class}
	seconds := v.benchSeconds()
	space := uint64(v.benchRate() * float64(seconds))
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return BenchRun{}, err
	}
	salt, secret := b[:16], binary.BigEndian.Uint64(b[16:])%space
	hash := benchjob.Digest(salt, secret)
	limit := 3*seconds + 60
	if !v.efficiency.benchmarked(k) {
		limit *= newMinerTimeFactor
	}
	spec := protocol.V2JobRequest{
		UUID: uuid.NewString(), ExecutorClass: class, DockerImage: v.cfg.BenchImage,
		Args:              []string{"--salt", hex.EncodeToString(salt), "--hash", hex.EncodeToString(hash[:]), "--space", strconv.FormatUint(space, 10)},
		DownloadTimeLimit: limit, ExecutionTimeLimit: limit, UploadTimeLimit: 60,
	}
	res, err := v.RunJob(ctx, miner, spec)
	if err != nil {
		return BenchRun{}, err
	}
	run := BenchRun{Miner: miner, Class: class, Result: res}
	if res.Status != protocol.JobStatusCompleted {
		v.log.Info("benchmark did not complete", "miner", miner[:min(10, len(miner))], "class", class, "status", res.Status, "reason", res.Reason)
		return run, nil
	}
	got, perr := strconv.ParseUint(strings.TrimSpace(res.Stdout), 10, 64)
	run.Correct = perr == nil && got == secret
	if run.Correct {
		measured := max(res.Executed, time.Millisecond)
		run.Factor = min(max(float64(seconds)*float64(time.Second)/float64(measured), EfficiencyMin), EfficiencyMax)
	}
	run.Smoothed = v.efficiency.update(k, run.Factor, !run.Correct)
	v.reliability.record(miner, run.Correct)
	v.log.Info("benchmark", "miner", miner[:min(10, len(miner))], "class", class, "correct", run.Correct,
		"executed", res.Executed, "factor", run.Factor, "efficiency", run.Smoothed)
	return run, nil
}

// RunBenchmarks benchmarks, every interval, each class of each miner serving an axon that
// the validator has not benchmarked yet — every miner when the validator starts without
// history, then each miner that appears, on the classes of its honoured manifest. It returns
// nil when ctx ends.
func (v *Validator) RunBenchmarks(ctx context.Context, interval time.Duration) error {
	for {
		v.BenchmarkRound(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-v.cfg.Clock.After(interval):
		}
	}
}

// benchConcurrency bounds the benchmarks a round runs at once: each one is a job on a
// different miner, so a round over many miners takes about as long as its slowest few.
const benchConcurrency = 64

// BenchmarkRound benchmarks, concurrently, every class of every miner's honoured manifest
// not benchmarked yet, and returns the runs.
func (v *Validator) BenchmarkRound(ctx context.Context) []BenchRun {
	var todo []scoring.MinerClass
	for _, miner := range v.candidates("") {
		m, ok := v.manifests.honoured(miner)
		if !ok {
			continue
		}
		for _, e := range m {
			k := scoring.MinerClass{Miner: miner, Class: e.Class}
			if e.Count > 0 && !v.efficiency.benchmarked(k) {
				todo = append(todo, k)
			}
		}
	}
	runs := make([]BenchRun, len(todo))
	sem := make(chan struct{}, benchConcurrency)
	var wg sync.WaitGroup
	for i, k := range todo {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			run, err := v.Benchmark(ctx, k.Miner, k.Class)
			if err != nil && ctx.Err() == nil {
				v.log.Warn("benchmark failed", "miner", k.Miner[:min(10, len(k.Miner))], "class", k.Class, "err", err)
			}
			runs[i] = run
		})
	}
	wg.Wait()
	return runs
}
