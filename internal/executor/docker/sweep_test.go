package docker_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
)

// TestSweep: a new runtime of executor A removes what an earlier runtime of A left (its
// process "died" without Remove), but nothing of executor B sharing the engine and WorkDir, and
// nothing it holds itself.
func TestSweep(t *testing.T) {
	cli := jobimagetest.Engine(t)
	img := jobimagetest.Hello(t)
	ctx := context.Background()
	workDir := t.TempDir()
	execA, execB := "sweep-a-"+uniqueID(t), "sweep-b-"+uniqueID(t)
	open := func(id string) *docker.Runtime {
		rt, err := docker.New(ctx, docker.Options{WorkDir: workDir, ExecutorID: id})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := rt.Close(); err != nil {
				t.Errorf("close %s: %v", id, err)
			}
		})
		return rt
	}
	start := func(rt *docker.Runtime) (string, executor.Workspace) {
		id := uniqueID(t)
		ws, err := rt.Prepare(ctx, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.Start(ctx, executor.RunSpec{ID: id, JobUUID: id, Image: img, Cmd: []string{"--sleep", "30s"}}); err != nil {
			t.Fatal(err)
		}
		return id, ws
	}
	count := func(id string) int {
		list, err := cli.ContainerList(ctx, container.ListOptions{
			All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelRuntimeID+"="+id)),
		})
		if err != nil {
			t.Fatal(err)
		}
		return len(list)
	}
	exists := func(dir string) bool {
		_, err := os.Stat(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return err == nil
	}

	deadA := open(execA) // stands for a killed process of A: never removes its job
	leftID, leftWS := start(deadA)
	prepOnly, err := deadA.Prepare(ctx, uniqueID(t), 0) // a directory without a container
	if err != nil {
		t.Fatal(err)
	}
	otherID, otherWS := start(open(execB))
	stranger := filepath.Join(workDir, "horde-job-unmarked")
	if err := os.Mkdir(stranger, 0o700); err != nil {
		t.Fatal(err)
	}

	liveA := open(execA)
	heldID, heldWS := start(liveA)
	if err := liveA.Sweep(ctx); err != nil {
		t.Fatal(err)
	}

	if n := count(leftID); n != 0 {
		t.Errorf("leftover container of A survived (%d)", n)
	}
	for _, dir := range []string{leftWS.Dir, prepOnly.Dir} {
		if exists(dir) {
			t.Errorf("leftover directory %s of A survived", dir)
		}
	}
	if count(otherID) != 1 || !exists(otherWS.Dir) {
		t.Error("Sweep removed executor B's job")
	}
	if count(heldID) != 1 || !exists(heldWS.Dir) {
		t.Error("Sweep removed a job its runtime holds")
	}
	if !exists(stranger) {
		t.Error("Sweep removed a directory without a marker")
	}
	// The runtimes' Close (cleanups) remove B's and the held job; deadA's Close finds its
	// job already gone, which is no error.
}

// TestSweepExpired: a job whose deadline passed is removed by any runtime's SweepExpired,
// whoever started it (here executor "dead", standing for a process killed with -9): its
// container, its workspace (found through the container's label even from another work
// directory), and a workspace that never got a container. Jobs within their deadline and jobs
// without one are left alone.
func TestSweepExpired(t *testing.T) {
	cli := jobimagetest.Engine(t)
	img := jobimagetest.Hello(t)
	ctx := context.Background()
	deadDir := t.TempDir()
	open := func(id, workDir string) *docker.Runtime {
		rt, err := docker.New(ctx, docker.Options{WorkDir: workDir, ExecutorID: id, ExpiryGrace: time.Nanosecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rt.Close() })
		return rt
	}
	dead := open("expired-dead-"+uniqueID(t), deadDir)
	start := func(lifetime time.Duration) (string, executor.Workspace) {
		id := uniqueID(t)
		ws, err := dead.Prepare(ctx, id, lifetime)
		if err != nil {
			t.Fatal(err)
		}
		spec := executor.RunSpec{ID: id, JobUUID: id, Image: img, Cmd: []string{"--sleep", "1h"}, Lifetime: lifetime}
		if err := dead.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
		return id, ws
	}
	running := func(id string) bool {
		info, err := cli.ContainerInspect(ctx, docker.ContainerName(id))
		if err != nil {
			return false
		}
		return info.State.Running
	}
	exists := func(dir string) bool {
		_, err := os.Stat(dir)
		return err == nil
	}

	// Long enough to read the labels back before any horde process (a concurrent test's)
	// may remove the expired job: on a loaded machine, with packages running side by side,
	// starting the containers below can take seconds.
	const short = 5 * time.Second
	prepOnly, err := dead.Prepare(ctx, uniqueID(t), short) // expires before the container below
	if err != nil {
		t.Fatal(err)
	}
	expiredID, expiredWS := start(short)
	liveID, liveWS := start(time.Hour)
	foreverID, foreverWS := start(0)
	info, err := cli.ContainerInspect(ctx, docker.ContainerName(expiredID))
	if err != nil {
		t.Fatal(err)
	}
	deadline, err := time.Parse(time.RFC3339Nano, info.Config.Labels[docker.LabelDeadline])
	if err != nil || info.Config.Labels[docker.LabelWorkspace] != expiredWS.Dir {
		t.Fatalf("labels %v: %v", info.Config.Labels, err)
	}
	time.Sleep(time.Until(deadline) + time.Millisecond) // the job's time has to pass

	// Another executor in another work directory: it finds the expired job by its labels.
	other := open("expired-other-"+uniqueID(t), t.TempDir())
	if err := other.SweepExpired(ctx); err != nil {
		t.Fatal(err)
	}
	if running(expiredID) || exists(expiredWS.Dir) {
		t.Errorf("the expired job survived: running %v, workspace %v", running(expiredID), exists(expiredWS.Dir))
	}
	if !running(liveID) || !exists(liveWS.Dir) || !running(foreverID) || !exists(foreverWS.Dir) {
		t.Error("SweepExpired removed a job within its deadline or without one")
	}
	if !exists(prepOnly.Dir) {
		t.Error("a workspace outside the sweeping runtime's work directory and named by no container was removed")
	}
	// One in the dead executor's work directory finds the workspace that has no container.
	if err := open("expired-third-"+uniqueID(t), deadDir).SweepExpired(ctx); err != nil {
		t.Fatal(err)
	}
	if exists(prepOnly.Dir) {
		t.Error("the expired workspace without a container survived")
	}
	if !exists(liveWS.Dir) || !exists(foreverWS.Dir) {
		t.Error("the work directory's sweep removed live workspaces")
	}
}
