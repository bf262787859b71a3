package executor_test

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/gpu"
	"github.com/computehorde/horde/internal/protocol"
)

// fakeGPUs is a host with three GPUs and a current NVIDIA Container Toolkit.
type fakeGPUs struct{}

func (fakeGPUs) GPUs(context.Context) ([]gpu.GPU, error) {
	return []gpu.GPU{
		{Name: "RTX 4090", MemoryMiB: 24564, UUID: "GPU-a"},
		{Name: "RTX 4090", MemoryMiB: 24564, UUID: "GPU-b"},
		{Name: "RTX 4090", MemoryMiB: 24564, UUID: "GPU-c"},
	}, nil
}

func (fakeGPUs) ToolkitVersion(context.Context) (string, error) { return gpu.MinToolkitVersion, nil }

// recordingRuntime records the RunSpec of Start and runs the job without GPUs, which this
// machine lacks, and within small limits (a GPU class asks for more CPUs than CI has).
type recordingRuntime struct {
	executor.Runtime
	mu    sync.Mutex
	specs []executor.RunSpec
}

func (r *recordingRuntime) Start(ctx context.Context, spec executor.RunSpec) error {
	r.mu.Lock()
	r.specs = append(r.specs, spec)
	r.mu.Unlock()
	spec.GPUs, spec.GPUDevices = false, nil
	spec.Limits = executor.Limits{MemoryBytes: 256 << 20, NanoCPUs: 5e8, Pids: 64}
	return r.Runtime.Start(ctx, spec)
}

// gpuJob is a job of a GPU class asking for every GPU (nvidia_all), and the fake miner
// that sends it.
func gpuJob(t *testing.T) (env, job, *fakeMiner) {
	t.Helper()
	e := newEnv(t)
	j := newJob(e.image)
	class := string(protocol.ExecutorClassSpinUp4minGPU24GB)
	m := newFakeMiner(t, j.token,
		step{send: j.initial(func(m map[string]any) {
			m["executor_class"] = class
			m["job_started_receipt_payload"].(map[string]any)["executor_class"] = class
		}), expect: 1},
		step{send: j.request(func(m map[string]any) {
			m["executor_class"] = class
			m["docker_run_options_preset"] = "nvidia_all"
		})},
	)
	return e, j, m
}

// TestGPUDevicesReachTheJob: an executor that owns GPUs 1 and GPU-c (index 2) of a three-GPU
// host runs its nvidia_all job on exactly those, and its machine specs list only them.
func TestGPUDevicesReachTheJob(t *testing.T) {
	e, j, m := gpuJob(t)
	rt := &recordingRuntime{Runtime: e.rt}
	if err := e.run(t, m, func(c *executor.Config) {
		c.Runtime = rt
		c.GPUs = fakeGPUs{}
		c.GPUDevices = []string{"1", "GPU-c"}
	}); err != nil {
		t.Fatal(err)
	}
	got := m.messages()
	checkTypes(t, got, "V0ExecutorReadyRequest", "V0VolumesReadyRequest", "V0ExecutionDoneRequest", "V0MachineSpecsRequest", "V0JobFinishedRequest")
	if len(rt.specs) != 1 {
		t.Fatalf("%d starts, want 1", len(rt.specs))
	}
	if s := rt.specs[0]; !s.GPUs || !reflect.DeepEqual(s.GPUDevices, []string{"1", "GPU-c"}) {
		t.Errorf("RunSpec GPUs %v, devices %q; want true, [1 GPU-c]", s.GPUs, s.GPUDevices)
	}
	specs := string(got[3].(*protocol.V0MachineSpecsRequest).Specs.Specs)
	if !strings.Contains(specs, "GPU-b") || !strings.Contains(specs, "GPU-c") || strings.Contains(specs, "GPU-a") {
		t.Errorf("machine specs list other GPUs than the executor's (GPU-b, GPU-c): %s", specs)
	}
	e.assertClean(t, j.uuid)
}

// TestGPUDevicesMissing: devices the host does not have fail the job as the miner's fault,
// naming the setting to fix, before any container starts.
func TestGPUDevicesMissing(t *testing.T) {
	e, j, m := gpuJob(t)
	rt := &recordingRuntime{Runtime: e.rt}
	if err := e.run(t, m, func(c *executor.Config) {
		c.Runtime = rt
		c.GPUs = fakeGPUs{}
		c.GPUDevices = []string{"2", "7"}
	}); err != nil {
		t.Fatal(err)
	}
	got := m.messages()
	last, ok := got[len(got)-1].(*protocol.V0HordeFailedRequest)
	if !ok || !strings.Contains(last.Message, "2,7") || !strings.Contains(last.Message, "executors.gpus") {
		t.Fatalf("last message %#v, want a horde failure naming the devices and executors.gpus", got[len(got)-1])
	}
	if len(rt.specs) != 0 {
		t.Errorf("a container started: %+v", rt.specs)
	}
	e.assertClean(t, j.uuid)
}

func TestParseGPUDevices(t *testing.T) {
	for in, want := range map[string][]string{
		"":               nil,
		"  ":             nil,
		"0":              {"0"},
		"0,1":            {"0", "1"},
		" 2 , 3 ":        {"2", "3"},
		"GPU-1a2b,MIG-x": {"GPU-1a2b", "MIG-x"},
	} {
		got, err := executor.ParseGPUDevices(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseGPUDevices(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, why := range map[string]string{
		"0,,1":  "empty",
		"0,":    "empty",
		"1,1":   "twice",
		"0 1":   "not a device",
		"0;rm":  "not a device",
		"0,1,0": "twice",
	} {
		_, err := executor.ParseGPUDevices(in)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ParseGPUDevices(%q) = %v; want an error saying %q", in, err, why)
		}
	}
	cfg := executor.Config{MinerURL: "ws://x", Token: "t", Runtime: &recordingRuntime{}, GPUDevices: []string{"0", "0"}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "GPUDevices") {
		t.Errorf("Validate with a repeated device: %v", err)
	}
}
