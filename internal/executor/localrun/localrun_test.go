package localrun_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/executor/docker/dockertest"
	"github.com/computehorde/horde/internal/executor/localrun"
	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/ptr"
)

func TestMain(m *testing.M) {
	code := m.Run()
	jobimagetest.Cleanup()
	os.Exit(code)
}

func TestParseSpecDefaults(t *testing.T) {
	r, timing, err := localrun.ParseSpec([]byte(`{"docker_image": "alpine", "docker_run_cmd": ["echo", "hi"], "env": {"B": "2", "A": "1"}, "execution_time_limit": 7}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.DockerImage != "alpine" || strings.Join(r.DockerRunCmd, " ") != "echo hi" || r.ExecutorClass != localrun.DefaultClass ||
		r.DockerRunOptionsPreset != protocol.DockerRunOptionsPresetNone || r.Volume != nil || r.OutputUpload != nil {
		t.Errorf("request %+v", r)
	}
	if keys := r.Env.Keys(); strings.Join(keys, ",") != "B,A" {
		t.Errorf("env order %v", keys)
	}
	want := protocol.ExecutorTiming{AllowedLeeway: localrun.DefaultAllowedLeeway, DownloadTimeLimit: localrun.DefaultDownloadTimeLimit,
		ExecutionTimeLimit: 7, UploadTimeLimit: localrun.DefaultUploadTimeLimit}
	if timing != want {
		t.Errorf("timing %+v, want %+v", timing, want)
	}
	if r.JobUUID == "" {
		t.Error("no job UUID")
	}
}

func TestParseSpecRejects(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{``, "invalid JSON"},
		{`[1]`, "expected object, got array"},
		{`{"docker_image": "a"} x`, "unexpected data after JSON value"},
		{`{"docker_image": "a", "docker_image": "b"}`, `duplicate key "docker_image"`},
		{`{"docker_run_cmd": []}`, `"docker_image" is required`},
		{`{"docker_image": "a", "bogus": 1}`, "bogus"},
		{`{"docker_image": 5}`, "docker_image"},
		{`{"docker_image": "a", "env": {"A": 1}}`, "env"},
		{`{"docker_image": "a", "execution_time_limit": -1}`, "execution_time_limit"},
		{`{"docker_image": "a", "execution_time_limit": "60"}`, "execution_time_limit"},
		{`{"docker_image": "a", "execution_time_limit": 0}`, "execution_time_limit"},
		{`{"docker_image": "a", "job_uuid": "x"}`, "set by the runner"},
		{`{"docker_image": "a", "volume": {"volume_type": "zip_url"}}`, "volume"},
		{`{"docker_image": "a", "docker_run_options_preset": "all_the_gpus"}`, "docker_run_options_preset"},
		// Absurd time limits: bounded at parse time, never overflowing a deadline.
		{`{"docker_image": "a", "execution_time_limit": 9223372036854775807}`, "execution_time_limit: 9223372036854775807 seconds is more than the 604800-second (7-day) bound"},
		{`{"docker_image": "a", "download_time_limit": 1000000000000}`, "download_time_limit: 1000000000000 seconds is more than"},
		{`{"docker_image": "a", "upload_time_limit": 1e12}`, "upload_time_limit"},
		{`{"docker_image": "a", "execution_time_limit": 92233720368547758070}`, "execution_time_limit"},
		// The user's mistakes, caught before any executor sees them.
		{`{"docker_image": ""}`, "docker_image: empty"},
		{`{"docker_image": "my image"}`, `docker_image: "my image" is not a valid image reference`},
		{`{"docker_image": "Alpine:3"}`, "must be lowercase"},
		{`{"docker_image": "a", "env": {"": "x"}}`, "env: a variable has an empty name"},
		{`{"docker_image": "a", "env": {"A=B": "x"}}`, `env: variable name "A=B"`},
		{`{"docker_image": "a", "env": {"A": "x\u0000y"}}`, "NUL"},
		{`{"docker_image": "a", "docker_run_cmd": ["a\u0000b"]}`, "docker_run_cmd: argument 0 holds a NUL byte"},
		{`{"docker_image": "a", "artifacts_dir": "/proc/self"}`, `artifacts_dir: "/proc/self" is under /proc`},
		{`{"docker_image": "a", "artifacts_dir": "../x"}`, `artifacts_dir: "../x" must be an absolute container path`},
		{`{"docker_image": "a", "artifacts_dir": "/a/../output"}`, `artifacts_dir: "/a/../output" is not a clean path`},
		{`{"docker_image": "a", "artifacts_dir": "/output"}`, "would replace a mount"},
		{bigEnvSpec(100_000, 100), "env: 100000 variables, more than the 1024 allowed"},
		{bigEnvSpec(1000, 300), "env: 301000 bytes in all, more than the 262144 allowed"},
		{`{"docker_image": "a", "docker_run_cmd": ["` + strings.Repeat("x", 200_000) + `"]}`, "docker_run_cmd: argument 0 is 200000 bytes"},
	} {
		_, _, err := localrun.ParseSpec([]byte(tc.spec))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSpec(%.200s) = %.300v, want an error naming %q", tc.spec, err, tc.want)
		}
	}
	// Each fault is named once, though both the spec's and the executor's checks see the image.
	_, _, err := localrun.ParseSpec([]byte(`{"docker_image": "my image"}`))
	if n := strings.Count(fmt.Sprint(err), "not a valid image reference"); n != 1 {
		t.Errorf("ParseSpec(bad image) = %v: the image's fault named %d times, want once", err, n)
	}
}

// bigEnvSpec is a spec whose env has n variables of about size bytes each.
func bigEnvSpec(n, size int) string {
	var b strings.Builder
	b.WriteString(`{"docker_image": "a", "env": {`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"V%06d": "%s"`, i, strings.Repeat("v", size-8))
	}
	b.WriteString(`}}`)
	return b.String()
}

// FuzzParseSpec: whatever the spec, ParseSpec returns a job or an error, never panics, and a
// job it returns is within every bound an executor checks.
func FuzzParseSpec(f *testing.F) {
	for _, seed := range []string{
		`{"docker_image": "alpine", "docker_run_cmd": ["echo", "hi"], "env": {"B": "2"}, "execution_time_limit": 7}`,
		`{"docker_image": "a", "volume": {"volume_type": "zip_url", "contents": "http://x/v.zip", "relative_path": null}}`,
		`{"docker_image": "a", "output_upload": {"output_upload_type": "single_file_put", "url": "http://x", "relative_path": "f"}}`,
		`{"docker_image": "a", "artifacts_dir": "/art", "raw_script": "print(1)", "allowed_leeway": 9223372036854775807}`,
		`{"docker_image": "127.0.0.1:5000/a/b@sha256:` + strings.Repeat("0", 64) + `", "executor_class": "always_on.gpu-24gb"}`,
		`{"docker_image": "a", "volume": {"volume_type": "multi_volume", "volumes": []}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, timing, err := localrun.ParseSpec(data)
		if err != nil {
			return
		}
		if err := executor.CheckTiming(&timing, nil); err != nil {
			t.Fatalf("accepted timing out of bounds: %v", err)
		}
		if err := executor.CheckJobRequest(&req); err != nil {
			t.Fatalf("accepted a request an executor refuses: %v", err)
		}
		if req.DockerImage == "" || timing.ExecutionTimeLimit <= 0 {
			t.Fatalf("accepted %+v with %+v", req, timing)
		}
	})
}

func newRuntime(t testing.TB) *docker.Runtime {
	t.Helper()
	jobimagetest.Engine(t)
	rt, err := docker.New(context.Background(), docker.Options{WorkDir: t.TempDir(), ExecutorID: "localrun-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// spec parses a spec of image and the extra fields.
func spec(t testing.TB, image, extra string) (protocol.V0JobRequest, protocol.ExecutorTiming) {
	t.Helper()
	req, timing, err := localrun.ParseSpec([]byte(`{"docker_image": "` + image + `"` + extra + `}`))
	if err != nil {
		t.Fatal(err)
	}
	return req, timing
}

func TestRunHello(t *testing.T) {
	rt := newRuntime(t)
	img := jobimagetest.Hello(t)
	out := t.TempDir()
	var events []localrun.Event
	req, timing := spec(t, img, `, "docker_run_cmd": ["--write", "/artifacts/a.txt:5"], "artifacts_dir": "/artifacts"`)
	res, err := localrun.Run(context.Background(), req, timing, localrun.Options{
		Runtime:   rt,
		Configure: func(c *executor.Config) { c.KeepOutput = out },
		OnEvent:   func(ev localrun.Event) { events = append(events, ev) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Succeeded() {
		t.Fatalf("final %#v", res.Final)
	}
	var stages []string
	for _, ev := range events {
		stages = append(stages, string(ev.Stage)+":"+ev.Message.MessageType())
	}
	want := "executor_startup:V0ExecutorReadyRequest volume_download:V0VolumesReadyRequest execution:V0ExecutionDoneRequest " +
		"result_upload:V0MachineSpecsRequest result_upload:V0JobFinishedRequest"
	if strings.Join(stages, " ") != want {
		t.Errorf("events %v", stages)
	}
	if res.JobTime <= 0 || res.JobTime > res.Total {
		t.Errorf("job time %v, total %v", res.JobTime, res.Total)
	}
	fin := res.Final.(*protocol.V0JobFinishedRequest)
	if !strings.HasPrefix(fin.DockerProcessStdout, "hello from horde") {
		t.Errorf("stdout %q", fin.DockerProcessStdout)
	}
	for _, f := range []string{"hello.txt", "stdout.txt", "stderr.txt", "artifacts/a.txt"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("kept output lacks %s: %v", f, err)
		}
	}
}

func TestRunFailureKeepsOutput(t *testing.T) {
	rt := newRuntime(t)
	img := jobimagetest.Hello(t)
	out := t.TempDir()
	req, timing := spec(t, img, `, "docker_run_cmd": ["--exit", "4"]`)
	res, err := localrun.Run(context.Background(), req, timing, localrun.Options{
		Runtime: rt, Configure: func(c *executor.Config) { c.KeepOutput = out },
	})
	if err != nil {
		t.Fatal(err)
	}
	f, ok := res.Final.(*protocol.V0JobFailedRequest)
	if !ok || f.Reason != protocol.JobFailureReasonNonzeroReturnCode || *f.DockerProcessExitStatus != 4 {
		t.Fatalf("final %#v", res.Final)
	}
	if b, err := os.ReadFile(filepath.Join(out, "stderr.txt")); err != nil || !strings.Contains(string(b), "exiting with status 4") {
		t.Errorf("stderr.txt = %q, %v", b, err)
	}
}

// BenchmarkExecutorVsBare measures, side by side in each iteration, a bare Engine API run of
// the hello container (create, start, wait, logs, remove, with the same isolation settings and
// mounts) and the same job through a whole executor (loopback miner websocket, workspace,
// stage messages, limits, logs to files, machine specs, cleanup). Metrics: bare-ms,
// executor-ms (job request sent → job finished received), executor-total-ms (initial request →
// job finished), executor-wall-ms (the whole localrun.Run: listener, dial, startup, the job, and
// the container's removal, which an executor does after reporting) and overhead-ms
// (executor-ms − bare-ms, the target being ≤ 20).
func BenchmarkExecutorVsBare(b *testing.B) {
	rt := newRuntime(b)
	img := jobimagetest.Hello(b)
	cli := rt.Client()
	ctx := context.Background()
	dir := b.TempDir()
	for _, d := range []string{"volume", "output"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o777); err != nil {
			b.Fatal(err)
		}
	}
	limits := executor.Limits{MemoryBytes: 512 << 20, NanoCPUs: 1e9, Pids: 256}
	host := &container.HostConfig{
		NetworkMode: "none", SecurityOpt: []string{"no-new-privileges"}, CapDrop: []string{"ALL"},
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: filepath.Join(dir, "volume"), Target: "/volume", ReadOnly: true},
			{Type: mount.TypeBind, Source: filepath.Join(dir, "output"), Target: "/output"},
		},
		Resources: container.Resources{Memory: limits.MemoryBytes, MemorySwap: limits.MemoryBytes, NanoCPUs: limits.NanoCPUs, PidsLimit: &limits.Pids},
	}
	req, timing := spec(b, img, "")
	var bare, exec, total, wall time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		stdout, err := dockertest.BareRun(ctx, cli, &container.Config{Image: img}, host, fmt.Sprintf("horde-bench-bare-%d-%d", os.Getpid(), i))
		if err != nil || !strings.HasPrefix(stdout, "hello from horde") {
			b.Fatalf("bare run: %q %v", stdout, err)
		}
		bare += time.Since(start)

		start = time.Now()
		res, err := localrun.Run(ctx, req, timing, localrun.Options{Runtime: rt})
		wall += time.Since(start)
		if err != nil || !res.Succeeded() {
			b.Fatalf("executor run: %v %#v", err, res.Final)
		}
		exec += res.JobTime
		total += res.Total
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	b.ReportMetric(ms(bare), "bare-ms")
	b.ReportMetric(ms(exec), "executor-ms")
	b.ReportMetric(ms(total), "executor-total-ms")
	b.ReportMetric(ms(wall), "executor-wall-ms")
	b.ReportMetric(ms(exec-bare), "overhead-ms")
	b.ReportMetric(0, "ns/op")
}

// TestExampleSpec keeps the README's example spec valid.
func TestExampleSpec(t *testing.T) {
	data, err := os.ReadFile("../../../examples/hello-job.json")
	if err != nil {
		t.Fatal(err)
	}
	req, _, err := localrun.ParseSpec(data)
	if err != nil {
		t.Fatal(err)
	}
	if req.Volume == nil || req.Volume.Inline == nil || ptr.Deref(req.ArtifactsDir) != "/artifacts" {
		t.Errorf("example spec: %+v", req)
	}
}
