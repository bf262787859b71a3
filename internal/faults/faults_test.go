package faults_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/faults"
	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
	"github.com/computehorde/horde/internal/store/pgtest"
)

// The short schedule of `go test ./...`, the size: 50 jobs and 20 faults (25 with
// the overlapping ones) over 90 s. On a 2-core machine it took 1m52s–1m55s in all (build,
// start, schedule, settle, checks), and up to about 3m when the machine was loaded;
// `horde bench faults` runs longer ones.
const (
	shortJobs   = 50
	shortFaults = 20
	shortSpan   = 90 * time.Second
	settle      = 90 * time.Second
	defaultSeed = 20261202
	// minTempos is how many (validator, tempo) pairs the weights invariant should check.
	minTempos = 4
)

var seedFlag = flag.Uint64("faults.seed", 0, "seed of the fault schedule (0: the fixed default); also $HORDE_FAULTS_SEED")

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	jobimagetest.Cleanup()
	pgtest.Stop()
	os.Exit(code)
}

func TestScheduleIsSeeded(t *testing.T) {
	targets := []string{"facilitator", "validator-1", "miner-1"}
	a := faults.NewSchedule(42, 20, 6, time.Minute, targets)
	b := faults.NewSchedule(42, 20, 6, time.Minute, targets)
	if a.String() != b.String() {
		t.Fatalf("the same seed drew two schedules:\n%s\n%s", a, b)
	}
	if c := faults.NewSchedule(43, 20, 6, time.Minute, targets); c.String() == a.String() {
		t.Fatal("two seeds drew the same schedule")
	}
	kinds := map[string]bool{}
	var end time.Duration
	var prev faults.PlannedFault
	overlaps := 0
	for _, f := range a.Faults {
		if f.Overlaps {
			overlaps++
			if f.At < prev.At || f.At+f.Hold > prev.At+prev.Hold || f.Target == prev.Target || f.Target == prev.Peer ||
				f.Kind == faults.FaultChain || (f.Peer != "" && (f.Peer == prev.Target || f.Peer == prev.Peer)) {
				t.Errorf("overlapping fault %+v does not fit in %+v", f, prev)
			}
			continue
		}
		prev = f
		kinds[f.Kind] = true
		if f.At < end {
			t.Errorf("fault at %s overlaps the one before (healed at %s)", f.At, end)
		}
		end = f.At + f.Hold
		if f.Kind == faults.FaultChain && f.Target != "chain" {
			t.Errorf("a chain fault strikes %s", f.Target)
		}
	}
	if overlaps == 0 {
		t.Errorf("no overlapping fault in\n%s", a)
	}
	if len(kinds) != 3 || end > time.Minute {
		t.Errorf("faults: kinds %v, last healed at %s\n%s", kinds, end, a)
	}
	all := append(slices.Clone(faults.BaseKinds), faults.FaultCut, faults.FaultSlow, faults.FaultEngine, faults.FaultEngineErrors)
	c := faults.NewSchedule(42, 20, 10, time.Minute, targets, all...)
	kinds = map[string]bool{}
	for _, f := range c.Faults {
		kinds[f.Kind] = true
		if (f.Kind == faults.FaultEngine || f.Kind == faults.FaultEngineErrors) && f.Target != faults.EngineTarget {
			t.Errorf("an engine fault strikes %s", f.Target)
		}
		if (f.Kind == faults.FaultCut) != (f.Peer != "") || f.Peer == f.Target {
			t.Errorf("fault %s of %s: peer %q", f.Kind, f.Target, f.Peer)
		}
	}
	if len(kinds) != len(all) {
		t.Errorf("kinds %v drawn from %v\n%s", kinds, all, c)
	}
	if len(a.Jobs) != 20 {
		t.Errorf("%d jobs, want 20", len(a.Jobs))
	}
}

// TestFaultsShort runs the subnet in containers through a short seeded schedule of jobs and
// faults, and checks the invariants from the databases and the engine.
func TestFaultsShort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the subnet as seven containers through a fault schedule; skipped with -short")
	}
	jobimagetest.Engine(t) // skipped without a Docker engine (a failure when CI is set)
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("the harness drives the engine with the docker CLI, which is not installed")
	}
	seed := *seedFlag
	if s := os.Getenv("HORDE_FAULTS_SEED"); s != "" && seed == 0 {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("HORDE_FAULTS_SEED=%s: %v", s, err)
		}
		seed = v
	}
	if seed == 0 {
		// A fixed schedule in `go test ./...`, so that a CI run is replayable as it is; other
		// seeds through the flag, $HORDE_FAULTS_SEED or `horde bench faults`.
		seed = defaultSeed
	}
	t.Logf("seed %d (rerun with -faults.seed=%d)", seed, seed)
	began := time.Now()

	bin := filepath.Join(t.TempDir(), "horde")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/computehorde/horde/cmd/horde")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build ./cmd/horde: %v\n%s", err, out)
	}
	hello := jobimagetest.Hello(t)
	t.Logf("horde and hello built in %s", time.Since(began).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	h, err := faults.Start(ctx, faults.Config{
		Horde: bin, JobImage: hello,
		PostgresDSN: func(string) (string, error) { return pgtest.DSN(t), nil },
		Logf:        t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("removing the harness: %v", err)
		}
	})
	t.Logf("subnet up in %s (run %s, network %s %s)", time.Since(began).Round(time.Millisecond), h.RunID, h.Network, h.Subnet)

	var targets []string
	for _, r := range h.Roles {
		if r.Kind != "chain" {
			targets = append(targets, r.Name)
		}
	}
	kinds, missing := h.FaultKinds()
	for k, why := range missing {
		t.Logf("fault kind %s not injected: %s", k, why)
	}
	s := faults.NewSchedule(seed, shortJobs, shortFaults, shortSpan, targets, kinds...)
	fail := func(format string, args ...any) {
		t.Helper()
		var logs string
		for _, r := range h.Roles {
			logs += fmt.Sprintf("--- %s ---\n%s", r.Name, h.Logs(r, 25))
		}
		// The whole logs outlive the run (the harness removes its directory).
		dir := filepath.Join(os.TempDir(), "horde-faults-logs-"+h.RunID)
		if err := h.SaveLogs(dir); err == nil {
			logs += "whole logs of every role in " + dir + "\n"
		}
		t.Fatalf("seed %d: %s\nschedule:\n%s\n%s", seed, fmt.Sprintf(format, args...), s, logs)
	}
	out, err := faults.Run(ctx, h, s, settle)
	if err != nil {
		fail("the run: %v", err)
	}
	t.Logf("%d jobs ended and %d faults healed %s after the schedule began", len(out.Jobs), out.FaultsDone, out.Took.Round(time.Millisecond))
	served, refused, failed := h.EngineConns()
	t.Logf("%s's engine proxy forwarded %d connections, refused %d while cut and answered %d requests with an error while failing",
		faults.EngineTarget, served, refused, failed)

	// Receipts are countersigned and pulled, and executors reaped, asynchronously: poll the
	// invariants until they hold or the deadline passes.
	var rep *faults.Report
	// Weights are checked in the tempos the faults left whole, which are few in a short
	// schedule: wait (within the same deadline) for a few more after the last fault.
	for deadline := time.Now().Add(45 * time.Second); ; {
		if rep, err = h.Check(ctx, out.Jobs); err != nil {
			t.Fatal(err)
		}
		if (rep.OK() && rep.Tempos >= minTempos) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	t.Logf("invariants:\n%s", rep.Table())
	if !rep.OK() {
		fail("first invariant broken: %s", rep.FirstBroken())
	}
	t.Logf("total %s", time.Since(began).Round(time.Millisecond))
}
