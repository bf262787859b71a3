package devnet

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/clock/clocktest"
	"github.com/computehorde/horde/internal/jobimage"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/scoring"
	"github.com/computehorde/horde/internal/validator"
)

// Benchmark scenarios (mission rules 5, 8 and 9) on the whole subnet: real miners, executors
// and Docker, with the validators' (and miners') clock a fake one that the test moves, so
// that a job executes for exactly as long as the test says and no test waits for a deadline.

const (
	// benchLeeway is validator.Config's default Leeway, which the devnet keeps: the
	// validator's cumulative deadline of a job starts that long after the job is sent.
	benchLeeway = 5 * time.Second
	// benchSeconds sizes the benchmarks: a second of searching on the reference machine,
	// at a rate that keeps the real run short on a loaded 2-core host.
	benchSeconds = 1
	benchRate    = 2e5
	// benchLimit is a benchmark's download and execution limit (validator: 3×BenchSeconds
	// + 60 s), newBenchLimit a first one's, extended 3× for a miner never benchmarked.
	benchLimit    = 3*benchSeconds + 60
	newBenchLimit = 3 * benchLimit
	// benchWorked and helloWorked are how long a benchmark and an organic job execute on
	// the validators' clock.
	benchWorked = 2 * time.Second
	helloWorked = time.Minute
)

const benchClass = protocol.ExecutorClassAlwaysOnTest

// startBenchDevnet starts a devnet with the benchmark image and the fake clock.
func startBenchDevnet(t *testing.T, fake *clocktest.Fake, opts ...func(*Config)) *Devnet {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: needs the Docker engine; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "bench")
	if err := jobimage.CompileStatic(t.Context(), "github.com/computehorde/horde/jobs/bench", bin); err != nil {
		t.Fatalf("compile jobs/bench: %v", err)
	}
	return startDevnet(t, append([]func(*Config){func(c *Config) {
		c.Clock = fake
		c.BenchBinary, c.BenchImage = bin, "horde-test/bench:e2e"
		c.BenchRate, c.BenchSeconds = benchRate, benchSeconds
	}}, opts...)...)
}

// executeTimed runs job, which drives one job from a validator, and once the validator waits for
// the job's execution to end — its timer at the cumulative deadline: now + leeway + the
// download and execution limits, the fake clock standing still until then — moves the fake
// clock by worked, so that the job executes for exactly that long on the validators' clock.
// The clock then moves one second more, so that the job's last receipt, stamped at its end,
// lies inside a scoring window ending now. A validator enforcing other limits never waits
// for that deadline, and the test fails saying so.
func executeTimed[T any](t *testing.T, fake *clocktest.Fake, download, execution int, worked time.Duration, job func() (T, error)) T {
	t.Helper()
	due := fake.Now().Add(benchLeeway + time.Duration(download+execution)*time.Second)
	type outcome struct {
		v   T
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		v, err := job()
		done <- outcome{v, err}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	executing := make(chan error, 1)
	go func() { executing <- fake.AwaitTimer(ctx, due) }()
	select {
	case err := <-executing:
		if err != nil {
			t.Fatalf("the validator never waited for the job's execution until %v (limits %d s + %d s): %v", due, download, execution, err)
		}
	case o := <-done:
		t.Fatalf("the job ended without the validator waiting for its execution until %v (limits %d s + %d s): %+v, %v",
			due, download, execution, o.v, o.err)
	}
	fake.Advance(worked)
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	fake.Advance(time.Second)
	return o.v
}

// benchmark has v benchmark miner's test class, executing for benchWorked, with the limits
// limit, and checks that the run completed.
func benchmark(t *testing.T, d *Devnet, fake *clocktest.Fake, v *ValidatorNode, miner string, limit int) validator.BenchRun {
	t.Helper()
	run := executeTimed(t, fake, limit, limit, benchWorked, func() (validator.BenchRun, error) {
		return v.Validator.Benchmark(t.Context(), miner, benchClass)
	})
	checkBenchRun(t, d, v, run, miner, limit)
	return run
}

// benchmarkRound has v run a benchmark round, which must hold a single benchmark, of miner,
// executing for benchWorked with the limits limit.
func benchmarkRound(t *testing.T, d *Devnet, fake *clocktest.Fake, v *ValidatorNode, miner string, limit int) validator.BenchRun {
	t.Helper()
	runs := executeTimed(t, fake, limit, limit, benchWorked, func() ([]validator.BenchRun, error) {
		return v.Validator.BenchmarkRound(t.Context()), nil
	})
	if len(runs) != 1 || runs[0].Miner != miner || runs[0].Class != benchClass {
		t.Fatalf("validator %s's benchmark round ran %+v; want one benchmark of %s on %s", v.URI, runs, benchClass, miner)
	}
	checkBenchRun(t, d, v, runs[0], miner, limit)
	return runs[0]
}

// checkBenchRun checks that the benchmark completed, executed for benchWorked, and that the
// validator asked for it, and the miner took it, with the limits limit.
func checkBenchRun(t *testing.T, d *Devnet, v *ValidatorNode, run validator.BenchRun, miner string, limit int) {
	t.Helper()
	if run.Result == nil || run.Result.Status != protocol.JobStatusCompleted || run.Result.Executed != benchWorked {
		t.Fatalf("validator %s's benchmark of %s: %+v; want completed, executing %v", v.URI, miner, run.Result, benchWorked)
	}
	job, err := v.Store.GetJob(t.Context(), run.Result.UUID)
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Download  int `json:"download_time_limit"`
		Execution int `json:"execution_time_limit"`
	}
	if err := json.Unmarshal(job.Spec, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Download != limit || spec.Execution != limit || job.MinerHotkey != miner {
		t.Errorf("validator %s's benchmark job %s: limits %d s and %d s on %s, want %d s each on %s", v.URI, job.UUID,
			spec.Download, spec.Execution, job.MinerHotkey, limit, miner)
	}
	i := slices.IndexFunc(d.Miners, func(m *MinerNode) bool { return m.Hotkey == miner })
	if dl, ex := benchMinerTiming(t, d.Miners[i], job.UUID); dl != limit || ex != limit {
		t.Errorf("miner %s got limits %d s and %d s for validator %s's benchmark, want %d s each", d.Miners[i].URI, dl, ex, v.URI, limit)
	}
}

// benchMinerTiming is the executor timing the miner stored for job.
func benchMinerTiming(t *testing.T, m *MinerNode, job string) (download, execution int) {
	t.Helper()
	j, err := m.Store.GetJob(t.Context(), job)
	if err != nil {
		t.Fatalf("miner %s: %v", m.URI, err)
	}
	var initial struct {
		Timing struct {
			Download  int `json:"download_time_limit"`
			Execution int `json:"execution_time_limit"`
		} `json:"executor_timing"`
	}
	if err := json.Unmarshal(j.Spec, &initial); err != nil {
		t.Fatal(err)
	}
	return initial.Timing.Download, initial.Timing.Execution
}

// benchHello runs the hello job from v on miner, executing for helloWorked.
func benchHello(t *testing.T, d *Devnet, fake *clocktest.Fake, v *ValidatorNode, miner string) {
	t.Helper()
	spec := d.HelloJob("scenario")
	res := executeTimed(t, fake, spec.DownloadTimeLimit, spec.ExecutionTimeLimit, helloWorked, func() (*validator.JobResult, error) {
		return v.Validator.RunJob(t.Context(), miner, spec)
	})
	if res.Status != protocol.JobStatusCompleted || res.Executed != helloWorked {
		t.Fatalf("the hello job on %s: %s (%s: %s), executed %v; want completed, executing %v", miner, res.Status, res.Reason, res.Message, res.Executed, helloWorked)
	}
}

// awaitBenchScores pulls the miners' receipts into every validator until ok holds for each
// validator's scores of the window ending now (on the validators' clock).
func awaitBenchScores(t *testing.T, d *Devnet, fake *clocktest.Fake, what string, ok func(v *ValidatorNode, r scoring.Result) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, v := range d.Validators {
		for {
			// The miners publish a receipt a second after storing it.
			if err := d.SyncReceipts(t.Context()); err != nil {
				t.Fatal(err)
			}
			r, err := v.Validator.Scores(t.Context(), fake.Now())
			if err != nil {
				t.Fatal(err)
			}
			if ok(v, r) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("validator %s's scores %+v: not yet %s", v.URI, r.Miners, what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// scoreOf is miner's score in r; ok is false when r has none.
func scoreOf(r scoring.Result, miner string) (scoring.MinerScore, bool) {
	i := slices.IndexFunc(r.Miners, func(m scoring.MinerScore) bool { return m.Hotkey == miner })
	if i < 0 {
		return scoring.MinerScore{}, false
	}
	return r.Miners[i], true
}

// awaitBenchWeights waits until ok holds for the weights every validator has set on chain (once
// per tempo).
func awaitBenchWeights(t *testing.T, d *Devnet, what string, ok func(w map[chain.UID]uint16) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, v := range d.Validators {
		for {
			w, err := d.Chain.Weights(NetUID, chain.Hotkey(v.Hotkey))
			if err != nil {
				t.Fatal(err)
			}
			if ok(w) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("validator %s's weights on chain %v: not yet %s", v.URI, w, what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestMinerJoiningLaterIsBenchmarkedWithExtendedLimits: a miner that joins a running subnet
// of two validators and one miner has the efficiency factor 1 at every validator until
// benchmarked, and its first work counts at that factor; every validator's next benchmark
// round takes it alone, with the limits of a first benchmark extended 3× (as the validator
// asks them and as the miner gets them), and a later benchmark has the usual ones; once its
// work is countersigned, every validator's weights of the next tempo include it.
func TestMinerJoiningLaterIsBenchmarkedWithExtendedLimits(t *testing.T) {
	fake := clocktest.NewFake(time.Now().Truncate(time.Second))
	d := startBenchDevnet(t, fake, func(c *Config) { c.Validators, c.Miners = 2, 1 })
	ctx := t.Context()
	bob := d.Miners[0]

	// Each validator benchmarks the miner it started with: a first benchmark too.
	for _, v := range d.Validators {
		benchmarkRound(t, d, fake, v, bob.Hotkey, newBenchLimit)
	}

	dave, err := d.AddMiner(ctx, "//Dave", MinerSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if dave.URI != MinerDevURI(1) || len(d.Miners) != 2 {
		t.Fatalf("AddMiner: %s, %d miners", dave.URI, len(d.Miners))
	}
	daveUID, bobUID := neuronUID(t, d, dave.Hotkey), neuronUID(t, d, bob.Hotkey)
	for _, v := range d.Validators {
		if f := v.Validator.Efficiency(dave.Hotkey, benchClass); f != 1 {
			t.Errorf("validator %s: the new miner's efficiency before any benchmark = %v, want 1", v.URI, f)
		}
		// No work, no weight.
		if w, err := d.Chain.Weights(NetUID, chain.Hotkey(v.Hotkey)); err != nil || w[daveUID] != 0 {
			t.Errorf("validator %s's weights %v (%v) before the new miner worked: want none for uid %d", v.URI, w, err, daveUID)
		}
	}

	// Its first work, before any benchmark, counts at factor 1 at every validator.
	benchHello(t, d, fake, d.Validators[0], dave.Hotkey)
	awaitBenchScores(t, d, fake, "counting the new miner's job at factor 1", func(v *ValidatorNode, r scoring.Result) bool {
		m, ok := scoreOf(r, dave.Hotkey)
		return ok && len(m.Rows) == 1 && m.Rows[0].WorkedSeconds == int64(helloWorked/time.Second) && m.Rows[0].Efficiency == 1
	})

	// Every validator's next round benchmarks the newcomer alone, with the extended limits,
	// and the miner's executor got those.
	for _, v := range d.Validators {
		run := benchmarkRound(t, d, fake, v, dave.Hotkey, newBenchLimit)
		if !run.Correct || run.Factor <= 0 || v.Validator.Efficiency(dave.Hotkey, benchClass) != run.Smoothed {
			t.Errorf("validator %s's first benchmark of the new miner: correct %v, factor %v, efficiency %v", v.URI,
				run.Correct, run.Factor, v.Validator.Efficiency(dave.Hotkey, benchClass))
		}
	}
	// Once benchmarked, a miner is benchmarked with the usual limits.
	benchmark(t, d, fake, d.Validators[0], dave.Hotkey, benchLimit)

	// Its work (the job and the benchmarks) counts at the measured factors, and the next
	// tempo's weights of every validator include it.
	counted := map[string]float64{}
	awaitBenchScores(t, d, fake, "counting the new miner's work at its measured factor", func(v *ValidatorNode, r scoring.Result) bool {
		m, ok := scoreOf(r, dave.Hotkey)
		f := v.Validator.Efficiency(dave.Hotkey, benchClass)
		// The job and the benchmarks: one by each validator, one more by the first.
		want := int64((helloWorked + time.Duration(len(d.Validators)+1)*benchWorked) / time.Second)
		if !ok || len(m.Rows) != 1 || m.Rows[0].WorkedSeconds != want || m.Rows[0].Efficiency != f || f == 1 || m.Weight == 0 {
			return false
		}
		counted[v.URI] = f
		return true
	})
	awaitBenchWeights(t, d, "including the new miner", func(w map[chain.UID]uint16) bool { return w[daveUID] > 0 && w[bobUID] > 0 })
	t.Logf("new miner's efficiency at each validator: %v", counted)
	waitNoContainers(t, d)
}

// TestCheatingMinerEndsWithZeroWeight: a miner whose executors answer the benchmark without
// searching (fast, and wrong) has weight beside an honest miner while both only did organic
// work; once every validator has benchmarked both, the cheater's efficiency is 0 at each,
// and its weight on chain is 0 for every validator while the honest one's stays above 0.
func TestCheatingMinerEndsWithZeroWeight(t *testing.T) {
	fake := clocktest.NewFake(time.Now().Truncate(time.Second))
	offer := protocol.Manifest{{Class: benchClass, Count: 1}}
	d := startBenchDevnet(t, fake, func(c *Config) {
		c.Validators = 2
		c.MinerSpecs = []MinerSpec{{Manifest: offer}, {Manifest: offer, WrongBenchAnswers: true}}
	})
	honest, cheater := d.Miners[0], d.Miners[1]
	honestUID, cheaterUID := neuronUID(t, d, honest.Hotkey), neuronUID(t, d, cheater.Hotkey)

	// Both work; until benchmarked, both count at factor 1 and get weight.
	for _, m := range d.Miners {
		benchHello(t, d, fake, d.Validators[0], m.Hotkey)
	}
	awaitBenchScores(t, d, fake, "counting both miners' jobs", func(_ *ValidatorNode, r scoring.Result) bool {
		h, okH := scoreOf(r, honest.Hotkey)
		c, okC := scoreOf(r, cheater.Hotkey)
		return okH && okC && h.Weight > 0 && c.Weight > 0
	})
	awaitBenchWeights(t, d, "for both miners", func(w map[chain.UID]uint16) bool { return w[honestUID] > 0 && w[cheaterUID] > 0 })

	// Every validator benchmarks both. The cheater answers, quickly and wrong: a run of
	// factor 0, so its efficiency is 0; the honest miner's is what it measured.
	for _, v := range d.Validators {
		run := benchmark(t, d, fake, v, cheater.Hotkey, newBenchLimit)
		if run.Correct || run.Factor != 0 || run.Smoothed != 0 || v.Validator.Efficiency(cheater.Hotkey, benchClass) != 0 {
			t.Errorf("validator %s's benchmark of the cheater: correct %v, factor %v, efficiency %v; want wrong, 0, 0", v.URI,
				run.Correct, run.Factor, v.Validator.Efficiency(cheater.Hotkey, benchClass))
		}
		if lines := strings.Fields(run.Result.Stdout); len(lines) == 0 || slices.ContainsFunc(lines, func(l string) bool { return l != "0" }) {
			t.Errorf("the cheater answered %q; want a zero for every search", run.Result.Stdout)
		}
		run = benchmark(t, d, fake, v, honest.Hotkey, newBenchLimit)
		want := min(max(float64(run.Reference)/float64(benchWorked), validator.EfficiencyMin), validator.EfficiencyMax)
		if !run.Correct || run.Factor != want || v.Validator.Efficiency(honest.Hotkey, benchClass) != want {
			t.Errorf("validator %s's benchmark of the honest miner: correct %v, factor %v, efficiency %v; want correct, %v", v.URI,
				run.Correct, run.Factor, v.Validator.Efficiency(honest.Hotkey, benchClass), want)
		}
	}

	// Every validator counts the cheater's work at 0 and the next tempo's weights on chain
	// give it nothing.
	awaitBenchScores(t, d, fake, "counting the cheater's work at 0", func(_ *ValidatorNode, r scoring.Result) bool {
		h, _ := scoreOf(r, honest.Hotkey)
		c, ok := scoreOf(r, cheater.Hotkey)
		// Its job and the benchmarks of each validator.
		want := int64((helloWorked + time.Duration(len(d.Validators))*benchWorked) / time.Second)
		return ok && len(c.Rows) == 1 && c.Rows[0].WorkedSeconds == want && c.Rows[0].Efficiency == 0 &&
			c.Points == 0 && c.Weight == 0 && h.Weight > 0
	})
	awaitBenchWeights(t, d, "zero for the cheater", func(w map[chain.UID]uint16) bool { return w[cheaterUID] == 0 && w[honestUID] > 0 })
	waitNoContainers(t, d)
}
