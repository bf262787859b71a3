package docker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"go.uber.org/goleak"

	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/jobimage"
	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	jobimagetest.Cleanup()
	// Every runtime was closed: no watchdog, proxy or engine-client goroutine may remain.
	if err := goleak.Find(); code == 0 && err != nil {
		fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
		code = 1
	}
	os.Exit(code)
}

var seq atomic.Int64

// newRuntime returns a runtime with a unique executor label and its own work directory; opts
// adjust the options.
func newRuntime(t testing.TB, opts ...func(*docker.Options)) *docker.Runtime {
	t.Helper()
	jobimagetest.Engine(t)
	o := docker.Options{
		WorkDir:    t.TempDir(),
		ExecutorID: fmt.Sprintf("docker-test-%d-%d", os.Getpid(), seq.Add(1)),
	}
	for _, f := range opts {
		f(&o)
	}
	rt, err := docker.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Errorf("close runtime: %v", err)
		}
	})
	return rt
}

func uniqueID(t testing.TB) string {
	return fmt.Sprintf("test-%d-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9, seq.Add(1))
}

// run executes spec through rt and checks that the container and the workspace are gone
// afterwards. inspect, if set, runs between Start and Wait.
func run(t *testing.T, rt *docker.Runtime, spec executor.RunSpec, fill func(executor.Workspace), inspect func(id string)) (executor.RunResult, error) {
	t.Helper()
	ctx := context.Background()
	if spec.ID == "" {
		spec.ID = uniqueID(t)
	}
	if spec.JobUUID == "" {
		spec.JobUUID = "job-" + spec.ID
	}
	ws, err := rt.Prepare(ctx, spec.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := rt.Remove(ctx, spec.ID); err != nil {
			t.Errorf("Remove: %v", err)
		}
		assertGone(t, rt, spec.ID, ws)
	}()
	if fill != nil {
		fill(ws)
	}
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if inspect != nil {
		inspect(spec.ID)
	}
	res, err := rt.Wait(ctx, spec.ID)
	if err == nil {
		// The full streams are in the output directory until Remove.
		for name, want := range map[string]string{"stdout.txt": res.Stdout, "stderr.txt": res.Stderr} {
			b, rerr := os.ReadFile(filepath.Join(ws.OutputDir, name))
			if rerr != nil {
				t.Errorf("read %s: %v", name, rerr)
			} else if executor.TruncateOutput(string(b)) != want {
				t.Errorf("%s (%d bytes) does not truncate to the result's %d bytes", name, len(b), len(want))
			}
		}
	}
	return res, err
}

// assertGone checks that no container carries the runtime ID label and the workspace is gone.
func assertGone(t *testing.T, rt *docker.Runtime, id string, ws executor.Workspace) {
	t.Helper()
	list, err := rt.Client().ContainerList(context.Background(), container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", docker.LabelRuntimeID+"="+id)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("%d container(s) left for %s: %v", len(list), id, list[0].Names)
	}
	if _, err := os.Stat(ws.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("workspace %s still exists (%v)", ws.Dir, err)
	}
}

func TestRunHello(t *testing.T) {
	rt := newRuntime(t)
	img := jobimagetest.Hello(t)
	res, err := run(t, rt, executor.RunSpec{
		Image:   img,
		Cmd:     []string{"a", "b c"},
		Env:     []string{"FOO=bar"},
		Limits:  executor.Limits{MemoryBytes: 64 << 20, NanoCPUs: 5e8, Pids: 64},
		Timeout: time.Minute,
	}, func(ws executor.Workspace) {
		if err := os.WriteFile(filepath.Join(ws.VolumeDir, "payload.txt"), []byte("12345"), 0o644); err != nil {
			t.Fatal(err)
		}
	}, func(id string) {
		info, err := rt.Client().ContainerInspect(context.Background(), docker.ContainerName(id))
		if err != nil {
			t.Fatal(err)
		}
		hc := info.HostConfig
		if hc.NetworkMode != "none" || len(hc.CapDrop) != 1 || hc.CapDrop[0] != "ALL" ||
			len(hc.SecurityOpt) != 1 || hc.SecurityOpt[0] != "no-new-privileges" {
			t.Errorf("isolation settings: network %q capdrop %v secopt %v", hc.NetworkMode, hc.CapDrop, hc.SecurityOpt)
		}
		if hc.Memory != 64<<20 || hc.MemorySwap != 64<<20 || hc.NanoCPUs != 5e8 || hc.PidsLimit == nil || *hc.PidsLimit != 64 {
			t.Errorf("limits: memory %d swap %d cpus %d pids %v", hc.Memory, hc.MemorySwap, hc.NanoCPUs, hc.PidsLimit)
		}
		for _, m := range info.Mounts {
			if m.Destination == "/volume" && m.RW {
				t.Error("/volume is writable")
			}
			if m.Destination == "/output" && !m.RW {
				t.Error("/output is read-only")
			}
		}
		if info.Config.Labels[docker.LabelJobUUID] != "job-"+id || info.Config.Labels[docker.LabelExecutor] == "" {
			t.Errorf("labels: %v", info.Config.Labels)
		}
		if lc := hc.LogConfig; lc.Type != "json-file" || lc.Config["max-size"] != fmt.Sprint(docker.DefaultMaxLogBytes/2) || lc.Config["max-file"] != "2" {
			t.Errorf("log config: %+v", lc)
		}
		if len(hc.DeviceRequests) != 0 {
			t.Errorf("a job without GPUs got device requests %+v", hc.DeviceRequests)
		}
		if len(info.Mounts) != 2 {
			t.Errorf("mounts: %+v, want /volume and /output only", info.Mounts)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || res.TimedOut || res.OOMKilled {
		t.Fatalf("result: %+v", res)
	}
	for _, want := range []string{"hello from horde a b c\n", "volume: payload.txt 5\n", "output: wrote hello.txt\n"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("stdout lacks %q: %q", want, res.Stdout)
		}
	}
	if res.Stderr != "" {
		t.Errorf("stderr = %q", res.Stderr)
	}
	t.Logf("run took %v", res.Duration)
}

func TestNonZeroExit(t *testing.T) {
	rt := newRuntime(t)
	res, err := run(t, rt, executor.RunSpec{
		Image: jobimagetest.Hello(t), Cmd: []string{"--stderr", "boom", "--exit", "3"}, Timeout: time.Minute,
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || res.TimedOut {
		t.Fatalf("result: %+v", res)
	}
	if res.Stderr != "boom\nexiting with status 3\n" {
		t.Errorf("stderr = %q", res.Stderr)
	}
	if !strings.HasPrefix(res.Stdout, "hello from horde --stderr boom --exit 3\n") {
		t.Errorf("stdout = %q", res.Stdout)
	}
}

func TestTimeoutKills(t *testing.T) {
	rt := newRuntime(t)
	start := time.Now()
	res, err := run(t, rt, executor.RunSpec{
		// 5 s, not less: on a loaded machine a shorter limit can end the container before the
		// job has printed the line whose survival this test checks.
		Image: jobimagetest.Hello(t), Cmd: []string{"--sleep", "30s"}, Timeout: 5 * time.Second,
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut {
		t.Fatalf("not timed out: %+v", res)
	}
	if res.ExitCode != 137 {
		t.Errorf("exit code %d, want 137 (SIGKILL)", res.ExitCode)
	}
	if !strings.HasPrefix(res.Stdout, "hello from horde") {
		t.Errorf("stdout of the killed job lost: %q", res.Stdout)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("a 5 s limit took %v to enforce", took)
	}
}

// TestNoNetwork: the job reaches neither the host's loopback nor any other address of the
// host, though real listeners wait there.
func TestNoNetwork(t *testing.T) {
	rt := newRuntime(t)
	hosts := append([]string{"127.0.0.1"}, hostIPs(t)...)
	if len(hosts) < 2 {
		t.Fatal("the host has no address besides loopback to try")
	}
	var targets []string
	for _, h := range hosts {
		targets = append(targets, listen(t, h))
	}
	// The listeners work from the host.
	for _, addr := range targets {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatalf("host cannot reach its own listener %s: %v", addr, err)
		}
		c.Close()
	}
	cmd := []string{}
	for _, addr := range targets {
		cmd = append(cmd, "--dial", addr)
	}
	res, err := run(t, rt, executor.RunSpec{Image: jobimagetest.Hello(t), Cmd: cmd, Timeout: time.Minute}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range targets {
		if !strings.Contains(res.Stdout, "dial "+addr+": failed") {
			t.Errorf("job reached %s or did not try: %q", addr, res.Stdout)
		}
	}
}

// listen starts a TCP listener on host that accepts and closes connections until the test ends,
// and returns its address.
func listen(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// hostIPs returns the host's non-loopback IPv4 addresses.
func hostIPs(t *testing.T) []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			ips = append(ips, n.IP.String())
		}
	}
	return ips
}

func TestOutputTruncated(t *testing.T) {
	rt := newRuntime(t)
	const n = 1_500_000
	// run checks that stdout.txt holds the whole text and truncates to res.Stdout.
	res, err := run(t, rt, executor.RunSpec{
		Image: jobimagetest.Hello(t), Cmd: []string{"--print-bytes", fmt.Sprint(n)}, Timeout: time.Minute,
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(res.Stdout); got != executor.MaxOutputChars+len(" ... ") {
		t.Errorf("truncated stdout has %d chars, want %d", got, executor.MaxOutputChars+5)
	}
	if !strings.HasPrefix(res.Stdout, "hello from horde") || !strings.Contains(res.Stdout, " ... ") {
		t.Errorf("truncated stdout starts %q", res.Stdout[:40])
	}
}

func TestOOMKilled(t *testing.T) {
	rt := newRuntime(t)
	res, err := run(t, rt, executor.RunSpec{
		Image: jobimagetest.Hello(t), Cmd: []string{"--alloc-mb", "512"},
		Limits: executor.Limits{MemoryBytes: 32 << 20}, Timeout: time.Minute,
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OOMKilled || res.ExitCode == 0 {
		t.Errorf("a 512 MiB allocation under a 32 MiB limit: %+v", res)
	}
}

func TestWaitContextCancelled(t *testing.T) {
	rt := newRuntime(t)
	id := uniqueID(t)
	ws, err := rt.Prepare(context.Background(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background(), executor.RunSpec{ID: id, JobUUID: id, Image: jobimagetest.Hello(t), Cmd: []string{"--sleep", "30s"}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := rt.Wait(ctx, id); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want the context's error", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("Wait returned after %v", took)
	}
	// Remove works with the cancelled context too.
	if err := rt.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	assertGone(t, rt, id, ws)
}

func TestCloseRemovesLeftovers(t *testing.T) {
	jobimagetest.Engine(t)
	rt, err := docker.New(context.Background(), docker.Options{WorkDir: t.TempDir(), ExecutorID: "docker-test-close"})
	if err != nil {
		t.Fatal(err)
	}
	id := uniqueID(t)
	ws, err := rt.Prepare(context.Background(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background(), executor.RunSpec{ID: id, JobUUID: id, Image: jobimagetest.Hello(t), Cmd: []string{"--sleep", "30s"}}); err != nil {
		t.Fatal(err)
	}
	cli := jobimagetest.Engine(t)
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	list, err := cli.ContainerList(context.Background(), container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelRuntimeID+"="+id)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("Close left %d container(s)", len(list))
	}
	if _, err := os.Stat(ws.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left workspace %s", ws.Dir)
	}
}

func TestStartFailureRemovesContainer(t *testing.T) {
	rt := newRuntime(t)
	id := uniqueID(t)
	ws, err := rt.Prepare(context.Background(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The entrypoint cannot be executed: create succeeds, start fails.
	err = rt.Start(context.Background(), executor.RunSpec{ID: id, JobUUID: id, Image: missingEntrypointImage(t)})
	if err == nil {
		t.Fatal("Start succeeded")
	}
	if err := rt.Remove(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	assertGone(t, rt, id, ws)
}

func TestEnsureImage(t *testing.T) {
	rt := newRuntime(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := rt.EnsureImage(ctx, jobimagetest.Hello(t)); err != nil {
		t.Fatalf("present image: %v", err)
	}
	// Nothing listens on this loopback port, so the pull fails fast and offline.
	err := rt.EnsureImage(ctx, "127.0.0.1:1/horde-test/missing:nope")
	if err == nil || !strings.Contains(err.Error(), "pull image") {
		t.Fatalf("missing image: %v", err)
	}
}

func TestPrepareRejectsBadID(t *testing.T) {
	rt := newRuntime(t)
	for _, id := range []string{"", "../x", "a/b", strings.Repeat("a", 200)} {
		if _, err := rt.Prepare(context.Background(), id, 0); err == nil {
			t.Errorf("Prepare(%q) succeeded", id)
		}
	}
}

func TestNewUnreachable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/horde-test.sock")
	_, err := docker.New(context.Background(), docker.Options{})
	if !errors.Is(err, docker.ErrEngineUnreachable) {
		t.Fatalf("New = %v, want ErrEngineUnreachable", err)
	}
	for _, want := range []string{"unix:///nonexistent/horde-test.sock", "dockerd &", "DOCKER_HOST"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// missingEntrypointImage builds an image whose entrypoint does not exist.
func missingEntrypointImage(t *testing.T) string {
	t.Helper()
	cli := jobimagetest.Engine(t)
	tag := jobimagetest.RandomTag()
	if err := jobimage.Build(context.Background(), cli, jobimage.Spec{
		Tag: tag, Binary: jobimagetest.HelloBinary(t), Entrypoint: []string{"/bin/does-not-exist"},
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jobimagetest.RemoveImage(cli, tag) })
	return tag
}
