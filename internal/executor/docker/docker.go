// Package docker is the executor's container runtime on a Docker engine, through the Engine API
// (official client, API version negotiated; Debian's dockerd 20.10 speaks 1.41).
//
// Job containers get no network (NetworkMode "none"), no new privileges, no capabilities, the
// memory/CPU/pids limits of executor.Limits, /volume bound read-only and /output read-write from
// a per-job temporary directory (plus the artifacts directory and /script.py when asked), the
// GPUs of RunSpec.GPUDevices (every GPU when it is empty) only when RunSpec.GPUs is set, a json-file log capped at Options.MaxLogBytes, and the
// labels LabelJobUUID, LabelExecutor and LabelRuntimeID, and, for a job with a lifetime,
// LabelDeadline and LabelWorkspace. A disk watchdog enforces Limits.DiskBytes while the job
// runs.
//
// The runtime removes containers and directories of its own executor: those it created
// (tracked by ID) and, through Sweep, leftovers that carry its Options.ExecutorID. Beyond
// those, SweepExpired removes any horde job's container and workspace whose deadline has
// passed, whoever started it: its executor was killed, or it would have removed them itself.
package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/computehorde/horde/internal/clock"
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
	// LabelDeadline carries the moment (RFC 3339, UTC) after which the container counts as
	// abandoned: the end of the job's last stage plus Options.ExpiryGrace.
	LabelDeadline = "horde.deadline"
	// LabelWorkspace carries the job's workspace directory on the host, so that a sweep
	// from another work directory can find it.
	LabelWorkspace = "horde.workspace"
)

// ContainerNamePrefix starts every job container's name.
const ContainerNamePrefix = "horde-job-"

// workspacePrefix starts the name of every job directory under Options.WorkDir.
const workspacePrefix = "horde-job-"

// Defaults of Options.
const (
	DefaultPullTimeout      = 5 * time.Minute
	DefaultMaxLogBytes      = 256 << 20
	DefaultDiskPollInterval = time.Second
	// DefaultExpiryGrace is how long past a job's deadline its leftovers are kept before
	// any horde process may remove them; it is also the most Options.ExpiryGrace may be.
	DefaultExpiryGrace = time.Minute
)

// Timeouts and backoff of the engine calls that are not bounded by the job itself.
const (
	pingTimeout    = 5 * time.Second
	cleanupTimeout = 30 * time.Second
	createTimeout  = 30 * time.Second // one container create, which is not cancelled half-way
	killTimeout    = 15 * time.Second
	retryFirst     = 100 * time.Millisecond
	retryMax       = 2 * time.Second
)

// ErrEngineUnreachable is returned by New when the Docker engine does not answer.
var ErrEngineUnreachable = errors.New("docker: engine not reachable")

// ErrEngineConnectionLost is returned by Wait when the connection to the engine breaks while
// the job runs (engine restarting or dead). The container may still exist; Remove retries.
var ErrEngineConnectionLost = errors.New("docker: engine connection lost")

// ErrUnknownJob is returned for a runtime ID that Prepare has not seen (or Remove has removed).
var ErrUnknownJob = errors.New("docker: unknown job")

// Options configures a Runtime. The zero value works.
type Options struct {
	// WorkDir is the parent of the per-job temporary directories; empty means os.TempDir().
	// The directories are bind-mounted, so the path must mean the same on the engine's host
	// (matters when the executor itself runs in a container).
	WorkDir string
	// ExecutorID is the value of the horde.executor label and of each job directory's owner
	// marker; empty means "horde-executor". Sweep removes whatever carries it, so two live
	// runtimes on one engine or WorkDir must not share it.
	ExecutorID string
	// Logger receives one line per container event; nil discards.
	Logger *slog.Logger
	// Registries holds pull credentials by registry host ("docker.io", "ghcr.io",
	// "127.0.0.1:5000"); "index.docker.io" and "registry-1.docker.io" mean "docker.io".
	Registries map[string]RegistryAuth
	// PullTimeout bounds one image pull; zero means DefaultPullTimeout.
	PullTimeout time.Duration
	// MaxImageBytes bounds the size of a pulled image (the layers' download sizes while
	// pulling, the unpacked size afterwards); zero means no bound.
	MaxImageBytes int64
	// MaxLogBytes bounds what the engine keeps of a job's stdout and stderr (two json-file
	// files of half the size each, JSON framing included); zero means DefaultMaxLogBytes.
	// Beyond it the oldest output is dropped, so stdout.txt and stderr.txt then hold only the
	// most recent output.
	MaxLogBytes int64
	// DiskPollInterval is how often the disk watchdog measures a job with Limits.DiskBytes;
	// zero means DefaultDiskPollInterval.
	DiskPollInterval time.Duration
	// ExpiryGrace is added to a job's lifetime before its container and workspace count as
	// abandoned (SweepExpired); zero means DefaultExpiryGrace, and more than that is an error.
	ExpiryGrace time.Duration
}

// Runtime implements executor.Runtime on a Docker engine.
type Runtime struct {
	cli        *client.Client
	opts       Options
	log        *slog.Logger
	workDir    string
	registries map[string]RegistryAuth // by canonical host
	// sleep waits between retries; tests replace it (export_test.go).
	sleep func(ctx context.Context, d time.Duration) error

	// noQuota is set once the engine refused a per-container storage quota: its storage
	// driver has none (only overlay2 on xfs with pquota, btrfs, zfs and devicemapper do).
	noQuota atomic.Bool
	// noDiskWatch leaves the disk cap to the check after the job exits; tests set it to
	// exercise that check alone (export_test.go).
	noDiskWatch bool

	mu   sync.Mutex
	jobs map[string]*job // by runtime ID
	info *system.Info    // cached engine Info, for CheckSecurity
}

var _ executor.Runtime = (*Runtime)(nil)

type job struct {
	id          string
	ws          executor.Workspace
	containerID string
	started     time.Time
	timeout     time.Duration
	diskBytes   int64
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
	rt, err := NewWithClient(cli, opts)
	if err != nil {
		cli.Close()
		return nil, err
	}
	return rt, nil
}

// NewWithClient wraps an existing client (e.g. one made with client.WithHost), which the
// Runtime then owns and closes; on error the client stays the caller's. It checks opts and does
// not contact the engine.
func NewWithClient(cli *client.Client, opts Options) (*Runtime, error) {
	if opts.ExecutorID == "" {
		opts.ExecutorID = "horde-executor"
	}
	for name, v := range map[string]int64{
		"PullTimeout": int64(opts.PullTimeout), "MaxImageBytes": opts.MaxImageBytes,
		"MaxLogBytes": opts.MaxLogBytes, "DiskPollInterval": int64(opts.DiskPollInterval),
		"ExpiryGrace": int64(opts.ExpiryGrace),
	} {
		if v < 0 {
			return nil, fmt.Errorf("docker: Options.%s is negative (%d); use zero for the default", name, v)
		}
	}
	if opts.PullTimeout == 0 {
		opts.PullTimeout = DefaultPullTimeout
	}
	if opts.MaxLogBytes == 0 {
		opts.MaxLogBytes = DefaultMaxLogBytes
	}
	if opts.DiskPollInterval == 0 {
		opts.DiskPollInterval = DefaultDiskPollInterval
	}
	if opts.ExpiryGrace == 0 {
		opts.ExpiryGrace = DefaultExpiryGrace
	}
	if opts.ExpiryGrace > DefaultExpiryGrace {
		return nil, fmt.Errorf("docker: Options.ExpiryGrace %v is more than %v: leftovers of killed executors would linger", opts.ExpiryGrace, DefaultExpiryGrace)
	}
	registries, err := canonicalRegistries(opts.Registries)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	workDir := opts.WorkDir
	if workDir == "" {
		workDir = os.TempDir()
	}
	return &Runtime{
		cli: cli, opts: opts, log: log, workDir: workDir, registries: registries,
		sleep: clock.Sleep, jobs: map[string]*job{},
	}, nil
}

// Client returns the engine client, for tests and tools that need raw calls.
func (r *Runtime) Client() *client.Client { return r.cli }

var validID = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// Prepare implements executor.Runtime. The workspace holds volume/, output/ and artifacts/
// (mode 0777, so a job running as any user can use them) and an owner marker naming
// Options.ExecutorID and the workspace's deadline, which Sweep and SweepExpired read.
func (r *Runtime) Prepare(ctx context.Context, id string, lifetime time.Duration) (executor.Workspace, error) {
	if !validID.MatchString(id) {
		return executor.Workspace{}, fmt.Errorf("docker: runtime ID %q must be 1-128 characters of [a-zA-Z0-9_.-], starting with a letter or digit", id)
	}
	r.mu.Lock()
	_, dup := r.jobs[id]
	r.mu.Unlock()
	if dup {
		return executor.Workspace{}, fmt.Errorf("docker: job %s already prepared", id)
	}
	dir, err := os.MkdirTemp(r.workDir, workspacePrefix)
	if err != nil {
		return executor.Workspace{}, fmt.Errorf("docker: create job directory in %s (check Options.WorkDir): %w", r.workDir, err)
	}
	ws := executor.Workspace{
		Dir:          dir,
		VolumeDir:    filepath.Join(dir, "volume"),
		OutputDir:    filepath.Join(dir, "output"),
		ArtifactsDir: filepath.Join(dir, "artifacts"),
		ScriptPath:   filepath.Join(dir, "script.py"),
	}
	for _, d := range []string{ws.VolumeDir, ws.OutputDir, ws.ArtifactsDir} {
		err := os.Mkdir(d, 0o777)
		if err == nil {
			err = os.Chmod(d, 0o777) // umask would otherwise strip the bits
		}
		if err != nil {
			os.RemoveAll(dir)
			return executor.Workspace{}, fmt.Errorf("docker: create job directory: %w", err)
		}
	}
	r.mu.Lock()
	if _, dup := r.jobs[id]; dup {
		r.mu.Unlock()
		os.RemoveAll(dir)
		return executor.Workspace{}, fmt.Errorf("docker: job %s already prepared", id)
	}
	r.jobs[id] = &job{id: id, ws: ws}
	r.mu.Unlock()
	// The marker comes after the job is held, so a concurrent Sweep that sees it also sees
	// the job as held and leaves the directory alone.
	if err := writeMarker(dir, marker{owner: r.opts.ExecutorID, deadline: r.deadline(time.Now(), lifetime)}); err != nil {
		r.mu.Lock()
		delete(r.jobs, id)
		r.mu.Unlock()
		os.RemoveAll(dir)
		return executor.Workspace{}, fmt.Errorf("docker: job directory %s: %w", dir, err)
	}
	return ws, nil
}

// deadline is when a job started at start with lifetime counts as abandoned; zero (never)
// for a job without a lifetime.
func (r *Runtime) deadline(start time.Time, lifetime time.Duration) time.Time {
	if lifetime <= 0 {
		return time.Time{}
	}
	return start.Add(lifetime + r.opts.ExpiryGrace).UTC()
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
	r.mu.Lock()
	started := j.containerID != ""
	r.mu.Unlock()
	if started {
		return fmt.Errorf("docker: job %s already started", spec.ID)
	}
	// Timeout and lifetime count from here: a slow create or start is the job's time too.
	called := time.Now()
	deadline := r.deadline(called, spec.Lifetime)
	cfg, host, err := r.containerConfig(spec, j.ws, deadline)
	if err != nil {
		return err
	}
	if !deadline.IsZero() {
		// The workspace now lives exactly as long as the container.
		if err := writeMarker(j.ws.Dir, marker{owner: r.opts.ExecutorID, deadline: deadline}); err != nil {
			return fmt.Errorf("docker: job directory %s: %w", j.ws.Dir, err)
		}
	}
	// The create itself is not cancelled: the engine may finish a create whose request was
	// cancelled, and that container would be nobody's (Remove knows only recorded IDs) until
	// the sweep of expired ones. A cancellation is acted on once the create has answered.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createTimeout)
	defer cancel()
	created, err := r.cli.ContainerCreate(cctx, cfg, host, nil, nil, ContainerName(spec.ID))
	if err != nil && host.StorageOpt != nil && quotaUnsupported.MatchString(err.Error()) {
		// Without the engine's hard limit the disk watchdog alone holds the cap.
		if !r.noQuota.Swap(true) {
			r.log.Info("the engine's storage driver has no per-container quota; the disk watchdog enforces disk caps", "engine_says", err.Error())
		}
		host.StorageOpt = nil
		created, err = r.cli.ContainerCreate(cctx, cfg, host, nil, nil, ContainerName(spec.ID))
	}
	if err == nil && ctx.Err() != nil {
		_ = r.removeContainer(ctx, created.ID)
		err = ctx.Err()
	}
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
	j.diskBytes = spec.Limits.DiskBytes
	r.mu.Unlock()

	if err := r.cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		// Remove the container now; the workspace stays until Remove.
		r.removeContainer(ctx, created.ID)
		r.mu.Lock()
		j.containerID = ""
		r.mu.Unlock()
		hint := ""
		if spec.GPUs {
			hint = " (the job asks for GPUs: the engine needs the NVIDIA Container Toolkit)"
		}
		return fmt.Errorf("docker: start container for job %s%s: %w", spec.ID, hint, err)
	}
	r.mu.Lock()
	j.started = called
	r.mu.Unlock()
	log.Info("job container started", "image", spec.Image, "timeout", spec.Timeout, "took", time.Since(called).Round(time.Millisecond))
	return nil
}

// containerConfig is the container that Start creates for spec in ws; a non-zero deadline
// goes into LabelDeadline.
func (r *Runtime) containerConfig(spec executor.RunSpec, ws executor.Workspace, deadline time.Time) (*container.Config, *container.HostConfig, error) {
	if spec.Image == "" {
		return nil, nil, errors.New("docker: RunSpec.Image is empty")
	}
	mounts := []mount.Mount{
		{Type: mount.TypeBind, Source: ws.VolumeDir, Target: "/volume", ReadOnly: true},
		{Type: mount.TypeBind, Source: ws.OutputDir, Target: "/output"},
	}
	if spec.ArtifactsMount != "" {
		if err := executor.CheckArtifactsDir(spec.ArtifactsMount); err != nil {
			return nil, nil, fmt.Errorf("docker: job %s: %w", spec.ID, err)
		}
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: ws.ArtifactsDir, Target: spec.ArtifactsMount})
	}
	if spec.Script {
		fi, err := os.Lstat(ws.ScriptPath)
		if err != nil {
			return nil, nil, fmt.Errorf("docker: job %s: RunSpec.Script is set but the script is missing: %w", spec.ID, err)
		}
		if !fi.Mode().IsRegular() {
			return nil, nil, fmt.Errorf("docker: job %s: script %s is not a regular file (%s)", spec.ID, ws.ScriptPath, fi.Mode().Type())
		}
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: ws.ScriptPath, Target: "/script.py", ReadOnly: true})
	}
	res := resources(spec.Limits)
	var storage map[string]string
	if spec.Limits.DiskBytes > 0 && !r.noQuota.Load() {
		// A hard limit on the writable layer where the storage driver has one: past it the
		// job's writes fail (ENOSPC/EDQUOT) instead of waiting for the watchdog's kill.
		storage = map[string]string{"size": strconv.FormatInt(spec.Limits.DiskBytes, 10)}
	}
	if spec.GPUs {
		req := container.DeviceRequest{Driver: "nvidia", Capabilities: [][]string{{"gpu"}}}
		if len(spec.GPUDevices) > 0 {
			// The executor's own GPUs only: other executors on the host use the rest.
			req.DeviceIDs = slices.Clone(spec.GPUDevices)
		} else {
			req.Count = -1 // every GPU: an executor without assigned devices has the host to itself
		}
		res.DeviceRequests = []container.DeviceRequest{req}
	}
	cfg := &container.Config{
		Image:  spec.Image,
		Cmd:    spec.Cmd,
		Env:    spec.Env,
		Labels: r.labels(spec, ws, deadline),
	}
	host := &container.HostConfig{
		NetworkMode: "none",
		SecurityOpt: []string{"no-new-privileges"},
		CapDrop:     []string{"ALL"},
		Mounts:      mounts,
		Resources:   res,
		StorageOpt:  storage,
		// A chatty job must not fill the engine's disk: the engine keeps at most two files of
		// half the cap each and drops the oldest output beyond that.
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{
			"max-size": strconv.FormatInt(max(r.opts.MaxLogBytes/2, 1), 10),
			"max-file": "2",
		}},
	}
	return cfg, host, nil
}

func (r *Runtime) labels(spec executor.RunSpec, ws executor.Workspace, deadline time.Time) map[string]string {
	l := map[string]string{
		LabelJobUUID:   spec.JobUUID,
		LabelExecutor:  r.opts.ExecutorID,
		LabelRuntimeID: spec.ID,
	}
	if !deadline.IsZero() {
		l[LabelDeadline] = deadline.Format(time.RFC3339Nano)
		l[LabelWorkspace] = ws.Dir
	}
	return l
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

// Wait implements executor.Runtime. With Limits.DiskBytes set, a watchdog measures the job's
// disk use while Wait runs and kills the job past the cap (RunResult.DiskExceeded); a last
// measurement after the exit catches a job that wrote too much between two polls.
func (r *Runtime) Wait(ctx context.Context, id string) (executor.RunResult, error) {
	j, err := r.job(id)
	if err != nil {
		return executor.RunResult{}, err
	}
	r.mu.Lock()
	cid, started, timeout, diskBytes := j.containerID, j.started, j.timeout, j.diskBytes
	r.mu.Unlock()
	if cid == "" {
		return executor.RunResult{}, fmt.Errorf("docker: job %s has no running container; call Start first", id)
	}

	waitCtx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		waitCtx, cancel = context.WithDeadline(ctx, started.Add(timeout))
	}
	defer cancel()

	var watch *diskWatch
	if diskBytes > 0 && !r.noDiskWatch {
		watch = r.watchDisk(ctx, j.ws, cid, diskBytes)
		defer watch.stop()
	}

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
		if waitCtx.Err() == nil || !errors.Is(err, context.DeadlineExceeded) {
			if isConnLoss(err) {
				return res, fmt.Errorf("%w while waiting for job %s (container %s; Remove retries until the engine is back): %w",
					ErrEngineConnectionLost, id, shortID(cid), err)
			}
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
	if diskBytes > 0 {
		exceeded := watch != nil && watch.stop()
		if !exceeded {
			// The job may have written past the cap since the last poll and exited. Only what
			// can be counted without the engine's costly SizeRw: the polls asked for it.
			used := dirBytes(j.ws.OutputDir) + dirBytes(j.ws.ArtifactsDir)
			if upper := upperDir(info); upper != "" {
				used += dirBytes(upper)
			}
			if used > diskBytes {
				exceeded = true
				r.log.Warn("job wrote more than its disk limit before exiting", "container", shortID(cid), "used_bytes", used, "limit_bytes", diskBytes)
			}
		}
		res.DiskExceeded = exceeded
	}
	if info.State != nil {
		res.ExitCode = info.State.ExitCode
		res.OOMKilled = info.State.OOMKilled
	}
	if err := r.collectLogs(ctx, cid, j.ws.OutputDir, &res); err != nil {
		return res, fmt.Errorf("docker: logs of job %s: %w", id, err)
	}
	r.log.Info("job container exited", "container", shortID(cid), "exit_code", res.ExitCode,
		"timed_out", res.TimedOut, "oom_killed", res.OOMKilled, "disk_exceeded", res.DiskExceeded, "duration", res.Duration)
	return res, nil
}

// quotaUnsupported matches the engine's refusals of a storage quota ("--storage-opt is not
// supported", "--storage-opt is supported only for overlay over xfs with 'pquota' mount
// option", …).
var quotaUnsupported = regexp.MustCompile(`(?i)storage[- ]?opt|quota`)

// isConnLoss reports whether err says the engine could not be reached or the connection to it
// broke, as opposed to an answer from the engine.
func isConnLoss(err error) bool {
	if client.IsErrConnectionFailed(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op)
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

// Remove implements executor.Runtime. An unreachable engine is retried with backoff for up to
// 30 s, so a briefly restarting engine still gets the container removed.
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
// caller's context has ended), retrying while the engine is unreachable. Already gone is
// success.
func (r *Runtime) removeContainer(ctx context.Context, cid string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	backoff := retryFirst
	for {
		err := r.cli.ContainerRemove(ctx, cid, container.RemoveOptions{Force: true, RemoveVolumes: true})
		switch {
		case err == nil || cerrdefs.IsNotFound(err):
			r.log.Debug("job container removed", "container", shortID(cid))
			return nil
		case cerrdefs.IsConflict(err):
			return nil // "removal already in progress"
		case ctx.Err() != nil || !isConnLoss(err):
			return fmt.Errorf("docker: remove container %s: %w", shortID(cid), err)
		}
		r.log.Warn("engine unreachable; retrying container removal", "container", shortID(cid), "in", backoff, "err", err)
		if r.sleep(ctx, backoff) != nil {
			return fmt.Errorf("docker: remove container %s: engine still unreachable after %v: %w", shortID(cid), cleanupTimeout, err)
		}
		backoff = min(2*backoff, retryMax)
	}
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
