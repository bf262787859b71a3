package devnet

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/clock/clocktest"
	"github.com/computehorde/horde/internal/jobimage"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/validator"
)

// Scenario tests of the validator against the devnet's real miner, executors and Docker
// engine (the validator package's own tests drive scripted miners).

// TestBenchmarkOnRealMiner: a miner's efficiency factor is 1 until the validator has
// benchmarked it, and the measured factor after: the benchmark image runs on a real
// executor and its answer is checked.
func TestBenchmarkOnRealMiner(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bench")
	if !testing.Short() {
		if err := jobimage.CompileStatic(t.Context(), "github.com/computehorde/horde/jobs/bench", bin); err != nil {
			t.Fatalf("compile jobs/bench: %v", err)
		}
	}
	d := startDevnet(t, func(c *Config) {
		c.BenchBinary, c.BenchImage = bin, "horde-test/bench:e2e"
		// A run of about a second on the reference machine.
		c.BenchRate, c.BenchSeconds = 2e6, 1
	})
	miner, class := d.Miner.Hotkey(), protocol.ExecutorClassAlwaysOnTest
	if f := d.Validator.Efficiency(miner, class); f != 1 {
		t.Fatalf("efficiency before any benchmark = %v, want 1", f)
	}
	run, err := d.Validator.Benchmark(t.Context(), miner, class)
	if err != nil {
		t.Fatal(err)
	}
	if run.Result.Status != protocol.JobStatusCompleted || !run.Correct {
		t.Fatalf("benchmark on the real executor: %s (%s: %s), correct %v, stdout %q", run.Result.Status,
			run.Result.Reason, run.Result.Message, run.Correct, run.Result.Stdout)
	}
	want := min(max(float64(run.Reference)/float64(run.Result.Executed), validator.EfficiencyMin), validator.EfficiencyMax)
	if run.Factor != want || run.Result.Executed <= 0 || run.Reference <= 0 {
		t.Errorf("factor %v for a run of %v, want reference %v ÷ measured = %v", run.Factor, run.Result.Executed, run.Reference, want)
	}
	if f := d.Validator.Efficiency(miner, class); f != run.Smoothed || f == 1 {
		t.Errorf("efficiency after the benchmark = %v, want the measured run's %v", f, run.Smoothed)
	}
	t.Logf("benchmark ran %v on the real executor for a reference of %v: factor %.3f", run.Result.Executed, run.Reference, run.Factor)
}

// runCompressed runs a hello job that sleeps 12 s of real time on the devnet's real miner,
// while the fake clock of the validator (and of the miner's checks of its timestamps) is moved through the given stretch of execution, interval
// boundary by boundary. It returns the result and the work-interval receipts the miner
// countersigned and stored (waiting for wantIntervals of them).
func runCompressed(t *testing.T, executionLimit int, stretch time.Duration, wantIntervals int) (*validator.JobResult, []protocol.WorkIntervalReceiptPayload) {
	t.Helper()
	fake := clocktest.NewFake(time.Now().Truncate(time.Second))
	d := startDevnet(t, func(c *Config) { c.Clock = fake })
	spec := d.HelloJob("--sleep", "12s")
	spec.ExecutionTimeLimit = executionLimit
	running := make(chan struct{})
	type outcome struct {
		res *validator.JobResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, _, err := d.Validator.RouteWith(t.Context(), spec, fake.Now().Add(time.Hour), func(s protocol.JobStatus) {
			if s == protocol.JobStatusVolumesReady {
				close(running)
			}
		})
		done <- outcome{res, err}
	}()
	select {
	case <-running:
	case o := <-done:
		t.Fatalf("the job ended before it ran: %+v, %v", o.res, o.err)
	}
	start := fake.Now()
	for at := validator.WorkInterval; at <= stretch; at += validator.WorkInterval {
		if err := fake.AwaitTimer(t.Context(), start.Add(at)); err != nil {
			t.Fatal(err)
		}
		fake.Advance(start.Add(at).Sub(fake.Now()))
	}
	fake.Advance(start.Add(stretch).Sub(fake.Now()))
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	// The miner countersigns asynchronously; its store is the truth.
	var got []protocol.WorkIntervalReceiptPayload
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rs, err := d.MinerStore.ListReceipts(t.Context(), store.ReceiptFilter{Type: string(protocol.ReceiptTypeWorkInterval)})
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, r := range rs {
			var p protocol.WorkIntervalReceiptPayload
			if err := json.Unmarshal(r.Payload, &p); err != nil {
				t.Fatal(err)
			}
			got = append(got, p)
		}
		if len(got) >= wantIntervals || time.Now().After(deadline) {
			break
		}
	}
	return o.res, got
}

func checkWorked(t *testing.T, got []protocol.WorkIntervalReceiptPayload, want []int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("the miner countersigned %d work intervals (%+v), want %d", len(got), got, len(want))
	}
	for i, p := range got {
		if p.IntervalIndex != i || p.WorkedSeconds != want[i] {
			t.Errorf("interval %d: index %d, %d worked seconds, want %d", i, p.IntervalIndex, p.WorkedSeconds, want[i])
		}
	}
}

// TestLongJobOnRealMinerAccountedInIntervals: a job that executes for 35 minutes on the
// validator's clock is accounted as three full intervals and a partial one of 5 minutes,
// each countersigned by the real miner.
func TestLongJobOnRealMinerAccountedInIntervals(t *testing.T) {
	res, got := runCompressed(t, 3600, 35*time.Minute, 4)
	if res.Status != protocol.JobStatusCompleted {
		t.Fatalf("the job: %s (%s: %s)", res.Status, res.Reason, res.Message)
	}
	checkWorked(t, got, []int{600, 600, 600, 300})
}

// TestCutOffJobOnRealMinerPaidForCompletedIntervals: a job whose execution limit (25
// minutes) runs out on the validator's clock is cut off as the horde's failure and paid
// for the two intervals it completed, nothing more.
func TestCutOffJobOnRealMinerPaidForCompletedIntervals(t *testing.T) {
	res, got := runCompressed(t, 1500, 27*time.Minute, 2)
	if res.Status != protocol.JobStatusHordeFailed {
		t.Fatalf("the cut-off job: %s (%s: %s), want horde_failed", res.Status, res.Reason, res.Message)
	}
	checkWorked(t, got, []int{600, 600})
}
