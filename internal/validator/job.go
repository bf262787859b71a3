package validator

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/ptr"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/wsconn"
)

// activeStatuses are the statuses a job can still leave (upstream's JobStatus before an end).
var activeStatuses = []string{
	string(protocol.JobStatusSent), string(protocol.JobStatusAccepted), string(protocol.JobStatusExecutorReady),
	string(protocol.JobStatusVolumesReady), string(protocol.JobStatusStreamingReady), string(protocol.JobStatusExecutionDone),
}

// JobResult is a job's outcome as the validator saw it.
type JobResult struct {
	UUID   string
	Status protocol.JobStatus // completed, rejected, failed or horde_failed
	Stdout string
	Stderr string
	// For anything but completed: who reported it, why, and at which stage.
	ReportedBy protocol.JobParticipantType
	Reason     string
	Stage      protocol.JobStage
	Message    string
	ExitStatus *int
	Took       time.Duration
	// Executed is how long the job's container ran (volumes ready to execution done), for
	// jobs that completed.
	Executed time.Duration
}

// Failed reports whether the job did not complete.
func (r *JobResult) Failed() bool { return r.Status != protocol.JobStatusCompleted }

// RunJob runs spec on the miner with the given hotkey and waits for the outcome. spec is
// upstream's job request as a facilitator sends it; an empty UUID means a new random one. The
// miner is chosen by the caller, so OnTrustedMiner routes nothing here, and UseGPU has no
// effect (as upstream: the class decides). An error is returned only when the job could not be
// recorded; every outcome of the job itself, failures included, is in the result.
func (v *Validator) RunJob(ctx context.Context, minerHotkey string, spec protocol.V2JobRequest) (*JobResult, error) {
	return v.runJob(ctx, minerHotkey, "", spec, Observer{})
}

// runJob is RunJob on the miner at base (ws://host:port) when base is set, else where the
// metagraph says the miner serves.
func (v *Validator) runJob(ctx context.Context, minerHotkey, base string, spec protocol.V2JobRequest, obs Observer) (*JobResult, error) {
	if spec.UUID == "" {
		spec.UUID = uuid.NewString()
	}
	cls, err := v.cfg.Classes.Lookup(spec.ExecutorClass)
	if err != nil {
		return nil, fmt.Errorf("validator: job %s: %w", spec.UUID, err)
	}
	if spec.StreamingDetails != nil {
		return nil, fmt.Errorf("validator: job %s: streaming jobs are not supported yet; send it without streaming_details", spec.UUID)
	}
	start := v.cfg.Clock.Now()
	log := v.log.With("job", spec.UUID, "miner", minerHotkey[:min(10, len(minerHotkey))])
	// Stored as upstream's JSON, the format the miner stores its jobs in too.
	specJSON, err := protocol.Encode(&spec)
	if err != nil {
		return nil, fmt.Errorf("validator: job %s: encode spec: %w", spec.UUID, err)
	}
	if err := v.cfg.Store.CreateJob(ctx, store.Job{
		UUID: spec.UUID, Role: store.RoleValidator, ValidatorHotkey: v.hotkey, MinerHotkey: minerHotkey,
		ExecutorClass: string(spec.ExecutorClass), DockerImage: spec.DockerImage,
		Status: string(protocol.JobStatusSent), Spec: specJSON, CreatedAt: start, UpdatedAt: start,
	}); err != nil {
		return nil, fmt.Errorf("validator: record job %s: %w", spec.UUID, err)
	}

	log.Info("job sent", "class", spec.ExecutorClass, "image", spec.DockerImage)
	v.countInFlight(minerHotkey, spec.ExecutorClass, 1)
	defer v.countInFlight(minerHotkey, spec.ExecutorClass, -1)
	d := &driver{v: v, spec: spec, miner: minerHotkey, log: log, class: cls, started: start, base: base, obs: obs}
	res := d.run(ctx)
	res.UUID = spec.UUID
	res.Took = v.cfg.Clock.Now().Sub(start)
	resJSON, err := json.Marshal(res)
	if err != nil {
		return res, fmt.Errorf("validator: record outcome of job %s: encode result: %w", spec.UUID, err)
	}
	if err := v.cfg.Store.UpdateJobStatus(context.WithoutCancel(ctx), spec.UUID, activeStatuses, string(res.Status), resJSON); err != nil {
		return res, fmt.Errorf("validator: record outcome of job %s: %w", spec.UUID, err)
	}
	log.Info("job ended", "status", res.Status, "reason", res.Reason, "took", res.Took.Round(time.Millisecond))
	return res, nil
}

// driver holds one job's connection and progress.
type driver struct {
	v     *Validator
	spec  protocol.V2JobRequest
	miner string
	log   *slog.Logger
	class hwclass.Class
	// started is when the job began, before connecting: the JobFinished receipt's
	// time_started, from which upstream measures time_took_us.
	started time.Time

	conn        *wsconn.Conn
	msgs        chan protocol.Message // closed by readLoop after it has set readErr
	readErr     chan error            // buffered; readLoop sends exactly one error before closing msgs
	initialSent bool                  // a JobFinished receipt is owed from here on, whatever the outcome
	work        workAccount           // the job's execution, accounted in intervals
	executed    time.Duration         // how long the container ran, once execution is done
	base        string                // the miner's ws:// base when not from the metagraph (the trusted miner)
	obs         Observer              // told each intermediate status and signed interval (the facilitator relays them)
}

func hordeFailure(reason protocol.HordeFailureReason, msg string) *JobResult {
	return &JobResult{
		Status: protocol.JobStatusHordeFailed, ReportedBy: protocol.JobParticipantTypeValidator,
		Reason: string(reason), Message: msg,
	}
}

func (d *driver) run(ctx context.Context) *JobResult {
	base := d.base
	if base == "" {
		mc := d.v.cfg.Metagraph
		if mc.Latest() == nil {
			// Only before the cache's first refresh: afterwards it serves its last good metagraph.
			msg := "cannot read metagraph: the validator has not read the chain yet; retry once it has"
			if err := mc.Status().LastError; err != nil {
				msg += " (" + err.Error() + ")"
			}
			return hordeFailure(protocol.HordeFailureReasonMinerConnectionFailed, msg)
		}
		n, ok := mc.Neuron(chain.Hotkey(d.miner))
		if !ok {
			return hordeFailure(protocol.HordeFailureReasonMinerConnectionFailed, "miner is not registered on the subnet")
		}
		var err error
		if base, err = minerURL(n); err != nil {
			return hordeFailure(protocol.HordeFailureReasonMinerConnectionFailed, err.Error())
		}
	}
	var err error
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	d.conn, err = wsconn.Dial(dialCtx, base+"/v0.1/validator_interface/"+d.v.hotkey)
	cancel()
	if err != nil {
		return hordeFailure(protocol.HordeFailureReasonMinerConnectionFailed, err.Error())
	}
	readCtx, stopReading := context.WithCancel(ctx)
	d.msgs = make(chan protocol.Message, 16)
	d.readErr = make(chan error, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		d.readLoop(readCtx)
	}()
	// The reader must be gone before RunJob returns: it logs and writes to the connection.
	// Deferred calls run last-in first-out: stop the reader, drop the connection, wait.
	defer func() { <-readDone }()
	defer d.conn.CloseNow()
	defer stopReading()

	now := d.v.cfg.Clock.Now()
	auth := &protocol.ValidatorAuthForMiner{ValidatorHotkey: d.v.hotkey, MinerHotkey: d.miner, Timestamp: now.Unix()}
	auth.Signature = d.v.cfg.Keypair.Sign(auth.BlobForSigning()).Hex()
	if res := d.send(ctx, auth); res != nil {
		return res
	}
	// The values the miner judges its classes' profitability by (extension; an upstream
	// miner ignores it).
	if res := d.send(ctx, d.v.ClassValues()); res != nil {
		return res
	}
	res := d.drive(ctx)
	d.sendFinishedReceipt(ctx, res)
	_ = d.conn.Close("job done")
	return res
}

func (d *driver) readLoop(ctx context.Context) {
	var readErr error
	defer func() {
		// await reads readErr once msgs is closed, so it must be set on every way out.
		d.readErr <- readErr
		close(d.msgs)
	}()
	for {
		frame, err := d.conn.ReadFrame(ctx)
		if err != nil {
			readErr = err
			return
		}
		msg, err := protocol.DecodeMinerToValidator(frame)
		if err != nil {
			d.log.Warn("malformed message from miner", "err", err)
			_ = d.conn.Send(ctx, &protocol.GenericError{Details: new("Malformed message: " + err.Error())})
			continue
		}
		select {
		case d.msgs <- msg:
		case <-ctx.Done():
			readErr = ctx.Err()
			return
		}
	}
}

// await returns the next message about this job, or a horde failure on timeout or a dropped
// connection. Manifests, errors and other jobs' messages are logged and skipped.
func (d *driver) await(ctx context.Context, deadline time.Time, onTimeout protocol.HordeFailureReason, what string) (protocol.Message, *JobResult) {
	msg, timedOut, fail := d.awaitUntil(ctx, deadline)
	if timedOut {
		return nil, hordeFailure(onTimeout, "miner did not send "+what+" in time")
	}
	return msg, fail
}

// awaitUntil is await that reports reaching deadline as timedOut instead of failing, for
// waits that end at a point in time (a work interval's end) rather than at a limit.
func (d *driver) awaitUntil(ctx context.Context, deadline time.Time) (_ protocol.Message, timedOut bool, _ *JobResult) {
	// The deadline comes from the injected clock, so the wait must too: time.Until would mix
	// the real clock in and fire at once (or never) under a clock that is not the real one.
	timeout := d.v.cfg.Clock.After(deadline.Sub(d.v.cfg.Clock.Now()))
	for {
		select {
		case <-ctx.Done():
			return nil, false, hordeFailure(protocol.HordeFailureReasonUnhandledException, "validator stopped: "+ctx.Err().Error())
		case <-timeout:
			return nil, true, nil
		case msg, ok := <-d.msgs:
			if !ok {
				err := <-d.readErr
				if ctx.Err() != nil { // the reader stopped because the validator did
					return nil, false, hordeFailure(protocol.HordeFailureReasonUnhandledException, "validator stopped: "+ctx.Err().Error())
				}
				return nil, false, hordeFailure(protocol.HordeFailureReasonMinerConnectionFailed, "connection to miner lost: "+err.Error())
			}
			switch m := msg.(type) {
			case *protocol.V0ExecutorManifestRequest:
				if d.v.manifests.announce(d.miner, m.Manifest, d.v.cfg.Clock.Now()) {
					d.log.Info("manifest change ignored: the miner changed its manifest less than 2 hours ago", "announced", m.Manifest)
				}
				continue
			case *protocol.V0MainHotkeyMessage:
				continue
			case *protocol.GenericError:
				d.log.Warn("miner reported an error", "details", ptr.Deref(m.Details))
				continue
			case *protocol.UnauthorizedError:
				return nil, false, hordeFailure(protocol.HordeFailureReasonMinerConnectionFailed, "miner refused the validator: "+string(m.Code))
			}
			if id, _ := protocol.JobUUIDOf(msg); id != d.spec.UUID {
				d.log.Warn("message for another job ignored", "message", msg.MessageType(), "job_uuid", id)
				continue
			}
			if dec, ok := msg.(*protocol.V0DeclineJobRequest); ok {
				d.v.judgeDecline(d.miner, d.spec.ExecutorClass, dec, d.v.inFlight(d.miner, d.spec.ExecutorClass)-1)
			}
			return msg, false, nil
		}
	}
}

// failure converts a miner message that ends the job unsuccessfully into a result; ok is false
// for other messages. These end the job at any stage, as upstream fails every pending wait
// with them. V0JobFinishedRequest is not among them: it completes the job only once the
// stages before it are done (see drive).
func failure(msg protocol.Message) (*JobResult, bool) {
	switch m := msg.(type) {
	case *protocol.V0DeclineJobRequest:
		return &JobResult{Status: protocol.JobStatusRejected, ReportedBy: protocol.JobParticipantTypeMiner,
			Reason: string(m.Reason), Message: m.Message}, true
	case *protocol.V0JobFailedRequest:
		return &JobResult{Status: protocol.JobStatusFailed, ReportedBy: protocol.JobParticipantTypeExecutor,
			Reason: string(m.Reason), Stage: m.Stage, Message: m.Message, ExitStatus: m.DockerProcessExitStatus,
			Stdout: ptr.Deref(m.DockerProcessStdout), Stderr: ptr.Deref(m.DockerProcessStderr)}, true
	case *protocol.V0HordeFailedRequest:
		return &JobResult{Status: protocol.JobStatusHordeFailed, ReportedBy: m.ReportedBy,
			Reason: string(m.Reason), Message: m.Message}, true
	// The deprecated executor failures, read as upstream miners convert them before relaying.
	case *protocol.V0ExecutorFailedRequest:
		return &JobResult{Status: protocol.JobStatusHordeFailed, ReportedBy: protocol.JobParticipantTypeExecutor,
			Reason: string(protocol.HordeFailureReasonGenericError), Message: "executor failed (legacy V0ExecutorFailedRequest)"}, true
	case *protocol.V0StreamingJobNotReadyRequest:
		return &JobResult{Status: protocol.JobStatusFailed, ReportedBy: protocol.JobParticipantTypeExecutor,
			Reason: string(protocol.JobFailureReasonUnknown), Stage: protocol.JobStageStreamingStartup,
			Message: "streaming job not ready (legacy V0StreamingJobNotReadyRequest)"}, true
	}
	return nil, false
}

func (d *driver) setStatus(ctx context.Context, s protocol.JobStatus) {
	// One line per stage, so an operator can follow a job (and see where it stopped).
	d.log.Info("job "+string(s), "after", d.v.cfg.Clock.Now().Sub(d.started).Round(time.Millisecond))
	if err := d.v.cfg.Store.UpdateJobStatus(ctx, d.spec.UUID, activeStatuses, string(s), nil); err != nil {
		d.log.Warn("cannot record job status", "status", s, "err", err)
	}
	if d.obs.Status != nil {
		d.obs.Status(s)
	}
}

// sendFinishedReceipt closes the job's receipts: score = paid executor seconds on success,
// zero otherwise, as upstream does for every job past the initial request.
func (d *driver) sendFinishedReceipt(ctx context.Context, res *JobResult) {
	if !d.initialSent {
		return
	}
	score := 0.0
	if res.Status == protocol.JobStatusCompleted {
		score = float64(paidSeconds(&d.spec))
	}
	now := d.v.cfg.Clock.Now()
	p := protocol.JobFinishedReceiptPayload{
		JobUUID: d.spec.UUID, MinerHotkey: d.miner, ValidatorHotkey: d.v.hotkey,
		Timestamp: protocol.NewTimestamp(now), TimeStarted: protocol.NewTimestamp(d.started),
		TimeTookUS: now.Sub(d.started).Microseconds(), ScoreStr: protocol.FormatScore(score),
		BlockNumbers: []int{},
	}
	err := d.conn.Send(ctx, &protocol.V0JobFinishedReceiptRequest{Payload: p, Signature: d.v.cfg.Keypair.Sign(p.BlobForSigning()).Hex()})
	if err != nil && ctx.Err() == nil {
		d.log.Warn("cannot send job finished receipt", "err", err)
	}
}

// paidSeconds is what a job is worth: the executor seconds of its download, execution and
// upload limits, as upstream's routing counts them. Unlike ExecutorTiming.Total it leaves out
// the leeway and the streaming start, which are not paid.
func paidSeconds(spec *protocol.V2JobRequest) int {
	return spec.DownloadTimeLimit + spec.ExecutionTimeLimit + spec.UploadTimeLimit
}

// legacyTotalJobTimeout is the deprecated single timeout_seconds upstream validators still
// send with every initial request (OrganicJobDetails.total_job_timeout). Executors use it only
// when executor_timing is absent.
const legacyTotalJobTimeout = 300

// ceilSecs converts a limit to whole seconds for a receipt ttl, rounding up so that a
// sub-second limit does not make a receipt that has expired when it is issued.
func ceilSecs(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }
