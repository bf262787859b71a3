package miner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/ptr"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/wsconn"
)

// Job statuses as the miner stores them (upstream's AcceptedJob.Status, lowercased).
const (
	statusWaitingForExecutor = "waiting_for_executor"
	statusWaitingForPayload  = "waiting_for_payload"
	statusRunning            = "running"
	statusFinished           = "finished"
	statusFailed             = "failed"
)

var errDuplicateJob = errors.New("job_uuid already used")

var activeStatuses = []string{statusWaitingForExecutor, statusWaitingForPayload, statusRunning}

// job is one accepted job, from the validator's initial request until its outcome is relayed.
type job struct {
	uuid      string
	token     string
	class     protocol.ExecutorClass
	initial   *protocol.V0InitialJobRequest
	validator *validatorSession

	mu       sync.Mutex
	status   string       // guarded by mu
	executor *wsconn.Conn // guarded by mu; set when the executor connects
	claimed  bool         // guarded by mu; the token has been used

	connected chan struct{} // closed when the executor connects
}

func (j *job) setStatus(s string) {
	j.mu.Lock()
	j.status = s
	j.mu.Unlock()
}

func (j *job) getStatus() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.status
}

func (m *Miner) busyCount(class protocol.ExecutorClass) int {
	n := 0
	for _, j := range m.byUUID {
		if j.class == class {
			n++
		}
	}
	return n
}

func (m *Miner) handleInitialJobRequest(ctx context.Context, s *validatorSession, req *protocol.V0InitialJobRequest) {
	log := s.log.With("job", req.JobUUID, "class", req.ExecutorClass)
	decline := func(reason protocol.JobRejectionReason, msg string, excuses []protocol.Receipt) {
		log.Info("declining job", "reason", reason, "message", msg, "excuses", len(excuses))
		m.noteDecline(JobEvent{JobUUID: req.JobUUID, Validator: s.hotkey, Class: req.ExecutorClass, Reason: string(reason), Message: msg})
		s.send(ctx, &protocol.V0DeclineJobRequest{JobUUID: req.JobUUID, Message: msg, Reason: reason, Receipts: excuses})
	}

	// The job UUID becomes part of the executor's token and URL path: only canonical UUIDs.
	if id, err := uuid.Parse(req.JobUUID); err != nil || id.String() != req.JobUUID {
		s.send(ctx, &protocol.GenericError{Details: new("Malformed message: job_uuid must be a lowercase canonical UUID")})
		return
	}
	m.keepStartedReceipt(ctx, s, req, log)

	j := &job{
		uuid:      req.JobUUID,
		token:     req.JobUUID + "-" + uuid.NewString(),
		class:     req.ExecutorClass,
		initial:   req,
		validator: s,
		status:    statusWaitingForExecutor,
		connected: make(chan struct{}),
	}
	switch m.admit(j) {
	case classNotOffered:
		decline(protocol.JobRejectionReasonClassNotOffered,
			fmt.Sprintf("Executor class %s is not in this miner's manifest", req.ExecutorClass), nil)
		return
	case duplicateJob:
		s.send(ctx, duplicateJobError(j.uuid))
		return
	case shuttingDown:
		decline(protocol.JobRejectionReasonBusy, "Miner is shutting down; send the job to another miner",
			m.excuseReceipts(ctx, req.ExecutorClass, req.JobStartedReceiptPayload.Timestamp.Time, req.JobUUID, ""))
		return
	case allBusy:
		// Prove busyness with the receipts of the jobs occupying the executors, checked
		// against the new request's own receipt time, as upstream does.
		decline(protocol.JobRejectionReasonBusy,
			fmt.Sprintf("All executors of class %s are busy", req.ExecutorClass),
			m.excuseReceipts(ctx, req.ExecutorClass, req.JobStartedReceiptPayload.Timestamp.Time, req.JobUUID, ""))
		return
	case overShare:
		// The validator's own running jobs prove it already holds its stake's share.
		decline(protocol.JobRejectionReasonBusy,
			fmt.Sprintf("This validator holds its stake share of class %s while other validators wait for theirs", req.ExecutorClass),
			m.excuseReceipts(ctx, req.ExecutorClass, req.JobStartedReceiptPayload.Timestamp.Time, req.JobUUID, s.hotkey))
		return
	}
	if !m.record(ctx, j, log) {
		return
	}
	log.Info("accepting job")
	s.send(ctx, &protocol.V0AcceptJobRequest{JobUUID: j.uuid})
	m.spawnExecutor(j)
}

// keepStartedReceipt stores the request's JobStarted receipt before any executor is reserved,
// as upstream does, so that a busy decline can later be excused by receipts of jobs that are
// really running. A receipt for another job or class proves nothing about this one and is not
// stored.
func (m *Miner) keepStartedReceipt(ctx context.Context, s *validatorSession, req *protocol.V0InitialJobRequest, log *slog.Logger) {
	if p := req.JobStartedReceiptPayload; p.JobUUID != req.JobUUID || p.ExecutorClass != req.ExecutorClass {
		log.Warn("JobStarted receipt does not match its request; not stored", "receipt_job", p.JobUUID, "receipt_class", p.ExecutorClass)
		return
	}
	m.storeReceipt(ctx, s, &req.JobStartedReceiptPayload, req.JobStartedReceiptSignature)
}

// admission is the miner's answer to an initial job request.
type admission int

const (
	admitted        admission = iota
	classNotOffered           // the class is not in the manifest
	duplicateJob              // a job with that UUID is already running
	allBusy                   // every executor of the class has a job
	overShare                 // the validator holds its stake share while others wait
	shuttingDown              // the miner is draining before it stops
)

// admit registers j as running unless the miner cannot take it.
func (m *Miner) admit(j *job) admission {
	capacity := m.capacity(j.class)
	if capacity == 0 {
		return classNotOffered
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.byUUID[j.uuid]; dup {
		return duplicateJob
	}
	if m.draining.Load() {
		return shuttingDown
	}
	now := time.Now()
	d, err := m.shareDecisionLocked(j.class, capacity, j.validator.hotkey, now)
	switch {
	case err != nil:
		// Bad stakes cannot happen with a sane metagraph; fall back to first come, first
		// served rather than refuse work.
		m.log.Error("cannot share executors by stake; admitting first come, first served", "err", err)
		if m.busyCount(j.class) >= capacity {
			m.noteAskLocked(j.validator.hotkey, j.class, now)
			return allBusy
		}
	case d.Take:
	case d.Free > 0 && d.OverShare:
		m.noteAskLocked(j.validator.hotkey, j.class, now)
		return overShare
	default:
		m.noteAskLocked(j.validator.hotkey, j.class, now)
		return allBusy
	}
	m.byUUID[j.uuid] = j
	m.byToken[j.token] = j
	return admitted
}

// record stores the admitted job before the miner acts on it. When it cannot, the job is
// forgotten, the validator told, and record reports false.
func (m *Miner) record(ctx context.Context, j *job, log *slog.Logger) bool {
	spec, err := protocol.Encode(j.initial)
	if err != nil { // a decoded request always encodes; anything else is a bug worth a failure
		m.forget(j)
		m.failJob(ctx, j, protocol.HordeFailureReasonUnhandledException, "Miner could not encode the job request")
		return false
	}
	now := time.Now()
	err = m.cfg.Store.CreateJob(ctx, store.Job{
		UUID:            j.uuid,
		Role:            store.RoleMiner,
		ValidatorHotkey: j.validator.hotkey,
		MinerHotkey:     m.hotkey,
		ExecutorClass:   string(j.class),
		DockerImage:     ptr.Deref(j.initial.DockerImage),
		Status:          statusWaitingForExecutor,
		Spec:            spec,
		CreatedAt:       now,
		UpdatedAt:       now,
	})
	if err == nil {
		return true
	}
	m.forget(j)
	if errors.Is(err, store.ErrDuplicate) {
		j.validator.send(ctx, duplicateJobError(j.uuid))
		return false
	}
	log.Error("cannot record job", "err", err)
	m.failJob(ctx, j, protocol.HordeFailureReasonGenericError, "Miner could not record the job")
	return false
}

func duplicateJobError(jobUUID string) *protocol.GenericError {
	return &protocol.GenericError{Details: new(errDuplicateJob.Error() + ": " + jobUUID)}
}

// spawnExecutor asks the executor manager for an executor and fails the job if none connects
// in time. It runs in the background so the validator connection keeps being served.
func (m *Miner) spawnExecutor(j *job) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		timeout := m.startTimeout(j.class)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		go func() {
			select {
			case <-m.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := m.cfg.Executors.Start(ctx, ExecutorRequest{Token: j.token, JobUUID: j.uuid, ExecutorClass: j.class})
		if err != nil {
			j.validator.log.Error("executor failed to start", "job", j.uuid, "err", err)
			m.failJob(context.Background(), j, protocol.HordeFailureReasonExecutorSpinupFailed, "Executor failed to start")
			return
		}
		select {
		case <-j.connected:
			return
		case <-ctx.Done():
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && j.getStatus() == statusWaitingForExecutor {
			// An executor that never connected is killed where the manager can, so it does
			// not hold a slot (or a GPU) for nothing.
			if k, ok := m.cfg.Executors.(ExecutorKiller); ok {
				killCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				if err := k.Kill(killCtx, j.uuid); err != nil {
					j.validator.log.Warn("cannot kill the executor that did not connect", "job", j.uuid, "err", err)
				}
				cancel()
			}
			m.failJob(context.Background(), j, protocol.HordeFailureReasonExecutorSpinupFailed,
				fmt.Sprintf("Executor did not connect within %s", timeout))
		}
	}()
}

func (m *Miner) handleJobRequest(ctx context.Context, s *validatorSession, req *protocol.V0JobRequest) {
	m.mu.Lock()
	j := m.byUUID[req.JobUUID]
	m.mu.Unlock()
	if j == nil || j.validator.hotkey != s.hotkey {
		s.send(ctx, &protocol.GenericError{Details: new("Unknown job_uuid: " + req.JobUUID)})
		return
	}
	if req.Volume != nil && j.initial.Volume != nil {
		s.send(ctx, &protocol.GenericError{Details: new("Volume supplied twice for job " + req.JobUUID)})
		return
	}
	j.mu.Lock()
	exe, status := j.executor, j.status
	if status == statusWaitingForPayload {
		j.status = statusRunning
	}
	j.mu.Unlock()
	if status != statusWaitingForPayload || exe == nil {
		s.send(ctx, &protocol.GenericError{Details: new("Job " + req.JobUUID + " is not waiting for a payload")})
		return
	}
	m.updateStatus(ctx, j, statusRunning, nil)
	if err := exe.Send(ctx, req); err != nil {
		s.log.Warn("cannot forward job request to executor", "job", j.uuid, "err", err)
	}
}

// failJob records a horde failure the miner itself detected and tells the validator.
func (m *Miner) failJob(ctx context.Context, j *job, reason protocol.HordeFailureReason, msg string) {
	m.noteFailure(JobEvent{JobUUID: j.uuid, Validator: j.validator.hotkey, Class: j.class, Kind: KindHordeFailed, Reason: string(reason), Message: msg})
	j.setStatus(statusFailed)
	m.updateStatus(ctx, j, statusFailed, nil)
	m.forget(j)
	j.validator.send(ctx, &protocol.V0HordeFailedRequest{
		JobUUID:    j.uuid,
		ReportedBy: protocol.JobParticipantTypeMiner,
		Message:    msg,
		Reason:     reason,
	})
}

func (m *Miner) forget(j *job) {
	m.mu.Lock()
	if m.byUUID[j.uuid] == j {
		delete(m.byUUID, j.uuid)
	}
	delete(m.byToken, j.token)
	m.mu.Unlock()
}

func (m *Miner) updateStatus(ctx context.Context, j *job, to string, result []byte) {
	// One line per stage, so an operator can follow a job (and see where it stopped).
	j.validator.log.Info("job "+to, "job", j.uuid)
	err := m.cfg.Store.UpdateJobStatus(ctx, j.uuid, activeStatuses, to, result)
	if err != nil && !errors.Is(err, store.ErrConflict) {
		j.validator.log.Error("cannot record job status", "job", j.uuid, "status", to, "err", err)
	}
}
