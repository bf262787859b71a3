package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/computehorde/horde/internal/executor/upload"
	"github.com/computehorde/horde/internal/executor/volume"
	"github.com/computehorde/horde/internal/gpu"
	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/ptr"
)

// jobError is a failure the job caused; it becomes V0JobFailedRequest.
type jobError struct {
	reason  protocol.JobFailureReason
	message string
}

func (e *jobError) Error() string { return fmt.Sprintf("job failed (%s): %s", e.reason, e.message) }

func jobFailed(reason protocol.JobFailureReason, format string, args ...any) error {
	return &jobError{reason: reason, message: fmt.Sprintf(format, args...)}
}

// invalidJob is the failure of a request field no executor runs (a *RequestError, or several
// joined): the job's, never the miner's. An image that cannot be named is a download failure,
// as one that cannot be pulled is; the rest have no reason of their own in upstream's enum.
func invalidJob(err error) error {
	reason := protocol.JobFailureReasonUnknown
	if re, ok := errors.AsType[*RequestError](err); ok && re.Field == "docker_image" {
		reason = protocol.JobFailureReasonDownloadFailed
	}
	return jobFailed(reason, "Invalid job request: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
}

// hordeError is a failure of the infrastructure; it becomes V0HordeFailedRequest.
type hordeError struct {
	reason  protocol.HordeFailureReason
	message string
	context map[string]any
}

func (e *hordeError) Error() string {
	return fmt.Sprintf("horde failure (%s): %s", e.reason, e.message)
}

func hordeFailed(reason protocol.HordeFailureReason, format string, args ...any) error {
	return &hordeError{reason: reason, message: fmt.Sprintf(format, args...)}
}

// SecurityChecker is implemented by runtimes that can tell whether their engine lets a
// container escape (docker.Runtime: CVE-2022-0492). The executor runs it in the startup stage.
type SecurityChecker interface {
	CheckSecurity(ctx context.Context) error
}

// driver runs the stages of one job.
type driver struct {
	cfg   Config
	log   *slog.Logger
	conn  *minerConn
	clock Clock

	jobUUID  string // from the token until the initial request names it
	stage    protocol.JobStage
	deadline time.Time

	initial *protocol.V0InitialJobRequest
	request *protocol.V0JobRequest
	class   hwclass.Class
	ensured string     // the image EnsureImage made present at startup
	ws      *Workspace // set once Prepare succeeded
	result  *RunResult // set once the container ran
	diskCap int64      // the job's disk cap, once its container is set up
	specs   *specsCollector
}

// runtimeID is the job's key in the Runtime and its container name suffix: the job UUID part of
// the token plus a digest of the whole token, so the secret itself never reaches the engine.
func runtimeID(token string) string {
	sum := sha256.Sum256([]byte(token))
	prefix := tokenPrefix(token)
	clean := make([]byte, 0, len(prefix))
	for _, b := range []byte(prefix) {
		if b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_' || b == '.' {
			clean = append(clean, b)
		}
	}
	if len(clean) == 0 {
		return hex.EncodeToString(sum[:8])
	}
	return string(clean) + "-" + hex.EncodeToString(sum[:4])
}

func (d *driver) run(ctx context.Context) error {
	d.specs = collectSpecs(ctx, d.cfg.GPUs, d.cfg.SpecsDisk)
	defer d.specs.stop()
	err := d.stages(ctx)
	if d.ws != nil && d.result != nil && d.cfg.KeepOutput != "" {
		if kerr := keepOutput(*d.ws, d.cfg.KeepOutput, d.diskCap); kerr != nil {
			d.log.Error("could not keep the job's output", "dir", d.cfg.KeepOutput, "err", kerr)
		}
	}
	// Report first, then clean up, as on success: removal can take long (an engine that is
	// away is retried for up to 30 s) and the miner's deadline does not wait for it.
	result := d.finish(ctx, err)
	if d.ws != nil {
		// Remove runs on a fresh bounded context of its own, also after ctx ended.
		if rerr := d.cfg.Runtime.Remove(context.WithoutCancel(ctx), runtimeID(d.cfg.Token)); rerr != nil {
			d.log.Error("job cleanup failed", "err", rerr)
		}
	}
	return result
}

// finish reports the outcome of stages (nothing more to say on success) and returns Run's
// result.
func (d *driver) finish(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		// Stopped from outside: there is nobody to blame; say so to the miner if we can.
		d.log.Warn("executor stopped", "stage", d.stage, "err", err)
		d.report(context.WithoutCancel(ctx), &hordeError{reason: protocol.HordeFailureReasonGenericError,
			message: "Executor was stopped: " + ctx.Err().Error()})
		return ctx.Err()
	}
	if errors.Is(err, errMinerGone) {
		d.log.Error("miner connection lost; the job cannot be reported", "stage", d.stage, "err", err)
		return err
	}
	return d.report(ctx, err)
}

// report sends the terminal failure message for err.
func (d *driver) report(ctx context.Context, err error) error {
	var msg protocol.Message
	var je *jobError
	var he *hordeError
	switch {
	case errors.As(err, &je):
		d.log.Warn("job failed", "stage", d.stage, "reason", je.reason, "message", je.message)
		m := &protocol.V0JobFailedRequest{
			JobUUID: d.jobUUID,
			Message: je.message,
			Reason:  je.reason,
			Stage:   d.stage,
		}
		if d.result != nil {
			if !d.result.TimedOut {
				code := d.result.ExitCode
				m.DockerProcessExitStatus = &code
			}
			stdout, stderr := d.result.Stdout, d.result.Stderr
			m.DockerProcessStdout, m.DockerProcessStderr = &stdout, &stderr
		}
		msg = m
	default:
		if !errors.As(err, &he) {
			he = &hordeError{reason: protocol.HordeFailureReasonUnhandledException, message: err.Error(),
				context: map[string]any{"exception_type": fmt.Sprintf("%T", rootCause(err))}}
		}
		ctxMap := map[string]any{"stage": string(d.stage)}
		for k, v := range he.context {
			ctxMap[k] = v
		}
		d.log.Error("horde failure", "stage", d.stage, "reason", he.reason, "message", he.message)
		msg = &protocol.V0HordeFailedRequest{
			JobUUID:    d.jobUUID,
			ReportedBy: protocol.JobParticipantTypeExecutor,
			Message:    he.message,
			Reason:     he.reason,
			Context:    failureContext(ctxMap),
		}
	}
	if serr := d.conn.send(ctx, msg); serr != nil {
		return fmt.Errorf("executor: report failure (%w): %w", err, serr)
	}
	return nil
}

func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

func (d *driver) enter(stage protocol.JobStage) {
	d.stage = stage
	d.log.Info("entering stage", "stage", stage, "time_left", d.timeLeft().Round(time.Millisecond))
}

func (d *driver) timeLeft() time.Duration {
	if d.deadline.IsZero() {
		return 0
	}
	return d.deadline.Sub(d.clock.Now())
}

func (d *driver) setDeadline(dur time.Duration) { d.deadline = d.clock.Now().Add(dur) }
func (d *driver) extendDeadline(dur time.Duration) {
	d.deadline = d.deadline.Add(dur)
}

// await waits for a value on ch until the deadline (then it returns late), the miner
// leaving, or ctx.
func await[T any](ctx context.Context, d *driver, ch <-chan T, late error) (T, error) {
	var zero T
	select {
	case v := <-ch:
		return v, nil
	default:
	}
	left := d.timeLeft()
	if left <= 0 {
		return zero, late
	}
	select {
	case v := <-ch:
		return v, nil
	case <-d.clock.After(left):
		return zero, late
	case <-d.conn.done:
		return zero, d.conn.gone()
	case err := <-d.conn.malformed:
		return zero, hordeFailed(protocol.HordeFailureReasonGenericError, "Received a %v", err)
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

func (d *driver) stages(ctx context.Context) error {
	// Startup.
	d.setDeadline(d.cfg.StartupTimeLimit)
	d.enter(protocol.JobStageExecutorStartup)
	initial, err := await(ctx, d, d.conn.initial,
		hordeFailed(protocol.HordeFailureReasonGenericError, "Timed out waiting for initial job details"))
	if err != nil {
		return err
	}
	d.initial = initial
	d.jobUUID = initial.JobUUID
	d.log = d.log.With("job_uuid", d.jobUUID)
	if err := CheckTiming(initial.ExecutorTiming, initial.TimeoutSeconds); err != nil {
		return invalidJob(err)
	}
	if err := d.startup(ctx); err != nil {
		return err
	}

	// Reset the deadline: leeway, or the whole job in legacy single-timeout mode.
	timing := d.initial.ExecutorTiming
	switch {
	case timing != nil:
		d.setDeadline(seconds(timing.AllowedLeeway))
	case d.initial.TimeoutSeconds != nil:
		d.setDeadline(seconds(*d.initial.TimeoutSeconds))
	default:
		return hordeFailed(protocol.HordeFailureReasonGenericError,
			"No timing received: either timeout_seconds or executor_timing must be set")
	}

	// Download.
	if timing != nil {
		d.extendDeadline(seconds(timing.DownloadTimeLimit))
	}
	d.enter(protocol.JobStageVolumeDownload)
	if err := d.download(ctx); err != nil {
		return err
	}

	// Execution.
	var execLimit, uploadLimit time.Duration
	if timing != nil {
		execLimit, uploadLimit = seconds(timing.ExecutionTimeLimit), seconds(timing.UploadTimeLimit)
		d.extendDeadline(execLimit)
	}
	d.enter(protocol.JobStageExecution)
	if err := d.execute(ctx, execLimit, uploadLimit); err != nil {
		return err
	}

	// Upload.
	d.extendDeadline(uploadLimit)
	d.enter(protocol.JobStageResultUpload)
	return d.upload(ctx)
}

// timeAfterStartup is the job's time once startup is over: the leeway plus the stages'
// limits, or the legacy single timeout; zero when the request has neither.
func timeAfterStartup(initial *protocol.V0InitialJobRequest) time.Duration {
	if t := initial.ExecutorTiming; t != nil {
		// Each limit is at most MaxTimeLimit (CheckTiming): the sum cannot overflow.
		return seconds(t.AllowedLeeway) + seconds(t.DownloadTimeLimit) + seconds(t.ExecutionTimeLimit) + seconds(t.UploadTimeLimit)
	}
	if initial.TimeoutSeconds != nil {
		return seconds(*initial.TimeoutSeconds)
	}
	return 0
}

// startup checks the host, makes sure the image is there, prepares the workspace and says
// ready, all within the startup deadline.
func (d *driver) startup(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, max(d.timeLeft(), 0))
	defer cancel()
	cls, err := d.cfg.Classes.Lookup(d.initial.ExecutorClass)
	if err != nil {
		return hordeFailed(protocol.HordeFailureReasonGenericError, "This executor cannot run class %s: %v", d.initial.ExecutorClass, err)
	}
	d.class = cls
	if err := d.securityChecks(sctx); err != nil {
		return err
	}
	if img := ptr.Deref(d.initial.DockerImage); img != "" {
		if err := CheckImage("docker_image", img); err != nil {
			return invalidJob(err)
		}
		if err := d.ensureImage(ctx, sctx, withDefaultTag(img)); err != nil {
			return err
		}
		d.ensured = withDefaultTag(img)
	}
	// The workspace is the job's until the end of its last stage at the latest.
	ws, err := d.cfg.Runtime.Prepare(ctx, runtimeID(d.cfg.Token), max(d.timeLeft(), 0)+timeAfterStartup(d.initial))
	if err != nil {
		return hordeFailed(protocol.HordeFailureReasonGenericError, "Could not prepare the job's directories: %v", err)
	}
	d.ws = &ws
	return d.conn.send(ctx, &protocol.V0ExecutorReadyRequest{JobUUID: d.jobUUID})
}

// ensureImage makes ref present within pctx (the stage's time). An image the registry does
// not have or will not hand out is the job's failure; an engine or registry that cannot be
// reached in time is the horde's.
func (d *driver) ensureImage(ctx, pctx context.Context, ref string) error {
	err := d.cfg.Runtime.EnsureImage(pctx, ref)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, ErrBadImage):
		return jobFailed(protocol.JobFailureReasonDownloadFailed, "Image %s cannot be pulled: %v", ref, err)
	case pctx.Err() != nil:
		return hordeFailed(protocol.HordeFailureReasonGenericError, "Timed out waiting for image %s: not ready before the %s deadline: %v", ref, d.stage, err)
	}
	return hordeFailed(protocol.HordeFailureReasonGenericError, "Failed to pull image %s: %v", ref, err)
}

// securityChecks refuses to run on an engine a job could escape from, and, for GPU classes, with
// an NVIDIA Container Toolkit older than gpu.MinToolkitVersion (upstream's two checks).
func (d *driver) securityChecks(ctx context.Context) error {
	if sc, ok := d.cfg.Runtime.(SecurityChecker); ok {
		if err := sc.CheckSecurity(ctx); err != nil {
			return hordeFailed(protocol.HordeFailureReasonSecurityCheckFailed, "Security check failed: %v", err)
		}
	}
	if !d.class.HasGPU {
		return nil
	}
	version, err := d.cfg.GPUs.ToolkitVersion(ctx)
	if err == nil {
		err = gpu.CheckToolkit(version)
	}
	if err != nil {
		return hordeFailed(protocol.HordeFailureReasonSecurityCheckFailed, "Security check failed: NVIDIA Container Toolkit: %v", err)
	}
	return nil
}

func (d *driver) download(ctx context.Context) error {
	req, err := await(ctx, d, d.conn.job, jobFailed(protocol.JobFailureReasonTimeout, "Download time exceeded"))
	if err != nil {
		return err
	}
	d.request = req
	if req.JobUUID != d.jobUUID {
		d.log.Warn("job request names another job; using the initial request's", "request_job_uuid", req.JobUUID)
	}
	if err := CheckJobRequest(req); err != nil {
		return invalidJob(err)
	}
	if d.initial.Volume != nil && req.Volume != nil {
		return hordeFailed(protocol.HordeFailureReasonGenericError, "Received multiple volumes")
	}
	vol := d.initial.Volume
	if vol == nil {
		vol = req.Volume
	}
	if vol != nil {
		if err := d.fetchVolume(ctx, vol); err != nil {
			return err
		}
	}
	if d.timeLeft() <= 0 {
		return jobFailed(protocol.JobFailureReasonTimeout, "Download time exceeded")
	}
	return d.conn.send(ctx, &protocol.V0VolumesReadyRequest{JobUUID: d.jobUUID})
}

// fetchVolume downloads and unpacks vol within the stage deadline. Every failure of the volume
// itself (unreachable, too large, malformed, unsafe) is the job's: download_failed.
func (d *driver) fetchVolume(ctx context.Context, vol *protocol.Volume) error {
	var stats volume.Stats
	start := time.Now()
	err := d.stageIO(ctx, "download", "Download time exceeded", func(ctx context.Context, tmp string) (err error) {
		stats, err = d.cfg.Volumes.Fetch(ctx, vol, d.ws.VolumeDir, tmp)
		return err
	})
	switch {
	case err == nil:
		d.log.Info("volume ready", "type", vol.Type(), "bytes", stats.Bytes, "files", stats.Files, "took", time.Since(start).Round(time.Millisecond))
		return nil
	case ctx.Err() != nil, isFailure(err):
		return err
	case errors.Is(err, volume.ErrTooLarge):
		return jobFailed(protocol.JobFailureReasonDownloadFailed, "Input volume too large: %v", err)
	default:
		return jobFailed(protocol.JobFailureReasonDownloadFailed, "Download failed: %v", err)
	}
}

// stageIO runs step, a transfer on the job's behalf, in a fresh temporary directory of the
// workspace (removed afterwards) and within the stage's time left. What ends it early comes
// back as a failure already: ctx's end as ctx's error, the deadline as a timeout saying late,
// no directory as a horde failure; step's own error comes back for the caller to classify.
func (d *driver) stageIO(ctx context.Context, what, late string, step func(ctx context.Context, tmp string) error) error {
	tmp, err := os.MkdirTemp(d.ws.Dir, what+"-")
	if err != nil {
		return hordeFailed(protocol.HordeFailureReasonGenericError, "Could not create a %s directory: %v", what, err)
	}
	defer os.RemoveAll(tmp)
	sctx, cancel := context.WithTimeout(ctx, max(d.timeLeft(), 0))
	defer cancel()
	err = step(sctx, tmp)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case sctx.Err() != nil:
		return jobFailed(protocol.JobFailureReasonTimeout, "%s: %v", late, err)
	}
	return err
}

// isFailure reports whether err is already a failure to report, not an error still to
// classify.
func isFailure(err error) bool {
	var je *jobError
	var he *hordeError
	return errors.As(err, &je) || errors.As(err, &he)
}

func (d *driver) execute(ctx context.Context, execLimit, uploadLimit time.Duration) error {
	spec, err := d.runSpec(ctx)
	if err != nil {
		return err
	}
	// The container gets the execution limit (legacy mode: whatever is left), never more
	// than the time left in the stage.
	spec.Timeout = d.timeLeft()
	if execLimit > 0 {
		spec.Timeout = min(spec.Timeout, execLimit)
	}
	if spec.Timeout <= 0 {
		return jobFailed(protocol.JobFailureReasonTimeout, "Execution time exceeded")
	}
	if spec.Image != d.ensured {
		// The job request names another image than the initial request's pre-pull hint.
		pctx, cancel := context.WithTimeout(ctx, max(d.timeLeft(), 0))
		err = d.ensureImage(ctx, pctx, spec.Image)
		cancel()
		if err != nil {
			return err
		}
	}
	spec.Lifetime = max(d.timeLeft(), 0) + uploadLimit
	d.diskCap = spec.Limits.DiskBytes

	// Losing the miner stops the job: nobody could be told the result.
	wctx, stop := d.conn.watch(ctx)
	defer stop()
	// The engine gets the stage's time to create and start the container, not more.
	sctx, cancel := context.WithTimeout(wctx, max(d.timeLeft(), 0))
	err = d.cfg.Runtime.Start(sctx, spec)
	cancel()
	if err != nil {
		if gone := d.conn.goneIfDone(); gone != nil {
			return gone
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if sctx.Err() != nil {
			return hordeFailed(protocol.HordeFailureReasonGenericError,
				"The engine did not create and start the job container before the execution deadline (%v): %v", spec.Timeout.Round(time.Millisecond), err)
		}
		return hordeFailed(protocol.HordeFailureReasonGenericError, "Failed to start the job container: %v", err)
	}
	res, err := d.cfg.Runtime.Wait(wctx, spec.ID)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if gone := d.conn.goneIfDone(); gone != nil {
			return gone
		}
		return hordeFailed(protocol.HordeFailureReasonGenericError, "Lost the job container: %v", err)
	}
	d.result = &res
	d.log.Info("job container finished", "exit_code", res.ExitCode, "timed_out", res.TimedOut,
		"oom_killed", res.OOMKilled, "disk_exceeded", res.DiskExceeded, "duration", res.Duration.Round(time.Millisecond))
	switch {
	case res.TimedOut:
		return jobFailed(protocol.JobFailureReasonTimeout, "Job container timed out during execution")
	case res.DiskExceeded:
		return jobFailed(protocol.JobFailureReasonNonzeroReturnCode,
			"Job container was killed: it wrote more than %d bytes to disk (exit code %d)", spec.Limits.DiskBytes, res.ExitCode)
	case res.ExitCode != 0:
		msg := fmt.Sprintf("Job container exited with non-zero exit code: %d", res.ExitCode)
		if res.OOMKilled {
			msg += " (killed: out of memory)"
		}
		return jobFailed(protocol.JobFailureReasonNonzeroReturnCode, "%s", msg)
	}
	return d.conn.send(ctx, &protocol.V0ExecutionDoneRequest{JobUUID: d.jobUUID})
}

// runSpec turns the job request into what the runtime runs: image, command, env, class limits,
// GPUs, the raw script and the artifacts directory.
func (d *driver) runSpec(ctx context.Context) (RunSpec, error) {
	req := d.request
	image := req.DockerImage
	if image == "" {
		image = ptr.Deref(d.initial.DockerImage)
	}
	if image == "" {
		// A given image was checked already: the initial request's by startup, this one's by
		// CheckJobRequest.
		return RunSpec{}, invalidJob(CheckImage("docker_image", image))
	}
	spec := RunSpec{
		ID:      runtimeID(d.cfg.Token),
		JobUUID: d.jobUUID,
		Image:   withDefaultTag(image),
		Cmd:     req.DockerRunCmd,
		Env:     envList(req),
		Limits:  d.class.Limits,
	}
	if d.cfg.MaxDiskBytes > 0 && (spec.Limits.DiskBytes == 0 || spec.Limits.DiskBytes > d.cfg.MaxDiskBytes) {
		spec.Limits.DiskBytes = d.cfg.MaxDiskBytes
	}
	switch req.DockerRunOptionsPreset {
	case "", protocol.DockerRunOptionsPresetNone:
	case protocol.DockerRunOptionsPresetNvidiaAll:
		if !d.class.HasGPU {
			d.log.Warn("nvidia_all asked for on a class without GPUs; running without them", "class", d.class.Name)
			break
		}
		n := d.specs.gpuCount(ctx)
		if n == 0 {
			return RunSpec{}, hordeFailed(protocol.HordeFailureReasonGenericError,
				"Executor class %s needs GPUs, but none were found on this host", d.class.Name)
		}
		if len(d.cfg.GPUDevices) > 0 && n < len(d.cfg.GPUDevices) {
			// Docker would refuse the container anyway; say which setting is wrong.
			return RunSpec{}, hordeFailed(protocol.HordeFailureReasonGenericError,
				"This executor was given GPUs %s, but the host has only %d of them; fix the miner's GPU assignment (executors.gpus)",
				strings.Join(d.cfg.GPUDevices, ","), n)
		}
		spec.GPUs = true
		spec.GPUDevices = slices.Clone(d.cfg.GPUDevices)
	default:
		return RunSpec{}, invalidJob(badField("docker_run_options_preset", "%q is none of %v", req.DockerRunOptionsPreset, protocol.DockerRunOptionsPresetValues()))
	}
	if req.RawScript != nil {
		// Upstream: the script becomes /script.py, run with python unless a command is given.
		if err := os.WriteFile(d.ws.ScriptPath, []byte(*req.RawScript), 0o644); err != nil {
			return RunSpec{}, hordeFailed(protocol.HordeFailureReasonGenericError, "Could not write the raw script: %v", err)
		}
		spec.Script = true
		if len(spec.Cmd) == 0 {
			spec.Cmd = []string{"python", "/script.py"}
		}
	}
	// CheckJobRequest made sure it is a clean absolute path the job may mount.
	spec.ArtifactsMount = ptr.Deref(req.ArtifactsDir)
	return spec, nil
}

func (d *driver) upload(ctx context.Context) error {
	var artifacts *protocol.OrderedMap[string]
	if mount := ptr.Deref(d.request.ArtifactsDir); mount != "" {
		var err error
		if artifacts, err = upload.CollectArtifacts(d.ws.ArtifactsDir, mount, d.log); err != nil {
			return jobFailed(protocol.JobFailureReasonUploadFailed, "Upload failed: artifacts: %v", err)
		}
	}
	var results *protocol.OrderedMap[string]
	if up := d.request.OutputUpload; up != nil {
		start := time.Now()
		err := d.stageIO(ctx, "upload", "Upload time exceeded", func(ctx context.Context, tmp string) (err error) {
			results, err = d.cfg.Uploads.Upload(ctx, up, d.ws.OutputDir, tmp)
			return err
		})
		switch {
		case err == nil:
			d.log.Info("outputs uploaded", "type", up.Type(), "took", time.Since(start).Round(time.Millisecond))
		case ctx.Err() != nil, isFailure(err):
			return err
		default:
			return jobFailed(protocol.JobFailureReasonUploadFailed, "Upload failed: %v", err)
		}
	}
	if d.timeLeft() <= 0 {
		return jobFailed(protocol.JobFailureReasonTimeout, "Upload time exceeded")
	}
	if specs, ok := d.specs.wait(ctx, d.timeLeft()); ok {
		if err := d.conn.send(ctx, &protocol.V0MachineSpecsRequest{JobUUID: d.jobUUID, Specs: protocol.MachineSpecs{Specs: specs.JSON()}}); err != nil {
			return err
		}
	}
	return d.conn.send(ctx, &protocol.V0JobFinishedRequest{
		JobUUID:             d.jobUUID,
		DockerProcessStdout: d.result.Stdout,
		DockerProcessStderr: d.result.Stderr,
		Artifacts:           artifacts,
		UploadResults:       results,
	})
}

// withDefaultTag appends ":latest" to a reference without a tag or digest, like upstream.
func withDefaultTag(ref string) string {
	name := ref[strings.LastIndex(ref, "/")+1:] // a registry port ("host:5000/img") is no tag
	if strings.Contains(ref, "@") || strings.Contains(name, ":") {
		return ref
	}
	return ref + ":latest"
}
