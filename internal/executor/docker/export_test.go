package docker

import (
	"context"
	"io"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/system"

	"github.com/computehorde/horde/internal/executor"
)

// SetSleep replaces the wait between retries, so tests control the backoff.
func (r *Runtime) SetSleep(f func(ctx context.Context, d time.Duration) error) { r.sleep = f }

// ContainerConfig is the container Start would create for spec in ws.
func (r *Runtime) ContainerConfig(spec executor.RunSpec, ws executor.Workspace) (*container.Config, *container.HostConfig, error) {
	return r.containerConfig(spec, ws, time.Time{})
}

// CheckEngineSecurity is the decision of CheckSecurity on one Info.
func CheckEngineSecurity(info system.Info) ([]string, error) { return checkEngineSecurity(info) }

// RegistryHost is the key of a registry name in the runtime's credentials.
func RegistryHost(name string) string { return registryHost(name) }

// RedactURLs strips URL query strings from s.
func RedactURLs(s string) string { return redactURLs(s) }

// JobDiskUsage is what job id has on disk now, measured as the disk watchdog does.
func (r *Runtime) JobDiskUsage(ctx context.Context, id string) (int64, error) {
	j, err := r.job(id)
	if err != nil {
		return 0, err
	}
	info, err := r.cli.ContainerInspect(ctx, j.containerID)
	if err != nil {
		return 0, err
	}
	return r.diskUsage(ctx, j.ws, j.containerID, upperDir(info), mergedDir(info)), nil
}

// NextDiskPoll is the disk watchdog's schedule.
func NextDiskPoll(limit, used int64, rate float64, cost, maxWait time.Duration) time.Duration {
	return nextDiskPoll(limit, used, rate, cost, maxWait)
}

// DisableDiskWatch leaves the disk cap to the check after the job exits.
func (r *Runtime) DisableDiskWatch() { r.noDiskWatch = true }

// ReadPull drains a pull's progress stream as pull does.
func ReadPull(rd io.Reader, bound int64, progress func(done, total int64)) error {
	return readPull(rd, bound, progress)
}
