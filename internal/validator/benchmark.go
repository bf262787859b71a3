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

	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/scoring"
	"github.com/computehorde/horde/jobs/bench/benchjob"
)

// Benchmarks (mission rules 8 and 9): a validator runs jobs/bench on every class a miner
// offers — find the secrets behind benchSearches hashes in search spaces it chose, so the
// answers are known — and turns the time the container ran into the miner's efficiency
// factor for the class: reference time ÷ measured time, bounded to [EfficiencyMin,
// EfficiencyMax], smoothed across runs. The reference time is what the run's searches cost
// (each secret+1 hashes, scanned in order) at the reference rate on the class's cores, so
// the factor does not depend on where the secrets fell. The spaces scale with the class's
// cores, so a run takes BenchSeconds on a reference machine of the class, on average. A wrong
// answer scores zero for its run. Until benchmarked a miner's factor is 1.
const (
	// DefaultBenchRate is the reference search speed, in hashes per second on one core: a
	// reference machine searches DefaultBenchRate × BenchSeconds candidates in BenchSeconds.
	DefaultBenchRate = 10_000_000
	// DefaultBenchSeconds is how long a benchmark takes a reference machine, on average.
	DefaultBenchSeconds = 10
	// benchSearches is how many searches a run holds: enough that a miner's luck (or an
	// order of search other than the reference's) evens out.
	benchSearches = 16
	EfficiencyMin = 0.1
	EfficiencyMax = 3.0
	// EfficiencySmoothing is the weight of the newest run in the factor.
	EfficiencySmoothing = 0.5
	// newMinerTimeFactor extends a first benchmark's limits: a new miner may still pull
	// the benchmark image.
	newMinerTimeFactor = 3
)

// BenchRun is one benchmark's outcome.
type BenchRun struct {
	Miner   string
	Class   protocol.ExecutorClass
	Result  *JobResult
	Correct bool
	// Reference is how long the run's searches take a reference machine of the class.
	Reference time.Duration
	Factor    float64 // this run's factor (0 for a wrong answer)
	Smoothed  float64 // the miner's efficiency factor for the class after this run
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

// benchAnswered reports whether stdout holds exactly the secrets, one per line.
func benchAnswered(stdout string, secrets []uint64) bool {
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != len(secrets) {
		return false
	}
	for i, l := range lines {
		if got, err := strconv.ParseUint(strings.TrimSpace(l), 10, 64); err != nil || got != secrets[i] {
			return false
		}
	}
	return true
}

// classCores is how many cores a benchmark of the class searches with: the class's CPU
// limit, which the job container gets.
func classCores(c hwclass.Class) int {
	if c.Limits.NanoCPUs > 0 {
		return max(int((c.Limits.NanoCPUs+999_999_999)/1_000_000_000), 1)
	}
	return max(c.CPUCores, 1)
}

// Benchmark runs one benchmark of class on miner and updates its efficiency factor. A job
// that does not complete leaves the factor as it was (the failure is the job's record); a
// wrong answer is a run of factor 0.
func (v *Validator) Benchmark(ctx context.Context, miner string, class protocol.ExecutorClass) (BenchRun, error) {
	if v.cfg.BenchImage == "" {
		return BenchRun{}, fmt.Errorf("validator: no benchmark image configured")
	}
	k := scoring.MinerClass{Miner: miner, Class: class}
	cls, err := v.cfg.Classes.Lookup(class)
	if err != nil {
		return BenchRun{}, fmt.Errorf("validator: benchmark: %w", err)
	}
	// The searches use every core of the class, and a reference machine of those cores
	// takes seconds on average: each search costs space/2 hashes on average.
	seconds, cores := v.benchSeconds(), classCores(cls)
	rate := v.benchRate() * float64(cores)
	space := max(uint64(2*rate*float64(seconds)/benchSearches), 1)
	var salt [16]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return BenchRun{}, err
	}
	secrets := make([]uint64, benchSearches)
	hashes := make([]string, benchSearches)
	var cost uint64
	for i := range secrets {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return BenchRun{}, err
		}
		secrets[i] = binary.BigEndian.Uint64(b[:]) % space
		h := benchjob.Digest(benchjob.TaskSalt(salt[:], i), secrets[i])
		hashes[i] = hex.EncodeToString(h[:])
		cost += benchjob.Cost(secrets[i])
	}
	limit := 3*seconds + 60
	if !v.efficiency.benchmarked(k) {
		limit *= newMinerTimeFactor
	}
	spec := protocol.V2JobRequest{
		UUID: uuid.NewString(), ExecutorClass: class, DockerImage: v.cfg.BenchImage,
		Args:              []string{"--salt", hex.EncodeToString(salt[:]), "--space", strconv.FormatUint(space, 10), "--hashes", strings.Join(hashes, ",")},
		DownloadTimeLimit: limit, ExecutionTimeLimit: limit, UploadTimeLimit: 60,
	}
	// A benchmark runs for minutes; the job's own stage lines follow this one.
	v.log.Info("benchmark started", "miner", miner[:min(10, len(miner))], "class", class, "job", spec.UUID,
		"expected", time.Duration(float64(cost)/rate*float64(time.Second)).Round(time.Second), "limit", time.Duration(limit)*time.Second)
	res, err := v.RunJob(ctx, miner, spec)
	if err != nil {
		return BenchRun{}, err
	}
	run := BenchRun{Miner: miner, Class: class, Result: res, Reference: time.Duration(float64(cost) / rate * float64(time.Second))}
	if res.Status != protocol.JobStatusCompleted {
		v.log.Info("benchmark did not complete", "miner", miner[:min(10, len(miner))], "class", class, "status", res.Status, "reason", res.Reason)
		return run, nil
	}
	run.Correct = benchAnswered(res.Stdout, secrets)
	if run.Correct {
		measured := max(res.Executed, time.Millisecond)
		run.Factor = min(max(float64(run.Reference)/float64(measured), EfficiencyMin), EfficiencyMax)
	}
	run.Smoothed = v.efficiency.update(k, run.Factor, !run.Correct)
	v.reliability.record(miner, run.Correct)
	v.log.Info("benchmark", "miner", miner[:min(10, len(miner))], "class", class, "correct", run.Correct,
		"executed", res.Executed, "reference", run.Reference, "factor", run.Factor, "efficiency", run.Smoothed)
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
