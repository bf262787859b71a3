package validator

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/scoring"
	"github.com/computehorde/horde/jobs/bench/benchjob"
)

// benchMiner solves the benchmark the validator sends, its container "running" speed times
// faster than the reference machine on the fake clock; wrong makes it answer wrongly.
func benchMiner(speed float64, wrong bool) minerScript {
	return func(p *minerPeer, job string) {
		p.accept(job)
		p.ready(job)
		req := p.got[len(p.got)-1].(*protocol.V0JobRequest)
		tasks, err := benchjob.ParseArgs(req.DockerRunCmd, io.Discard)
		if err != nil {
			p.fail("miner: bad benchmark arguments: %v", err)
		}
		secrets, err := benchjob.SolveAll(tasks, 1)
		if err != nil {
			p.fail("miner: cannot solve the benchmark: %v", err)
		}
		var cost uint64
		var out strings.Builder
		for _, x := range secrets {
			cost += benchjob.Cost(x)
			if wrong {
				x++
			}
			fmt.Fprintln(&out, x)
		}
		cls, _ := p.e.v.cfg.Classes.Lookup(p.initial.ExecutorClass)
		took := time.Duration(float64(cost) / (p.e.v.benchRate() * float64(classCores(cls))) / speed * float64(time.Second))
		// The validator's execution deadline: the clock has not moved since it sent the job.
		tm := p.initial.ExecutorTiming
		due := p.e.clock.Now().Add(time.Duration(tm.AllowedLeeway+tm.DownloadTimeLimit+tm.ExecutionTimeLimit) * time.Second)
		p.send(&protocol.V0VolumesReadyRequest{JobUUID: job})
		if err := p.e.clock.AwaitTimer(p.ctx, due); err != nil { // it has read volumes ready
			p.fail("miner: the validator never waited for the execution: %v", err)
		}
		p.e.clock.Advance(took)
		p.send(&protocol.V0ExecutionDoneRequest{JobUUID: job})
		p.send(&protocol.V0JobFinishedRequest{JobUUID: job, DockerProcessStdout: out.String()})
	}
}

// near reports whether a and b agree to a part in a million (the fake clock counts whole
// nanoseconds).
func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(math.Abs(a), math.Abs(b)) }

// TestBenchmarkEfficiency: the factor is 1 before a benchmark; a run twice as fast as the
// reference gives 2, with the first run's limits extended for a new miner; a wrong answer
// scores zero for its run.
func TestBenchmarkEfficiency(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BenchImage, c.BenchRate, c.BenchSeconds = "horde-jobs/bench:test", 1000, 10 })
	const class = protocol.ExecutorClassAlwaysOnTest
	if f := e.v.Efficiency(e.bob.SS58(), class); f != 1 {
		t.Fatalf("before any benchmark: %v, want 1", f)
	}
	m := e.startMiner(benchMiner(2, false))
	run, err := e.v.Benchmark(t.Context(), e.bob.SS58(), class)
	if err != nil {
		t.Fatal(err)
	}
	p := m.wait()
	if !run.Correct || !near(run.Factor, 2) || !near(run.Smoothed, 2) || !near(e.v.Efficiency(e.bob.SS58(), class), 2) {
		t.Errorf("first run %+v", run)
	}
	if got := p.initial.ExecutorTiming.ExecutionTimeLimit; got != (3*10+60)*newMinerTimeFactor {
		t.Errorf("a new miner's execution limit: %d s, want the extended %d s", got, (3*10+60)*newMinerTimeFactor)
	}

	e.chain.Advance(2) // the serving rate limit
	m = e.startMiner(benchMiner(2, true))
	run, err = e.v.Benchmark(t.Context(), e.bob.SS58(), class)
	if err != nil {
		t.Fatal(err)
	}
	p = m.wait()
	if run.Correct || run.Factor != 0 || !near(run.Smoothed, 1) {
		t.Errorf("wrong answer %+v, want factor 0 and the smoothed factor halfway to it", run)
	}
	if got := p.initial.ExecutorTiming.ExecutionTimeLimit; got != 3*10+60 {
		t.Errorf("a known miner's execution limit: %d s, want %d s", got, 3*10+60)
	}
}

// TestNewMinerBenchmarked: RunBenchmarks benchmarks every class of a miner it has not
// benchmarked yet, once.
func TestNewMinerBenchmarked(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BenchImage, c.BenchRate, c.BenchSeconds = "horde-jobs/bench:test", 1000, 10 })
	const class = protocol.ExecutorClassAlwaysOnTest
	m := e.startMiner(benchMiner(1, false))
	e.v.manifests.announce(e.bob.SS58(), protocol.Manifest{{Class: class, Count: 1}}, e.clock.Now())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.v.RunBenchmarks(ctx, time.Hour) }()
	m.wait()
	for deadline := time.Now().Add(10 * time.Second); !e.v.efficiency.benchmarked(scoring.MinerClass{Miner: e.bob.SS58(), Class: class}); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the new miner was not benchmarked")
		}
	}
	cancel()
	<-done
	if f := e.v.Efficiency(e.bob.SS58(), class); !near(f, 1) {
		t.Errorf("a run as fast as the reference: %v, want 1", f)
	}
}
