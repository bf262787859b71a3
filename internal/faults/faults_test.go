package faults_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/faults"
	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
	"github.com/computehorde/horde/internal/store/pgtest"
)

// The short schedule of `go test ./...`: fewer jobs and faults than the long runs
// (`horde bench faults`), sized to finish in about two minutes on a loaded 2-core machine.
const (
	shortJobs   = 16
	shortFaults = 4
	shortSpan   = 50 * time.Second
	settle      = 90 * time.Second
	defaultSeed = 20261202
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
	for _, f := range a.Faults {
		kinds[f.Kind] = true
		if f.At < end {
			t.Errorf("fault at %s overlaps the one before (healed at %s)", f.At, end)
		}
		end = f.At + f.Hold
		if f.Kind == faults.FaultChain && f.Target != "chain" {
			t.Errorf("a chain fault strikes %s", f.Target)
		}
	}
	if len(kinds) != 3 || end > time.Minute {
		t.Errorf("faults: kinds %v, last healed at %s\n%s", kinds, end, a)
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
	s := faults.NewSchedule(seed, shortJobs, shortFaults, shortSpan, targets)
	fail := func(format string, args ...any) {
		t.Helper()
		var logs string
		for _, r := range h.Roles {
			logs += fmt.Sprintf("--- %s ---\n%s", r.Name, h.Logs(r, 25))
		}
		t.Fatalf("seed %d: %s\nschedule:\n%s\n%s", seed, fmt.Sprintf(format, args...), s, logs)
	}
	out, err := faults.Run(ctx, h, s, settle)
	if err != nil {
		fail("the run: %v", err)
	}
	t.Logf("%d jobs ended and %d faults healed %s after the schedule began", len(out.Jobs), out.FaultsDone, out.Took.Round(time.Millisecond))

	// Receipts are countersigned and pulled, and executors reaped, asynchronously: poll the
	// invariants until they hold or the deadline passes.
	var rep *faults.Report
	for deadline := time.Now().Add(45 * time.Second); ; {
		if rep, err = h.Check(ctx, out.Jobs); err != nil {
			t.Fatal(err)
		}
		if rep.OK() || time.Now().After(deadline) {
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
