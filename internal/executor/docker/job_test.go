package docker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
)

func fastDiskPoll(o *docker.Options) { o.DiskPollInterval = 100 * time.Millisecond }

func TestDiskLimit(t *testing.T) {
	const limit = 8 << 20
	for _, tc := range []struct {
		name      string
		spec      executor.RunSpec
		opts      func(*docker.Options)
		noWatch   bool
		exceeded  bool
		killed    bool
		maxRunFor time.Duration
	}{
		{name: "output", spec: executor.RunSpec{Cmd: []string{"--write", "/output/big:20000000", "--sleep", "30s"}},
			opts: fastDiskPoll, exceeded: true, killed: true},
		{name: "artifacts", spec: executor.RunSpec{ArtifactsMount: "/artifacts", Cmd: []string{"--write", "/artifacts/big:20000000", "--sleep", "30s"}},
			opts: fastDiskPoll, exceeded: true, killed: true},
		{name: "writable layer", spec: executor.RunSpec{Cmd: []string{"--write", "/tmp/big:20000000", "--sleep", "30s"}},
			opts: fastDiskPoll, exceeded: true, killed: true},
		// Without the watchdog (a job that writes and exits between two polls) the
		// measurement after the exit catches it.
		{name: "after exit", spec: executor.RunSpec{Cmd: []string{"--write", "/output/big:20000000"}},
			noWatch: true, exceeded: true},
		{name: "within", spec: executor.RunSpec{Cmd: []string{"--write", "/output/small:1000000", "--write", "/tmp/small:1000000", "--sleep", "300ms"}},
			opts: fastDiskPoll},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := []func(*docker.Options){}
			if tc.opts != nil {
				opts = append(opts, tc.opts)
			}
			rt := newRuntime(t, opts...)
			if tc.noWatch {
				rt.DisableDiskWatch()
			}
			spec := tc.spec
			spec.Image = jobimagetest.Hello(t)
			spec.Limits.DiskBytes = limit
			spec.Timeout = time.Minute
			start := time.Now()
			res, err := run(t, rt, spec, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.DiskExceeded != tc.exceeded {
				t.Errorf("DiskExceeded = %v, want %v (%+v)", res.DiskExceeded, tc.exceeded, res)
			}
			if killed := res.ExitCode == 137; killed != tc.killed {
				t.Errorf("exit code %d; killed want %v", res.ExitCode, tc.killed)
			}
			if res.TimedOut {
				t.Error("a disk kill reported as a timeout")
			}
			if took := time.Since(start); took > 15*time.Second {
				t.Errorf("took %v", took)
			}
		})
	}
}

func TestArtifactsAndScript(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	id := uniqueID(t)
	ws, err := rt.Prepare(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := rt.Remove(ctx, id); err != nil {
			t.Error(err)
		}
		assertGone(t, rt, id, ws)
	}()
	if filepath.Dir(ws.ScriptPath) != ws.Dir || filepath.Base(ws.ScriptPath) != "script.py" {
		t.Errorf("ScriptPath = %s", ws.ScriptPath)
	}
	if fi, err := os.Stat(ws.ArtifactsDir); err != nil || fi.Mode().Perm() != 0o777 {
		t.Fatalf("artifacts dir: %v, %v", fi, err)
	}
	spec := executor.RunSpec{
		ID: id, JobUUID: id, Image: jobimagetest.Hello(t), ArtifactsMount: "/job/artifacts", Script: true,
		Cmd: []string{
			"--copy", "/script.py:/job/artifacts/script-copy.py",
			"--write", "/job/artifacts/data.bin:1000",
			"--write", "/script.py:10",
		},
		Timeout: time.Minute,
	}
	if err := rt.Start(ctx, spec); err == nil || !strings.Contains(err.Error(), "script") {
		t.Fatalf("Start without the script file = %v", err)
	}
	const script = "print('hello from a raw script')\n"
	if err := os.WriteFile(ws.ScriptPath, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	info, err := rt.Client().ContainerInspect(ctx, docker.ContainerName(id))
	if err != nil {
		t.Fatal(err)
	}
	rw := map[string]bool{}
	for _, m := range info.Mounts {
		rw[m.Destination] = m.RW
	}
	if w, ok := rw["/job/artifacts"]; !ok || !w {
		t.Errorf("/job/artifacts: mounted %v, writable %v", ok, w)
	}
	if w, ok := rw["/script.py"]; !ok || w {
		t.Errorf("/script.py: mounted %v, writable %v", ok, w)
	}
	res, err := rt.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("copy /script.py: %d bytes\n", len(script)),
		"write /job/artifacts/data.bin: 1000 bytes\n",
		"write /script.py: failed",
	} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, res.Stdout)
		}
	}
	if b, err := os.ReadFile(filepath.Join(ws.ArtifactsDir, "script-copy.py")); err != nil || string(b) != script {
		t.Errorf("artifact script-copy.py = %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(ws.ArtifactsDir, "data.bin")); err != nil || fi.Size() != 1000 {
		t.Errorf("artifact data.bin: %v, %v", fi, err)
	}
	if b, _ := os.ReadFile(ws.ScriptPath); string(b) != script {
		t.Errorf("the job changed the script: %q", b)
	}
}

func TestArtifactsMountRejected(t *testing.T) {
	rt := newRuntime(t)
	ws := executor.Workspace{VolumeDir: "/v", OutputDir: "/o", ArtifactsDir: "/a", ScriptPath: "/s"}
	for _, p := range []string{"artifacts", "/", "/volume", "/output", "/script.py", "/script.py/x", "/a/../b",
		"/a/", "//a", "/proc", "/proc/self", "/sys/fs/cgroup", "/dev", "/dev/shm", "/a\x00b"} {
		_, _, err := rt.ContainerConfig(executor.RunSpec{ID: "x", Image: "img", ArtifactsMount: p}, ws)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", p)) {
			t.Errorf("ArtifactsMount %q: %v", p, err)
		}
	}
	for _, p := range []string{"/artifacts", "/output/artifacts", "/procx", "/devices", "/home/job/out"} {
		_, host, err := rt.ContainerConfig(executor.RunSpec{ID: "x", Image: "img", ArtifactsMount: p}, ws)
		if err != nil {
			t.Errorf("ArtifactsMount %q: %v", p, err)
			continue
		}
		if m := host.Mounts[len(host.Mounts)-1]; m.Target != p || m.Source != "/a" || m.ReadOnly {
			t.Errorf("ArtifactsMount %q: mount %+v", p, m)
		}
	}
}

// TestGPUs checks the device request, and that a GPU job on an engine without the NVIDIA
// toolkit fails to start with a hint rather than running without its GPUs.
func TestGPUs(t *testing.T) {
	rt := newRuntime(t)
	ws := executor.Workspace{VolumeDir: "/v", OutputDir: "/o"}
	_, host, err := rt.ContainerConfig(executor.RunSpec{ID: "x", Image: "img", GPUs: true}, ws)
	if err != nil {
		t.Fatal(err)
	}
	want := []container.DeviceRequest{{Driver: "nvidia", Count: -1, Capabilities: [][]string{{"gpu"}}}}
	if fmt.Sprint(host.DeviceRequests) != fmt.Sprint(want) {
		t.Errorf("device requests %+v, want %+v", host.DeviceRequests, want)
	}
	if _, host, _ := rt.ContainerConfig(executor.RunSpec{ID: "x", Image: "img"}, ws); host.DeviceRequests != nil {
		t.Errorf("no GPUs: device requests %+v", host.DeviceRequests)
	}
	// An executor that owns GPUs 1 and 2 of the host gives its job exactly those.
	_, host, err = rt.ContainerConfig(executor.RunSpec{ID: "x", Image: "img", GPUs: true, GPUDevices: []string{"1", "2"}}, ws)
	if err != nil {
		t.Fatal(err)
	}
	want = []container.DeviceRequest{{Driver: "nvidia", DeviceIDs: []string{"1", "2"}, Capabilities: [][]string{{"gpu"}}}}
	if !reflect.DeepEqual(host.DeviceRequests, want) {
		t.Errorf("devices 1,2: device requests %+v, want %+v", host.DeviceRequests, want)
	}
	// Devices without GPUs (a class without GPUs) request none.
	if _, host, _ := rt.ContainerConfig(executor.RunSpec{ID: "x", Image: "img", GPUDevices: []string{"0"}}, ws); host.DeviceRequests != nil {
		t.Errorf("devices but no GPUs: device requests %+v", host.DeviceRequests)
	}

	ctx := context.Background()
	id := uniqueID(t)
	pws, err := rt.Prepare(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := rt.Remove(ctx, id); err != nil {
			t.Error(err)
		}
		assertGone(t, rt, id, pws)
	}()
	err = rt.Start(ctx, executor.RunSpec{ID: id, JobUUID: id, Image: jobimagetest.Hello(t), GPUs: true, Timeout: time.Minute})
	if err == nil {
		t.Log("this engine runs GPU jobs")
		if res, err := rt.Wait(ctx, id); err != nil || res.ExitCode != 0 {
			t.Errorf("GPU job: %+v, %v", res, err)
		}
		return
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "NVIDIA Container Toolkit") {
		t.Errorf("GPU start failure without a hint: %v", err)
	}
}

func TestLogCap(t *testing.T) {
	const capBytes = 64 << 10
	rt := newRuntime(t, func(o *docker.Options) { o.MaxLogBytes = capBytes })
	res, err := run(t, rt, executor.RunSpec{
		Image: jobimagetest.Hello(t), Cmd: []string{"--print-bytes", "1000000"}, Timeout: time.Minute,
	}, nil, func(id string) {
		info, err := rt.Client().ContainerInspect(context.Background(), docker.ContainerName(id))
		if err != nil {
			t.Fatal(err)
		}
		if lc := info.HostConfig.LogConfig; lc.Type != "json-file" || lc.Config["max-size"] != fmt.Sprint(capBytes/2) || lc.Config["max-file"] != "2" {
			t.Errorf("log config %+v", lc)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// The engine kept the newest output only: the greeting at the head is gone, the tail is there.
	if n := len(res.Stdout); n == 0 || n > capBytes {
		t.Errorf("kept %d bytes of stdout under a %d-byte cap", n, capBytes)
	}
	if strings.Contains(res.Stdout, "hello from horde") || !strings.HasSuffix(res.Stdout, strings.Repeat("x", 99)+"\n") {
		t.Errorf("stdout is not the newest output: %q ... %q", res.Stdout[:min(60, len(res.Stdout))], res.Stdout[max(0, len(res.Stdout)-60):])
	}
}
