package validator

import (
	"context"
	"time"

	"github.com/computehorde/horde/internal/protocol"
)

// drive runs the job on the authenticated connection: reserve an executor, wait for it, send
// the job and follow its stages to the outcome.
func (d *driver) drive(ctx context.Context) *JobResult {
	timing := &protocol.ExecutorTiming{
		AllowedLeeway:           int(d.v.cfg.Leeway / time.Second),
		DownloadTimeLimit:       d.spec.DownloadTimeLimit,
		ExecutionTimeLimit:      d.spec.ExecutionTimeLimit,
		UploadTimeLimit:         d.spec.UploadTimeLimit,
		StreamingStartTimeLimit: d.spec.StreamingStartTimeLimit,
	}
	if res := d.reserve(ctx, timing); res != nil {
		return res
	}
	if res := d.awaitExecutor(ctx, timing); res != nil {
		return res
	}
	// One cumulative deadline from here on, as upstream: time left over in a stage carries
	// over to the next. Its base is read before the job is sent, so a miner cannot gain time.
	deadline := d.v.cfg.Clock.Now().Add(d.v.cfg.Leeway)
	if res := d.send(ctx, d.jobRequest()); res != nil {
		return res
	}
	return d.followStages(ctx, deadline)
}

// send sends msg; a failure to send fails the job.
func (d *driver) send(ctx context.Context, msg protocol.Message) *JobResult {
	if err := d.conn.Send(ctx, msg); err != nil {
		return hordeFailure(protocol.HordeFailureReasonMinerConnectionFailed, err.Error())
	}
	return nil
}

// reserve sends the initial request with its signed JobStarted receipt and waits for the
// miner to accept. From the request on, a JobFinished receipt is owed whatever the outcome.
func (d *driver) reserve(ctx context.Context, timing *protocol.ExecutorTiming) *JobResult {
	v, spec := d.v, &d.spec
	now := v.cfg.Clock.Now()
	started := protocol.JobStartedReceiptPayload{
		JobUUID: spec.UUID, MinerHotkey: d.miner, ValidatorHotkey: v.hotkey,
		Timestamp: protocol.NewTimestamp(now), ExecutorClass: spec.ExecutorClass, IsOrganic: true,
		TTL: ceilSecs(v.cfg.ReservationTimeLimit),
	}
	res := d.send(ctx, &protocol.V0InitialJobRequest{
		JobUUID: spec.UUID, ExecutorClass: spec.ExecutorClass, DockerImage: new(spec.DockerImage),
		Volume: spec.Volume, JobStartedReceiptPayload: started,
		JobStartedReceiptSignature: v.cfg.Keypair.Sign(started.BlobForSigning()).Hex(),
		ExecutorTiming:             timing,
		TimeoutSeconds:             new(legacyTotalJobTimeout),
	})
	if res != nil {
		return res
	}
	d.initialSent = true
	res = awaitReply[*protocol.V0AcceptJobRequest](ctx, d, now.Add(v.cfg.ReservationTimeLimit),
		protocol.HordeFailureReasonInitialResponseTimedOut, "an accept or decline", "instead of accepting or declining")
	if res != nil {
		return res
	}
	d.setStatus(ctx, protocol.JobStatusAccepted)
	return nil
}

// awaitExecutor sends the signed JobAccepted receipt and waits for the executor to be ready:
// the class's spin-up time and the startup limit.
func (d *driver) awaitExecutor(ctx context.Context, timing *protocol.ExecutorTiming) *JobResult {
	v := d.v
	readiness := d.class.SpinUp + v.cfg.ExecutorStartupTimeLimit
	acceptedAt := v.cfg.Clock.Now()
	acc := protocol.JobAcceptedReceiptPayload{
		JobUUID: d.spec.UUID, MinerHotkey: d.miner, ValidatorHotkey: v.hotkey,
		Timestamp: protocol.NewTimestamp(acceptedAt), TimeAccepted: protocol.NewTimestamp(acceptedAt),
		TTL: ceilSecs(readiness) + timing.Total(),
	}
	if res := d.send(ctx, &protocol.V0JobAcceptedReceiptRequest{Payload: acc, Signature: v.cfg.Keypair.Sign(acc.BlobForSigning()).Hex()}); res != nil {
		return res
	}
	res := awaitReply[*protocol.V0ExecutorReadyRequest](ctx, d, acceptedAt.Add(readiness),
		protocol.HordeFailureReasonExecutorReadinessResponseTimedOut, "executor ready", "before the executor was ready")
	if res != nil {
		return res
	}
	d.setStatus(ctx, protocol.JobStatusExecutorReady)
	return nil
}

// awaitReply waits until deadline for the miner's next message about the job, which must be a T
// (what names it in a timeout). A message that ends the job ends it; any other is a protocol
// failure, described as sent otherwise.
func awaitReply[T protocol.Message](ctx context.Context, d *driver, deadline time.Time, onTimeout protocol.HordeFailureReason, what, otherwise string) *JobResult {
	msg, fail := d.await(ctx, deadline, onTimeout, what)
	if fail != nil {
		return fail
	}
	if res, done := failure(msg); done {
		return res
	}
	if _, ok := msg.(T); !ok {
		return hordeFailure(protocol.HordeFailureReasonGenericError, "miner sent "+msg.MessageType()+" "+otherwise)
	}
	return nil
}

// jobRequest is the job as the executor runs it. The class decides the GPU preset, as
// upstream's validator does; the volume went with the initial request.
func (d *driver) jobRequest() *protocol.V0JobRequest {
	spec := &d.spec
	preset := protocol.DockerRunOptionsPresetNone
	if d.class.HasGPU {
		preset = protocol.DockerRunOptionsPresetNvidiaAll
	}
	req := &protocol.V0JobRequest{
		JobUUID: spec.UUID, ExecutorClass: spec.ExecutorClass, DockerImage: spec.DockerImage,
		DockerRunOptionsPreset: preset, DockerRunCmd: spec.Args, Env: spec.Env,
		OutputUpload: spec.OutputUpload, ArtifactsDir: spec.ArtifactsDir,
	}
	if req.DockerRunCmd == nil {
		req.DockerRunCmd = []string{}
	}
	return req
}

// stage is one of a job's stages after the job request, in the order they end.
type stage int

const (
	stageVolumes stage = iota
	stageExecution
	stageUpload
	numStages
)

// stages holds, per stage, the message the miner ends it with, the failure when that does not
// come in time, and the job's status after it (none after the last: the job is complete).
var stages = [numStages]struct {
	ends    protocol.Message
	timeout protocol.HordeFailureReason
	status  protocol.JobStatus
}{
	stageVolumes:   {&protocol.V0VolumesReadyRequest{}, protocol.HordeFailureReasonVolumesTimedOut, protocol.JobStatusVolumesReady},
	stageExecution: {&protocol.V0ExecutionDoneRequest{}, protocol.HordeFailureReasonExecutionTimedOut, protocol.JobStatusExecutionDone},
	stageUpload:    {&protocol.V0JobFinishedRequest{}, protocol.HordeFailureReasonFinalResponseTimedOut, ""},
}

// budget is the seconds spec allows for stage s.
func (s stage) budget(spec *protocol.V2JobRequest) int {
	return [numStages]int{spec.DownloadTimeLimit, spec.ExecutionTimeLimit, spec.UploadTimeLimit}[s]
}

// stageEnded reports which stage msg ends; ok is false for messages that end none (machine
// specs, streaming, …).
func stageEnded(msg protocol.Message) (s stage, ok bool) {
	for s := range numStages {
		if msg.MessageType() == stages[s].ends.MessageType() {
			return s, true
		}
	}
	return 0, false
}

// followStages waits for each stage to end by the cumulative deadline. Like upstream's
// per-stage futures, a stage message that comes early is kept for its stage, so a
// V0JobFinishedRequest does not complete the job before the volumes-ready and execution-done
// messages have come, and stage messages out of order are not lost.
func (d *driver) followStages(ctx context.Context, deadline time.Time) *JobResult {
	var ended [numStages]protocol.Message
	// While the job executes (from volumes ready to execution done) its work is accounted
	// in intervals; however it ends, the intervals it completed are signed.
	defer func() {
		if d.work.running() {
			d.accountWork(ctx, d.v.cfg.Clock.Now(), false)
		}
	}()
	for s := range numStages {
		deadline = deadline.Add(secs(s.budget(&d.spec)))
		for ended[s] == nil {
			wait := deadline
			if d.work.running() && d.work.boundary().Before(wait) {
				wait = d.work.boundary()
			}
			msg, timedOut, fail := d.awaitUntil(ctx, wait)
			switch {
			case fail != nil:
				return fail
			case timedOut && wait.Before(deadline):
				d.accountWork(ctx, wait, false)
				continue
			case timedOut:
				return hordeFailure(stages[s].timeout, "miner did not send "+stages[s].ends.MessageType()+" in time")
			}
			if res, done := failure(msg); done {
				if res.Status == protocol.JobStatusFailed && d.work.running() {
					// The job itself failed while it executed (e.g. it exited non-zero): the
					// executor time it used up to now is the user's, accounted like that of a
					// job that ended normally. A horde failure gets its full intervals only.
					now := d.v.cfg.Clock.Now()
					d.executed = now.Sub(d.work.from)
					d.accountWork(ctx, now, true)
				}
				return res
			}
			// A repeated stage message keeps the first.
			if e, ok := stageEnded(msg); ok && ended[e] == nil {
				ended[e] = msg
				switch e {
				case stageVolumes:
					d.work.start(d.v.cfg.Clock.Now())
				case stageExecution:
					if !d.work.running() { // execution done came before volumes ready
						d.work.start(d.v.cfg.Clock.Now())
					}
					d.executed = d.v.cfg.Clock.Now().Sub(d.work.from)
					d.accountWork(ctx, d.v.cfg.Clock.Now(), true)
				}
			}
		}
		if stages[s].status != "" {
			d.setStatus(ctx, stages[s].status)
		}
	}
	fin := ended[stageUpload].(*protocol.V0JobFinishedRequest)
	return &JobResult{Status: protocol.JobStatusCompleted, Stdout: fin.DockerProcessStdout, Stderr: fin.DockerProcessStderr, Executed: d.executed}
}
