package docker_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/executor/docker/dockertest"
	"github.com/computehorde/horde/internal/jobimage/jobimagetest"
)

// TestEngineLostMidJob: the engine goes away while a job runs. Wait returns at once with
// ErrEngineConnectionLost; Remove, called while the engine is still away, retries until it
// is back and then removes the container.
func TestEngineLostMidJob(t *testing.T) {
	direct := jobimagetest.Engine(t)
	host := direct.DaemonHost()
	if !strings.HasPrefix(host, "unix://") {
		t.Skipf("the proxy needs a unix-socket engine, not %s", host)
	}
	p := dockertest.StartProxy(t, strings.TrimPrefix(host, "unix://"))
	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+p.Path), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	rt, err := docker.NewWithClient(cli, docker.Options{WorkDir: t.TempDir(), ExecutorID: "engine-lost-" + uniqueID(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})

	ctx := context.Background()
	id := uniqueID(t)
	ws, err := rt.Prepare(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx, executor.RunSpec{ID: id, JobUUID: id, Image: jobimagetest.Hello(t), Cmd: []string{"--sleep", "30s"}, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() {
		_, err := rt.Wait(ctx, id)
		waitErr <- err
	}()
	select {
	case <-p.Waits():
	case err := <-waitErr:
		t.Fatalf("Wait returned before the engine went away: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Wait sent no wait request")
	}
	cut := time.Now()
	p.Cut()
	select {
	case err := <-waitErr:
		t.Log(err)
		if !errors.Is(err, docker.ErrEngineConnectionLost) || !strings.Contains(err.Error(), "engine connection lost") || !strings.Contains(err.Error(), id) {
			t.Errorf("Wait = %v, want ErrEngineConnectionLost naming the job", err)
		}
		if took := time.Since(cut); took > 5*time.Second {
			t.Errorf("Wait noticed the loss after %v", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not notice the engine going away")
	}

	// Remove while the engine is away: its first retry waits until the engine is back.
	retrying := make(chan struct{})
	resumed := make(chan struct{})
	var once sync.Once
	rt.SetSleep(func(ctx context.Context, d time.Duration) error {
		once.Do(func() { close(retrying) })
		select {
		case <-resumed:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	removeErr := make(chan error, 1)
	go func() { removeErr <- rt.Remove(ctx, id) }()
	select {
	case <-retrying:
	case err := <-removeErr:
		t.Fatalf("Remove with the engine away returned %v without retrying", err)
	}
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	close(resumed)
	if err := <-removeErr; err != nil {
		t.Fatalf("Remove after the engine came back: %v", err)
	}
	list, err := direct.ContainerList(ctx, container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelRuntimeID+"="+id)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("container of %s left after Remove: %v", id, list[0].Names)
	}
	assertGone(t, rt, id, ws)
}
