package execmgr_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/execmgr"
	"github.com/computehorde/horde/internal/gpu"
	"github.com/computehorde/horde/internal/miner"
	"github.com/computehorde/horde/internal/protocol"
)

const gpuClass = protocol.ExecutorClassSpinUp4minGPU24GB // one GPU per executor

// fakeGPUs is a machine with n GPUs.
type fakeGPUs int

func (n fakeGPUs) GPUs(context.Context) ([]gpu.GPU, error) {
	return make([]gpu.GPU, n), nil
}

func (fakeGPUs) ToolkitVersion(context.Context) (string, error) { return gpu.MinToolkitVersion, nil }

// fakeExecutor writes an executable that records its arguments in $ARGS_DIR/<pid> and sleeps
// until it is stopped, in place of `horde executor serve`; it returns it and the directory.
func fakeExecutor(t *testing.T) (bin, argsDir string) {
	t.Helper()
	dir := t.TempDir()
	argsDir = filepath.Join(dir, "args")
	if err := os.Mkdir(argsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "fake-horde")
	script := "#!/bin/sh\necho \"$*\" > \"$ARGS_DIR/$$.tmp\" && mv \"$ARGS_DIR/$$.tmp\" \"$ARGS_DIR/$$\"\nexec sleep 60\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, argsDir
}

// gpuFlags waits until n executors have recorded their arguments and returns their --gpus
// values, sorted ("" for none).
func gpuFlags(t *testing.T, argsDir string, n int) []string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		entries, err := os.ReadDir(argsDir)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".tmp") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(argsDir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			args := strings.Fields(string(b))
			flag := ""
			if i := slices.Index(args, "--gpus"); i >= 0 && i+1 < len(args) {
				flag = args[i+1]
			}
			got = append(got, flag)
		}
		if len(got) >= n || time.Now().After(deadline) {
			slices.Sort(got)
			return got
		}
	}
}

// TestProcessGPUs: two executors of a one-GPU class on a two-GPU machine get GPU 0 and GPU 1;
// a third waits for one of them to end, and then gets its GPU.
func TestProcessGPUs(t *testing.T) {
	bin, argsDir := fakeExecutor(t)
	p := &execmgr.Process{
		Binary: bin, MinerURL: "ws://127.0.0.1:1", Env: []string{"ARGS_DIR=" + argsDir}, StopGrace: 5 * time.Second,
		Classes:     map[protocol.ExecutorClass]int{gpuClass: 2, protocol.ExecutorClassAlwaysOnTest: 1},
		GPUDetector: fakeGPUs(2),
	}
	t.Cleanup(func() { _ = p.Close() })
	ctx := context.Background()
	if err := p.AssignGPUs(ctx); err != nil {
		t.Fatal(err)
	}
	for _, job := range []string{"a", "b"} {
		if err := p.Start(ctx, miner.ExecutorRequest{Token: "t-" + job, JobUUID: job, ExecutorClass: gpuClass}); err != nil {
			t.Fatal(err)
		}
	}
	if got := gpuFlags(t, argsDir, 2); !slices.Equal(got, []string{"0", "1"}) {
		t.Fatalf("--gpus of the two executors: %q, want 0 and 1", got)
	}
	// A CPU class gets no GPUs, and does not wait for any.
	if err := p.Start(ctx, miner.ExecutorRequest{Token: "t-cpu", JobUUID: "cpu", ExecutorClass: protocol.ExecutorClassAlwaysOnTest}); err != nil {
		t.Fatal(err)
	}
	if got := gpuFlags(t, argsDir, 3); !slices.Equal(got, []string{"", "0", "1"}) {
		t.Fatalf("--gpus with the CPU executor: %q, want none for it", got)
	}

	// Both GPUs are held: a third GPU executor waits, here until its context ends.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := p.Start(short, miner.ExecutorRequest{Token: "t-c", JobUUID: "c", ExecutorClass: gpuClass})
	cancel()
	if err == nil || !strings.Contains(err.Error(), "holds its GPUs") {
		t.Fatalf("third executor with both GPUs held: %v, want an error saying every executor holds its GPUs", err)
	}
	// Once the executor of a ends, its GPU goes to the next.
	done := make(chan error, 1)
	go func() {
		long, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		done <- p.Start(long, miner.ExecutorRequest{Token: "t-d", JobUUID: "d", ExecutorClass: gpuClass})
	}()
	time.Sleep(100 * time.Millisecond)
	if err := p.Kill(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// a, the first, held GPU 0.
	if got := gpuFlags(t, argsDir, 4); !slices.Equal(got, []string{"", "0", "0", "1"}) {
		t.Fatalf("--gpus after a ended: %q, want d on a's GPU 0", got)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestProcessGPUsRefused: executors needing more GPUs than the machine has are refused at
// AssignGPUs, naming the class, the counts and the fix; an unknown count is refused for more
// than one GPU executor and allowed (every GPU, as before) for one.
func TestProcessGPUsRefused(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		classes map[protocol.ExecutorClass]int
		gpus    int
		host    int // Process.HostGPUs
		want    []string
	}{
		{"three on two", map[protocol.ExecutorClass]int{gpuClass: 3}, 2, 0,
			[]string{"this machine has 2 GPUs", "need 3", "3 executors of " + string(gpuClass), "executors.gpus"}},
		{"two classes on two", map[protocol.ExecutorClass]int{gpuClass: 2, protocol.ExecutorClassAlwaysOnGPU24GB: 1}, 2, 0,
			[]string{"has 2 GPUs", "need 3", "1 executors of " + string(protocol.ExecutorClassAlwaysOnGPU24GB), "only 0 are left"}},
		{"configured count wins", map[protocol.ExecutorClass]int{gpuClass: 2}, 4, 1, []string{"has 1 GPUs", "need 2"}},
		{"unknown count", map[protocol.ExecutorClass]int{gpuClass: 2}, 0, 0, []string{"GPU count is unknown", "executors.gpus"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &execmgr.Process{MinerURL: "ws://127.0.0.1:1", Classes: tc.classes, GPUDetector: fakeGPUs(tc.gpus), HostGPUs: tc.host}
			err := p.AssignGPUs(ctx)
			if err == nil {
				t.Fatal("AssignGPUs accepted it")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			// Start refuses too, before any process.
			if err := p.Start(ctx, miner.ExecutorRequest{Token: "t", JobUUID: "j", ExecutorClass: gpuClass}); err == nil || p.Running() != 0 {
				t.Errorf("Start: %v, %d running", err, p.Running())
			}
		})
	}

	// One GPU executor on a machine whose GPUs cannot be counted: every GPU, as before.
	bin, argsDir := fakeExecutor(t)
	p := &execmgr.Process{
		Binary: bin, MinerURL: "ws://127.0.0.1:1", Env: []string{"ARGS_DIR=" + argsDir}, StopGrace: 5 * time.Second,
		Classes: map[protocol.ExecutorClass]int{gpuClass: 1}, GPUDetector: gpu.None{},
	}
	t.Cleanup(func() { _ = p.Close() })
	if err := p.AssignGPUs(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx, miner.ExecutorRequest{Token: "t", JobUUID: "j", ExecutorClass: gpuClass}); err != nil {
		t.Fatal(err)
	}
	if got := gpuFlags(t, argsDir, 1); !slices.Equal(got, []string{""}) {
		t.Errorf("--gpus of the one executor on an uncounted machine: %q, want none", got)
	}
}

// TestDockerGPUs: on a Docker host with two GPUs, two executors of a one-GPU class get GPU 0
// and GPU 1 (and a label naming their slot); a freed GPU goes to the next executor; a CPU
// executor gets none. No engine is needed: the host is never reached.
func TestDockerGPUs(t *testing.T) {
	d, err := execmgr.NewDocker(context.Background(), execmgr.DockerConfig{
		Image: "horde-executor:test", MinerURL: "ws://127.0.0.1:1", ExecutorID: "gpu-test", WorkDir: "/tmp",
		Hosts: []execmgr.Host{{
			Name: "gpu-box", Endpoint: "unix:///nonexistent/docker.sock", GPUs: 2,
			Classes: map[protocol.ExecutorClass]int{gpuClass: 2, testClass: 1},
		}},
		PollInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	gpusOf := func(cmd []string) string {
		if i := slices.Index(cmd, "--gpus"); i >= 0 && i+1 < len(cmd) {
			return cmd[i+1]
		}
		return ""
	}
	var got []string
	for _, job := range []string{"a", "b"} {
		cmd, labels, err := d.Reserve(job, gpuClass)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, gpusOf(cmd))
		if labels[execmgr.LabelExecutorSlot] == "" {
			t.Errorf("executor %s: no %s label: %v", job, execmgr.LabelExecutorSlot, labels)
		}
	}
	if !slices.Equal(got, []string{"0", "1"}) {
		t.Fatalf("--gpus of the two executors: %q, want 0 and 1", got)
	}
	if _, _, err := d.Reserve("c", gpuClass); err == nil {
		t.Fatal("a third executor of a class of two was started")
	}
	d.Unreserve("a")
	cmd, _, err := d.Reserve("c", gpuClass)
	if err != nil {
		t.Fatal(err)
	}
	if g := gpusOf(cmd); g != "0" {
		t.Errorf("--gpus after a ended: %q, want its GPU 0", g)
	}
	cmd, labels, err := d.Reserve("cpu", testClass)
	if err != nil {
		t.Fatal(err)
	}
	if g := gpusOf(cmd); g != "" || labels[execmgr.LabelExecutorSlot] != "" {
		t.Errorf("a CPU executor got GPUs %q, slot label %q", g, labels[execmgr.LabelExecutorSlot])
	}
}
