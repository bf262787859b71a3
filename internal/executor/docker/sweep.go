package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// markerName is the file in each job directory that names the executor owning it and the
// directory's deadline. It lies outside the mounted subdirectories, so a job cannot touch it.
const markerName = ".horde-executor"

// marker is what a job directory's marker says: "<owner>\n" and, for a job with a lifetime,
// "<deadline RFC 3339>\n".
type marker struct {
	owner    string    // Options.ExecutorID of the runtime that made the directory
	deadline time.Time // zero: never abandoned by time
}

// writeMarker replaces dir's marker atomically, so a concurrent reader sees the old or the new
// one, never a torn one.
func writeMarker(dir string, m marker) error {
	text := m.owner + "\n"
	if !m.deadline.IsZero() {
		text += m.deadline.UTC().Format(time.RFC3339Nano) + "\n"
	}
	tmp := filepath.Join(dir, markerName+".new")
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, markerName))
}

// readMarker returns dir's marker; ok is false when there is none or it is not one of ours.
func readMarker(dir string) (m marker, ok bool) {
	p := filepath.Join(dir, markerName)
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() || fi.Size() > 1024 {
		return marker{}, false
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return marker{}, false
	}
	owner, rest, _ := strings.Cut(string(b), "\n")
	if owner == "" {
		return marker{}, false
	}
	m.owner = owner
	if line, _, _ := strings.Cut(rest, "\n"); line != "" {
		if m.deadline, err = time.Parse(time.RFC3339Nano, line); err != nil {
			return marker{}, false
		}
	}
	return m, true
}

// expired reports whether a deadline is set and passed at now.
func expired(deadline, now time.Time) bool { return !deadline.IsZero() && now.After(deadline) }

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
		if m, ok := readMarker(dir); !ok || m.owner != r.opts.ExecutorID || r.holdsDir(dir) {
			continue
		}
		r.log.Info("removing a leftover job directory", "dir", dir)
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("docker: remove leftover job directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

// SweepExpired removes the containers and workspaces of horde jobs whose deadline
// (LabelDeadline, the marker's deadline) has passed, whoever started them: a job container
// outliving its deadline belongs to an executor that was killed (a live one kills and removes
// its job at the deadline). Workspaces are looked for under Options.WorkDir and wherever an
// expired container's LabelWorkspace points. Jobs without a deadline are never touched, nor
// is anything this Runtime holds. Every horde process that runs executors calls it at start
// and, if it lives long, periodically.
func (r *Runtime) SweepExpired(ctx context.Context) error {
	now := time.Now()
	var errs []error
	list, err := r.cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelDeadline)),
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("docker: list job containers: %w", err))
	}
	dirs := map[string]bool{}
	for _, c := range list {
		deadline, err := time.Parse(time.RFC3339Nano, c.Labels[LabelDeadline])
		if err != nil || !expired(deadline, now) || r.holds(c.Labels[LabelRuntimeID]) && c.Labels[LabelExecutor] == r.opts.ExecutorID {
			continue
		}
		r.log.Info("removing an abandoned job container", "container", shortID(c.ID), "job_uuid", c.Labels[LabelJobUUID],
			"executor", c.Labels[LabelExecutor], "deadline", deadline, "state", c.State)
		if err := r.removeContainer(ctx, c.ID); err != nil {
			errs = append(errs, err)
		}
		if ws := c.Labels[LabelWorkspace]; ws != "" {
			dirs[filepath.Clean(ws)] = true
		}
	}
	if entries, err := os.ReadDir(r.workDir); err == nil {
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), workspacePrefix) {
				dirs[filepath.Join(r.workDir, e.Name())] = true
			}
		}
	} else {
		errs = append(errs, fmt.Errorf("docker: list job directories in %s: %w", r.workDir, err))
	}
	for dir := range dirs {
		// Only a directory that is a horde workspace by name and by marker, with its own
		// deadline passed: a label cannot point the sweep at anything else.
		if !filepath.IsAbs(dir) || !strings.HasPrefix(filepath.Base(dir), workspacePrefix) {
			continue
		}
		m, ok := readMarker(dir)
		if !ok || !expired(m.deadline, now) || r.holdsDir(dir) {
			continue
		}
		r.log.Info("removing an abandoned job directory", "dir", dir, "executor", m.owner, "deadline", m.deadline)
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("docker: remove abandoned job directory: %w", err))
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
