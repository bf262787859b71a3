package miner

import (
	"context"
	"encoding/json"
	"net"
	"net/http"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/ptr"
)

// serveExecutor handles an executor connecting back with its one-time token.
func (m *Miner) serveExecutor(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	conn, release := m.accept(w, r, "executor")
	if conn == nil {
		return
	}
	defer release()
	ctx := r.Context()

	m.mu.Lock()
	j := m.byToken[token]
	m.mu.Unlock()
	if j == nil {
		_ = conn.Send(ctx, &protocol.GenericError{Details: new("No job waiting for this executor token")})
		_ = conn.Close("unknown token")
		return
	}
	j.mu.Lock()
	ok := !j.claimed && j.status == statusWaitingForExecutor
	if ok {
		j.claimed = true
		j.executor = conn
	}
	j.mu.Unlock()
	if !ok {
		_ = conn.Send(ctx, &protocol.GenericError{Details: new("Job " + j.uuid + " is not waiting for an executor")})
		_ = conn.Close("token already used")
		return
	}
	close(j.connected)
	log := j.validator.log.With("job", j.uuid)
	log.Info("executor connected")

	peerIP := ""
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		peerIP = host
	}
	if err := conn.Send(ctx, j.initial); err != nil {
		log.Warn("cannot send initial job request to executor", "err", err)
	}
	for {
		frame, err := conn.ReadFrame(ctx)
		if err != nil {
			if st := j.getStatus(); st != statusFinished && st != statusFailed {
				if !m.stopping() {
					log.Warn("executor disconnected while the job was active", "err", err)
				}
				m.failJob(context.Background(), j, protocol.HordeFailureReasonExecutorDisconnected,
					"Executor disconnected while job was running")
			}
			return
		}
		msg, err := protocol.DecodeExecutorToMiner(frame)
		if err != nil {
			_ = conn.Send(ctx, &protocol.GenericError{Details: new("Malformed message: " + err.Error())})
			continue
		}
		if done := m.relayExecutorMessage(ctx, j, msg, peerIP); done {
			_ = conn.Close("job done")
			return
		}
	}
}

// relayExecutorMessage updates the job and forwards msg to the validator. It reports whether
// the job reached its end.
func (m *Miner) relayExecutorMessage(ctx context.Context, j *job, msg protocol.Message, peerIP string) bool {
	v := j.validator
	switch msg := msg.(type) {
	case *protocol.V0ExecutorReadyRequest:
		j.setStatus(statusWaitingForPayload)
		m.updateStatus(ctx, j, statusWaitingForPayload, nil)
		v.send(ctx, &protocol.V0ExecutorReadyRequest{JobUUID: j.uuid})
	case *protocol.V0VolumesReadyRequest, *protocol.V0ExecutionDoneRequest, *protocol.V0MachineSpecsRequest:
		v.send(ctx, msg)
	case *protocol.V0StreamingJobReadyRequest:
		fwd := *msg
		fwd.ExecutorToken = nil
		if fwd.IP == nil && peerIP != "" {
			fwd.IP = new(peerIP)
		}
		fwd.MinerSignature = new(m.cfg.Keypair.Sign(fwd.BlobForSigning()).Hex())
		v.send(ctx, &fwd)
	case *protocol.V0JobFinishedRequest:
		m.finish(ctx, j, statusFinished, msg)
		return true
	case *protocol.V0JobFailedRequest:
		m.finish(ctx, j, statusFailed, msg)
		return true
	case *protocol.V0HordeFailedRequest:
		m.finish(ctx, j, statusFailed, msg)
		return true
	case *protocol.GenericError:
		m.finish(ctx, j, statusFailed, &protocol.V0HordeFailedRequest{
			JobUUID: j.uuid, ReportedBy: protocol.JobParticipantTypeExecutor,
			Message: ptr.Deref(msg.Details), Reason: protocol.HordeFailureReasonGenericError,
		})
		return true
	case *protocol.V0ExecutorFailedRequest:
		m.finish(ctx, j, statusFailed, &protocol.V0HordeFailedRequest{
			JobUUID: j.uuid, ReportedBy: protocol.JobParticipantTypeExecutor,
			Message: "Executor failed", Reason: protocol.HordeFailureReasonGenericError,
		})
		return true
	case *protocol.V0StreamingJobNotReadyRequest:
		m.finish(ctx, j, statusFailed, &protocol.V0JobFailedRequest{
			JobUUID: j.uuid, Message: "Streaming job did not become ready",
			Reason: protocol.JobFailureReasonUnknown, Stage: protocol.JobStageStreamingStartup,
		})
		return true
	default:
		v.log.Warn("unexpected executor message", "job", j.uuid, "message", msg.MessageType())
	}
	return false
}

// finish records the job's outcome, forgets it and relays the outcome to the validator.
func (m *Miner) finish(ctx context.Context, j *job, status string, outcome protocol.Message) {
	j.setStatus(status)
	var result json.RawMessage
	if data, err := protocol.Encode(outcome); err == nil {
		result = data
	}
	m.updateStatus(ctx, j, status, result)
	if k, r, msg, ok := outcomeFailure(outcome); ok {
		m.noteFailure(JobEvent{JobUUID: j.uuid, Validator: j.validator.hotkey, Class: j.class, Kind: k, Reason: r, Message: msg})
	}
	m.forget(j)
	j.validator.log.Info("job ended", "job", j.uuid, "outcome", outcome.MessageType())
	j.validator.send(ctx, outcome)
}
