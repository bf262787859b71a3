package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// markerName is the file in each job directory that names the executor owning it. It lies
// outside the mounted subdirectories, so a job cannot touch it.
const markerName = ".horde-executor"

func writeMarker(dir, executorID string) error {
	return os.WriteFile(filepath.Join(dir, markerName), []byte(executorID+"\n"), 0o600)
}

// readMarker returns the executor ID in dir's marker; "" when there is none.
func readMarker(dir string) string {
	p := filepath.Join(dir, markerName)
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() || fi.Size() > 1024 {
		return ""
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(b), "\n")
}

// Sweep removes what a previous process of this executor left behind: containers labelled
// horde.executor=Options.ExecutorID and job directories under WorkDir whose marker names
// Options.ExecutorID, except those of jobs this Runtime holds. Nothing of another executor is
// touched. Call it at start-up, before the first job.
func (r *Runtime) Sweep(ctx context.Context) error {
	var errs []error
	list, err := r.cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelExecutor+"="+r.opts.ExecutorID)),
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("docker: list containers of executor %s: %w", r.opts.ExecutorID, err))
	}
	for _, c := range list {
		// A job this Runtime holds may be starting: its container is ours and alive.
		if c.Labels[LabelExecutor] != r.opts.ExecutorID || r.holds(c.Labels[LabelRuntimeID]) {
			continue
		}
		r.log.Info("removing a leftover job container", "container", shortID(c.ID), "names", c.Names, "job_uuid", c.Labels[LabelJobUUID])
		if err := r.removeContainer(ctx, c.ID); err != nil {
			errs = append(errs, err)
		}
	}

	entries, err := os.ReadDir(r.workDir)
	if err != nil {
		errs = append(errs, fmt.Errorf("docker: list job directories in %s: %w", r.workDir, err))
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), workspacePrefix) {
			continue
		}
		dir := filepath.Join(r.workDir, e.Name())
		// Marker first, then the held check: Prepare holds the job before writing the marker.
		if readMarker(dir) != r.opts.ExecutorID || r.holdsDir(dir) {
			continue
		}
		r.log.Info("removing a leftover job directory", "dir", dir)
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("docker: remove leftover job directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (r *Runtime) holds(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.jobs[id]
	return ok
}

func (r *Runtime) holdsDir(dir string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, j := range r.jobs {
		if j.ws.Dir == dir {
			return true
		}
	}
	return false
}
