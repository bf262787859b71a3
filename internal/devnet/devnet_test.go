package devnet

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"go.uber.org/goleak"

	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/jobimage"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// startDevnet builds the hello job from jobs/hello and starts a devnet on the local Docker
// engine, with logs going to the test's output.
func startDevnet(t *testing.T, opts ...func(*Config)) *Devnet {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: needs the Docker engine; skipped with -short")
	}
	ctx := t.Context()
	bin := filepath.Join(t.TempDir(), "hello")
	if err := jobimage.CompileStatic(ctx, "github.com/computehorde/horde/jobs/hello", bin); err != nil {
		t.Fatalf("compile jobs/hello: %v", err)
	}
	cfg := Config{
		BlockTime:     100 * time.Millisecond,
		JobBinary:     bin,
		JobEntrypoint: []string{"/bin/hello"},
		JobImage:      "horde-test/hello:e2e",
		Logger:        slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	d, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("devnet.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("devnet.Close: %v", err)
		}
	})
	return d
}

func TestHelloJobEndToEnd(t *testing.T) {
	d := startDevnet(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	res, err := d.RunJob(ctx, d.HelloJob("from", "e2e"))
	if err != nil {
		t.Fatalf("RunJob: %v", err)
	}
	if res.Status != protocol.JobStatusCompleted {
		t.Fatalf("status = %s (%s: %s), want completed", res.Status, res.Reason, res.Message)
	}
	if !strings.Contains(res.Stdout, "hello from horde") || !strings.Contains(res.Stdout, "from e2e") {
		t.Errorf("stdout = %q, want the hello line with the job's args", res.Stdout)
	}

	// A job that exits non-zero is the job's fault, reported with its exit code and output.
	res, err = d.RunJob(ctx, d.HelloJob("--exit", "3"))
	if err != nil {
		t.Fatalf("RunJob: %v", err)
	}
	if res.Status != protocol.JobStatusFailed || res.Reason != string(protocol.JobFailureReasonNonzeroReturnCode) {
		t.Fatalf("status = %s/%s, want failed/nonzero_return_code", res.Status, res.Reason)
	}
	if res.ExitStatus == nil || *res.ExitStatus != 3 {
		t.Errorf("exit status = %v, want 3", res.ExitStatus)
	}

	// The miner countersigned and stored the receipts of both jobs.
	got, err := d.MinerStore.ListReceipts(ctx, store.ReceiptFilter{})
	if err != nil {
		t.Fatalf("ListReceipts: %v", err)
	}
	if len(got) < 6 {
		t.Errorf("miner stored %d receipts, want 3 per job (started, accepted, finished)", len(got))
	}

	// Executors clean up after themselves, right after reporting: soon no container of ours
	// is left.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		left, err := d.runtime.Client().ContainerList(ctx, container.ListOptions{
			All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelExecutor+"="+d.ExecutorID)),
		})
		if err != nil {
			t.Fatalf("ContainerList: %v", err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d job containers left behind", len(left))
		}
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
