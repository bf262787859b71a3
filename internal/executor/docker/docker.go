// Package docker is the executor's container runtime on a Docker engine, through the Engine API
// (official client, API version negotiated; Debian's dockerd 20.10 speaks 1.41).
//
// Job containers get no network (NetworkMode "none"), no new privileges, no capabilities, the
// memory/CPU/pids limits of executor.Limits, /volume bound read-only and /output read-write from
// a per-job temporary directory, and the labels LabelJobUUID and LabelExecutor. The runtime only
// ever removes containers it created (tracked by ID, and carrying its labels).
package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/computehorde/horde/internal/executor"
)

// Labels on every job container.
const (
	// LabelJobUUID carries the job's UUID.
	LabelJobUUID = "horde.job_uuid"
	// LabelExecutor carries Options.ExecutorID: which executor owns the container.
	LabelExecutor = "horde.executor"
	// LabelRuntimeID carries the runtime ID (executor token) the container was started for.
	LabelRuntimeID = "horde.runtime_id"
)

// ContainerNamePrefix starts every job container's name.
const ContainerNamePrefix = "horde-job-"

// Timeouts of the engine calls that are not bounded by the job itself.
const (
	pingTimeout    = 5 * time.Second
	cleanupTimeout = 30 * time.Second
	killTimeout    = 15 * time.Second
)

// ErrEngineUnreachable is returned by New when the Docker engine does not answer.
var ErrEngineUnreachable = errors.New("docker: engine not reachable")

// ErrUnknownJob is returned for a runtime ID that Prepare has not seen (or Remove has removed).
var ErrUnknownJob = errors.New("docker: unknown job")

// Options configures a Runtime. The zero value works.
type Options struct {
	// WorkDir is the parent of the per-job temporary directories; empty means os.TempDir().
	// The directories are bind-mounted, so the path must mean the same on the engine's host
	// (matters when the executor itself runs in a container).
	WorkDir string
	// ExecutorID is the value of the horde.executor label; empty means "horde-executor".
	ExecutorID string
	// Logger receives one line per container event; nil discards.
	Logger *slog.Logger
}

// Runtime implements executor.Runtime on a Docker engine.
type Runtime struct {
	cli  *client.Client
	opts Options
	log  *slog.Logger

	mu   sync.Mutex
	jobs map[string]*job // by runtime ID
}

var _ executor.Runtime = (*Runtime)(nil)

type job struct {
	id          string
	ws          executor.Workspace
	containerID string
	started     time.Time
	timeout     time.Duration
}

// New connects to the engine named by the environment (DOCKER_HOST, DOCKER_API_VERSION, …;
// default unix:///var/run/docker.sock), negotiates the API version and pings it. An engine that
// does not answer gives an error wrapping ErrEngineUnreachable that says how to fix it.
func New(ctx context.Context, opts Options) (*Runtime, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker: client from environment (check DOCKER_HOST, DOCKER_CERT_PATH): %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		host := cli.DaemonHost()
		cli.Close()
		return nil, fmt.Errorf("%w at %s: %w — start it (e.g. `dockerd &` or `systemctl start docker`) or set DOCKER_HOST", ErrEngineUnreachable, host, err)
	}
	return NewWithClient(cli, opts), nil
}

// NewWithClient wraps an existing client (which the Runtime then owns and closes).
func NewWithClient(cli *client.Client, opts Options) *Runtime {
	if opts.ExecutorID == "" {
		opts.ExecutorID = "horde-executor"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runtime{cli: cli, opts: opts, log: log, jobs: map[string]*job{}}
}

// Client returns the engine client, for tests and tools that need raw calls.
func (r *Runtime) Client() *client.Client { return r.cli }

// EnsureImage implements executor.Runtime.
func (r *Runtime) EnsureImage(ctx context.Context, ref string) error {
	if _, err := r.cli.ImageInspect(ctx, ref); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: inspect image %s: %w", ref, err)
	}
	r.log.Info("pulling image", "image", ref)
	rc, err := r.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("docker: pull image %s: %w", ref, err)
	}
	defer rc.Close()
	if err := readJSONStream(rc); err != nil {
		return fmt.Errorf("docker: pull image %s: %w", ref, err)
	}
	if _, err := r.cli.ImageInspect(ctx, ref); err != nil {
		return fmt.Errorf("docker: image %s missing after pull: %w", ref, err)
	}
	return nil
}

var validID = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// Prepare implements executor.Runtime.
func (r *Runtime) Prepare(ctx context.Context, id string) (executor.Workspace, error) {
	if !validID.MatchString(id) {
		return executor.Workspace{}, fmt.Errorf("docker: runtime ID %q must be 1-128 characters of [a-zA-Z0-9_.-], starting with a letter or digit", id)
	}
	r.mu.Lock()
	_, dup := r.jobs[id]
	r.mu.Unlock()
	if dup {
		return executor.Workspace{}, fmt.Errorf("docker: job %s already prepared", id)
	}
	dir, err := os.MkdirTemp(r.opts.WorkDir, "horde-job-")
	if err != nil {
		return executor.Workspace{}, fmt.Errorf("docker: create job directory (check Options.WorkDir): %w", err)
	}
	ws := executor.Workspace{Dir: dir, VolumeDir: filepath.Join(dir, "volume"), OutputDir: filepath.Join(dir, "output")}
	for _, d := range []string{ws.VolumeDir, ws.OutputDir} {
		err := os.Mkdir(d, 0o777)
		if err == nil {
			// The job may run as any user: make both directories usable by it (umask
			// would otherwise strip the bits).
			err = os.Chmod(d, 0o777)
		}
		if err != nil {
			os.RemoveAll(dir)
			return executor.Workspace{}, fmt.Errorf("docker: create job directory: %w", err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.jobs[id]; dup {
		os.RemoveAll(dir)
		return executor.Workspace{}, fmt.Errorf("docker: job %s already prepared", id)
	}
	r.jobs[id] = &job{id: id, ws: ws}
	return ws, nil
}

func (r *Runtime) job(id string) (*job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j, ok := r.jobs[id]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownJob, id)
	}
	return j, nil
}

// ContainerName is the name of the container of runtime ID id.
func ContainerName(id string) string { return ContainerNamePrefix + id }

// Start implements executor.Runtime.
func (r *Runtime) Start(ctx context.Context, spec executor.RunSpec) error {
	j, err := r.job(spec.ID)
	if err != nil {
		return err
	}
	if j.containerID != "" {
		return fmt.Errorf("docker: job %s already started", spec.ID)
	}
	if spec.Image == "" {
		return errors.New("docker: RunSpec.Image is empty")
	}
	cfg := &container.Config{
		Image:  spec.Image,
		Cmd:    spec.Cmd,
		Env:    spec.Env,
		Labels: r.labels(spec),
	}
	host := &container.HostConfig{
		NetworkMode: "none",
		SecurityOpt: []string{"no-new-privileges"},
		CapDrop:     []string{"ALL"},
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: j.ws.VolumeDir, Target: "/volume", ReadOnly: true},
			{Type: mount.TypeBind, Source: j.ws.OutputDir, Target: "/output"},
		},
		Resources: resources(spec.Limits),
	}
	created, err := r.cli.ContainerCreate(ctx, cfg, host, nil, nil, ContainerName(spec.ID))
	if err != nil {
		return fmt.Errorf("docker: create container for job %s: %w", spec.ID, err)
	}
	log := r.log.With("job_uuid", spec.JobUUID, "container", shortID(created.ID))
	for _, w := range created.Warnings {
		log.Warn("engine warning on create", "warning", w)
	}
	r.mu.Lock()
	j.containerID = created.ID
	j.timeout = spec.Timeout
	r.mu.Unlock()

	if err := r.cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		// Remove the container now; the workspace stays until Remove.
		r.removeContainer(ctx, created.ID)
		r.mu.Lock()
		j.containerID = ""
		r.mu.Unlock()
		return fmt.Errorf("docker: start container for job %s: %w", spec.ID, err)
	}
	r.mu.Lock()
	j.started = time.Now()
	r.mu.Unlock()
	log.Info("job container started", "image", spec.Image, "timeout", spec.Timeout)
	return nil
}

func (r *Runtime) labels(spec executor.RunSpec) map[string]string {
	return map[string]string{
		LabelJobUUID:   spec.JobUUID,
		LabelExecutor:  r.opts.ExecutorID,
		LabelRuntimeID: spec.ID,
	}
}

func resources(l executor.Limits) container.Resources {
	var res container.Resources
	if l.MemoryBytes > 0 {
		res.Memory = l.MemoryBytes
		res.MemorySwap = l.MemoryBytes // memory+swap == memory: no swap
	}
	if l.NanoCPUs > 0 {
		res.NanoCPUs = l.NanoCPUs
	}
	if l.Pids > 0 {
		p := l.Pids
		res.PidsLimit = &p
	}
	return res
}

// Wait implements executor.Runtime.
func (r *Runtime) Wait(ctx context.Context, id string) (executor.RunResult, error) {
	j, err := r.job(id)
	if err != nil {
		return executor.RunResult{}, err
	}
	r.mu.Lock()
	cid, started, timeout := j.containerID, j.started, j.timeout
	r.mu.Unlock()
	if cid == "" {
		return executor.RunResult{}, fmt.Errorf("docker: job %s has no running container; call Start first", id)
	}

	waitCtx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		waitCtx, cancel = context.WithDeadline(ctx, started.Add(timeout))
	}
	defer cancel()

	var res executor.RunResult
	exitCh, errCh := r.cli.ContainerWait(waitCtx, cid, container.WaitConditionNotRunning)
	select {
	case st := <-exitCh:
		if st.Error != nil && st.Error.Message != "" {
			return res, fmt.Errorf("docker: wait for job %s: %s", id, st.Error.Message)
		}
		res.ExitCode = int(st.StatusCode)
	case err := <-errCh:
		if ctx.Err() != nil {
			// The caller gave up: stop the job; Remove cleans up.
			r.kill(cid)
			return res, fmt.Errorf("docker: wait for job %s: %w", id, ctx.Err())
		}
		if !errors.Is(err, context.DeadlineExceeded) && waitCtx.Err() == nil {
			return res, fmt.Errorf("docker: wait for job %s: %w", id, err)
		}
		res.TimedOut = true
		r.log.Info("job container hit its time limit; killing it", "container", shortID(cid), "timeout", timeout)
		if err := r.kill(cid); err != nil {
			return res, err
		}
	}
	res.Duration = time.Since(started)

	info, err := r.cli.ContainerInspect(ctx, cid)
	if err != nil {
		return res, fmt.Errorf("docker: inspect container of job %s: %w", id, err)
	}
	if info.State != nil {
		res.ExitCode = info.State.ExitCode
		res.OOMKilled = info.State.OOMKilled
	}
	if err := r.collectLogs(ctx, cid, j.ws.OutputDir, &res); err != nil {
		return res, fmt.Errorf("docker: logs of job %s: %w", id, err)
	}
	r.log.Info("job container exited", "container", shortID(cid), "exit_code", res.ExitCode,
		"timed_out", res.TimedOut, "oom_killed", res.OOMKilled, "duration", res.Duration)
	return res, nil
}

// kill sends SIGKILL and waits until the container is no longer running, on a context of its
// own: a kill must happen even when the caller's context has ended.
func (r *Runtime) kill(cid string) error {
	ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
	defer cancel()
	if err := r.cli.ContainerKill(ctx, cid, "KILL"); err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
		// Conflict: the container already stopped.
		return fmt.Errorf("docker: kill container %s: %w", shortID(cid), err)
	}
	exitCh, errCh := r.cli.ContainerWait(ctx, cid, container.WaitConditionNotRunning)
	select {
	case <-exitCh:
		return nil
	case err := <-errCh:
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("docker: wait for killed container %s: %w", shortID(cid), err)
	}
}

// collectLogs copies the container's stdout and stderr into stdout.txt and stderr.txt in
// outputDir, then fills res with their truncated text.
func (r *Runtime) collectLogs(ctx context.Context, cid, outputDir string, res *executor.RunResult) error {
	stdoutPath := filepath.Join(outputDir, "stdout.txt")
	stderrPath := filepath.Join(outputDir, "stderr.txt")
	stdout, err := createFresh(stdoutPath)
	if err != nil {
		return err
	}
	defer stdout.Close()
	stderr, err := createFresh(stderrPath)
	if err != nil {
		return err
	}
	defer stderr.Close()

	rc, err := r.cli.ContainerLogs(ctx, cid, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := stdcopy.StdCopy(stdout, stderr, rc); err != nil {
		return err
	}
	if err := stdout.Close(); err != nil {
		return err
	}
	if err := stderr.Close(); err != nil {
		return err
	}
	if res.Stdout, err = executor.ReadOutputFile(stdoutPath); err != nil {
		return err
	}
	if res.Stderr, err = executor.ReadOutputFile(stderrPath); err != nil {
		return err
	}
	return nil
}

// createFresh creates path, first removing whatever the job left there. O_EXCL does not follow
// a symlink, so a job cannot redirect the write to a host file by planting one.
func createFresh(path string) (*os.File, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		// A directory the job created in its place: clear it.
		if err := os.RemoveAll(path); err != nil {
			return nil, err
		}
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
}

// Remove implements executor.Runtime.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	r.mu.Lock()
	j, ok := r.jobs[id]
	delete(r.jobs, id)
	r.mu.Unlock()
	if !ok {
		return nil
	}
	return r.removeJob(ctx, j)
}

func (r *Runtime) removeJob(ctx context.Context, j *job) error {
	var errs []error
	if j.containerID != "" {
		if err := r.removeContainer(ctx, j.containerID); err != nil {
			errs = append(errs, err)
		}
	}
	if j.ws.Dir != "" {
		if err := os.RemoveAll(j.ws.Dir); err != nil {
			errs = append(errs, fmt.Errorf("docker: remove job directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

// removeContainer force-removes cid on a fresh bounded context (cleanup must run when the
// caller's context has ended). Already gone is success.
func (r *Runtime) removeContainer(ctx context.Context, cid string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	err := r.cli.ContainerRemove(ctx, cid, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		if cerrdefs.IsConflict(err) {
			// "removal already in progress"
			return nil
		}
		return fmt.Errorf("docker: remove container %s: %w", shortID(cid), err)
	}
	r.log.Debug("job container removed", "container", shortID(cid))
	return nil
}

// Close implements executor.Runtime: it removes every job still held, then closes the client.
func (r *Runtime) Close() error {
	r.mu.Lock()
	jobs := r.jobs
	r.jobs = map[string]*job{}
	r.mu.Unlock()
	var errs []error
	for _, j := range jobs {
		if err := r.removeJob(context.Background(), j); err != nil {
			errs = append(errs, err)
		}
	}
	if err := r.cli.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// readJSONStream drains an engine progress stream (pull, load) and returns the first error
// reported in it.
func readJSONStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read engine response: %w", err)
		}
		if msg.ErrorDetail != nil && msg.ErrorDetail.Message != "" {
			return errors.New(msg.ErrorDetail.Message)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
}
