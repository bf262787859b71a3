package docker_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/executor/docker/dockertest"
	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
)

// BenchmarkBareEngineRun is the floor: create, start, wait, logs and remove of the hello
// container straight through the Engine API client, with the same isolation and log settings.
// The "mounts" variant adds the two bind mounts the runtime uses, to separate the engine's cost
// of mounts from the runtime's own work.
func BenchmarkBareEngineRun(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchBare(b, false) })
	b.Run("mounts", func(b *testing.B) { benchBare(b, true) })
}

func benchBare(b *testing.B, mounts bool) {
	cli := jobimagetest.Engine(b)
	img := jobimagetest.Hello(b)
	ctx := context.Background()
	host := &container.HostConfig{
		NetworkMode: "none", SecurityOpt: []string{"no-new-privileges"}, CapDrop: []string{"ALL"},
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{
			"max-size": fmt.Sprint(docker.DefaultMaxLogBytes / 2), "max-file": "2",
		}},
	}
	if mounts {
		dir := b.TempDir()
		host.Mounts = []mount.Mount{
			{Type: mount.TypeBind, Source: dir, Target: "/volume", ReadOnly: true},
			{Type: mount.TypeBind, Source: dir, Target: "/output"},
		}
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		stdout, err := dockertest.BareRun(ctx, cli, &container.Config{Image: img, Cmd: []string{"bench"}}, host,
			fmt.Sprintf("horde-bench-bare-%d-%d", os.Getpid(), i))
		if err != nil {
			b.Fatal(err)
		}
		if !strings.HasPrefix(stdout, "hello from horde") {
			b.Fatalf("stdout %q", stdout)
		}
	}
}

// BenchmarkRuntimeRun runs the same container through the runtime: Prepare (temp dirs and the
// owner marker), Start (with bind mounts, labels and the log cap), Wait (inspect, logs to files,
// truncation; no disk watchdog, as DiskBytes is 0) and Remove.
func BenchmarkRuntimeRun(b *testing.B) {
	jobimagetest.Engine(b)
	img := jobimagetest.Hello(b)
	ctx := context.Background()
	rt, err := docker.New(ctx, docker.Options{WorkDir: b.TempDir(), ExecutorID: "docker-bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("bench-%d-%d", os.Getpid(), i)
		if _, err := rt.Prepare(ctx, id, 0); err != nil {
			b.Fatal(err)
		}
		if err := rt.Start(ctx, executor.RunSpec{ID: id, JobUUID: id, Image: img, Cmd: []string{"bench"}}); err != nil {
			b.Fatal(err)
		}
		res, err := rt.Wait(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "hello from horde") {
			b.Fatalf("result %+v", res)
		}
		if err := rt.Remove(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}
