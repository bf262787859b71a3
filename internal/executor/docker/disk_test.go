package docker_test

import (
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/executor/docker/dockertest"
	"github.com/computehorde/horde/internal/jobimage"
	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
)

func TestNextDiskPoll(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		name        string
		limit, used int64
		rate        float64
		cost        time.Duration
		want        time.Duration
	}{
		{"far below the cap: half the time to reach it at 4 GiB/s", gib, 0, 4 * gib, 0, 125 * time.Millisecond},
		{"close to the cap", gib, gib - 40<<20, 4 * gib, 0, 4882812 * time.Nanosecond},
		{"at the cap: the floor", gib, gib, 4 * gib, 0, 2 * time.Millisecond},
		{"past the cap (not killed yet): the floor", gib, gib + 1, 4 * gib, 0, 2 * time.Millisecond},
		{"a faster job polls sooner", gib, 0, 16 * gib, 0, 31250 * time.Microsecond},
		{"a huge cap: the poll interval bounds the wait", 1 << 40, 0, 4 * gib, 0, time.Second},
		{"an expensive walk slows the polls down", gib, gib, 4 * gib, 10 * time.Millisecond, 40 * time.Millisecond},
		{"no rate: the assumed one", gib, 0, 0, 0, 125 * time.Millisecond},
	} {
		if got := docker.NextDiskPoll(tc.limit, tc.used, tc.rate, tc.cost, time.Second); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// fillDisk runs a job that writes to path as fast as it can, far past limit, and returns what
// it had on disk once the watchdog killed it.
func fillDisk(tb testing.TB, rt *docker.Runtime, path string, limit int64) (int64, executor.RunResult) {
	tb.Helper()
	ctx := context.Background()
	id := uniqueID(tb)
	if _, err := rt.Prepare(ctx, id, 0); err != nil {
		tb.Fatal(err)
	}
	defer func() {
		if err := rt.Remove(ctx, id); err != nil {
			tb.Error(err)
		}
	}()
	spec := executor.RunSpec{ID: id, JobUUID: id, Image: jobimagetest.Hello(tb), Timeout: time.Minute,
		Cmd: []string{"--write", path + ":" + "100000000000"}, Limits: executor.Limits{DiskBytes: limit}}
	if err := rt.Start(ctx, spec); err != nil {
		tb.Fatal(err)
	}
	res, err := rt.Wait(ctx, id)
	if err != nil {
		tb.Fatal(err)
	}
	used, err := rt.JobDiskUsage(ctx, id)
	if err != nil {
		tb.Fatal(err)
	}
	return used, res
}

// TestDiskCapFullSpeed: a job writing as fast as it can is killed close to its cap, into
// /output (the host's disk, about 2 GB/s here) or its writable layer. The overshoot figure
// itself is BenchmarkDiskCapOvershoot's; this test fails only on a regression to the old
// behaviour (a 1 s poll let a job write 3.4× its cap).
func TestDiskCapFullSpeed(t *testing.T) {
	const limit = 256 << 20
	rt := newRuntime(t)
	for name, path := range map[string]string{"output": "/output/big", "writable layer": "/tmp/big"} {
		t.Run(name, func(t *testing.T) {
			used, res := fillDisk(t, rt, path, limit)
			t.Logf("%s: %d bytes on disk against a %d-byte cap: %+.1f%%", name, used, limit, 100*float64(used-limit)/limit)
			if !res.DiskExceeded || res.ExitCode != 137 {
				t.Errorf("not killed for its disk use: %+v", res)
			}
			if used > 2*limit {
				t.Errorf("%d bytes on disk, more than twice the %d-byte cap", used, limit)
			}
		})
	}
}

// BenchmarkDiskCapOvershoot measures how far past a 1 GiB cap a job writing at full speed
// gets before the watchdog's kill lands, into /output (the host's disk) and into its writable
// layer; the target is 10%.
func BenchmarkDiskCapOvershoot(b *testing.B) {
	const limit = 1 << 30
	rt := newRuntime(b)
	for name, path := range map[string]string{"output": "/output/big", "writable-layer": "/tmp/big"} {
		b.Run(name, func(b *testing.B) {
			var worst, sum float64
			n := 0
			for b.Loop() {
				used, res := fillDisk(b, rt, path, limit)
				if !res.DiskExceeded {
					b.Fatalf("not killed: %+v", res)
				}
				pct := 100 * float64(used-limit) / limit
				worst, sum, n = max(worst, pct), sum+pct, n+1
			}
			b.ReportMetric(worst, "worst-overshoot-%")
			b.ReportMetric(sum/float64(n), "mean-overshoot-%")
		})
	}
}

// TestDiskQuotaHardLimit: on an engine whose storage driver has per-container quotas (btrfs
// here), the disk cap is a hard limit on the writable layer: the job's writes fail with
// "disk quota exceeded" at the cap instead of going on until the watchdog's kill, and the
// job goes on running. On this host's own engine (fuse-overlayfs, no quotas) the runtime
// falls back to the watchdog, as the other disk tests show.
func TestDiskQuotaHardLimit(t *testing.T) {
	qe := dockertest.StartQuotaEngine(t)
	img := jobimagetest.RandomTag()
	if err := jobimage.Build(context.Background(), qe.Client, jobimage.Spec{Tag: img, Binary: jobimagetest.HelloBinary(t)}); err != nil {
		t.Fatal(err)
	}
	cli, err := client.NewClientWithOpts(client.WithHost(qe.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	rt, err := docker.NewWithClient(cli, docker.Options{WorkDir: t.TempDir(), ExecutorID: "quota-" + uniqueID(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	const limit = 64 << 20
	res, err := run(t, rt, executor.RunSpec{Image: img, Timeout: time.Minute, Limits: executor.Limits{DiskBytes: limit},
		Cmd: []string{"--write", "/tmp/big:200000000"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`write /tmp/big: (\d+) bytes, failed: .*(disk quota exceeded|no space left on device)`).FindStringSubmatch(res.Stdout)
	if m == nil {
		t.Fatalf("the job's writes did not fail at the quota: %+v", res)
	}
	if n, _ := strconv.ParseInt(m[1], 10, 64); n > limit {
		t.Errorf("the job wrote %d bytes, past the %d-byte quota", n, limit)
	}
	if res.DiskExceeded || res.ExitCode != 0 {
		t.Errorf("the job was stopped instead of held by the quota: %+v", res)
	}
}
