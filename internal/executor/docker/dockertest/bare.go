package dockertest

import (
	"bytes"
	"context"
	"fmt"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// BareRun runs a container straight through the Engine API, as the floor the executor's
// benchmarks compare with: create, start, wait, logs, remove. It returns the container's stdout
// and fails on a non-zero exit.
func BareRun(ctx context.Context, cli *client.Client, cfg *container.Config, host *container.HostConfig, name string) (string, error) {
	created, err := cli.ContainerCreate(ctx, cfg, host, nil, nil, name)
	if err != nil {
		return "", err
	}
	removed := false
	defer func() {
		if !removed { // a failed run must not leave its container behind
			cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, container.RemoveOptions{Force: true})
		}
	}()
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return "", err
	}
	exitCh, errCh := cli.ContainerWait(ctx, created.ID, container.WaitConditionNotRunning)
	select {
	case st := <-exitCh:
		if st.StatusCode != 0 {
			return "", fmt.Errorf("container exited with status %d", st.StatusCode)
		}
	case err := <-errCh:
		return "", err
	}
	rc, err := cli.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, rc); err != nil {
		return "", err
	}
	removed = true
	if err := cli.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true}); err != nil {
		return "", err
	}
	return stdout.String(), nil
}
