package validator

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/clock"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/wsconn"
)

// The facilitator link (upstream's fv channel, reference/protocol.md §1): the validator
// connects to the facilitator, authenticates by signing its own public key, sends a heartbeat
// every minute, runs the signed V2JobRequests it receives through Route and reports each
// job's statuses in order. Status updates wait in an outbox until the facilitator answers
// them, so those unanswered when a connection drops are sent again after the reconnect.
const (
	facilitatorHeartbeat  = time.Minute
	facilitatorBackoffMin = 2 * time.Second
	facilitatorBackoffMax = 10 * time.Second
	// organicJobWindow is how long a facilitator job may be retried on other miners.
	organicJobWindow = 10 * time.Minute
)

// ErrFacilitatorRefused reports a facilitator that answered the authentication with an
// error (an unknown validator, a bad signature).
var ErrFacilitatorRefused = errors.New("validator: the facilitator refused the authentication")

// facilitatorLink is the state that survives reconnects: the outbox and the running jobs.
type facilitatorLink struct {
	v  *Validator
	mu sync.Mutex
	// outbox holds the status updates not answered yet, in order; sent counts those of
	// them written on the current connection.
	outbox []*protocol.V0JobStatusUpdate
	sent   int
	wake   chan struct{}
	jobs   sync.WaitGroup
}

// RunFacilitatorLink keeps the link to the facilitator at url up until ctx ends,
// reconnecting with backoff; jobs it received are finished (or stopped by ctx) before it
// returns nil.
func (v *Validator) RunFacilitatorLink(ctx context.Context, url string) error {
	l := &facilitatorLink{v: v, wake: make(chan struct{}, 1)}
	defer l.jobs.Wait()
	wait := facilitatorBackoffMin
	for ctx.Err() == nil {
		err := l.connectOnce(ctx, url)
		if ctx.Err() != nil {
			break
		}
		v.log.Warn("facilitator link down; reconnecting", "err", err, "in", wait)
		if clock.Sleep(ctx, wait/2+rand.N(wait/2+1)) != nil {
			break
		}
		wait = min(2*wait, facilitatorBackoffMax)
	}
	return nil
}

func (l *facilitatorLink) connectOnce(ctx context.Context, url string) error {
	v := l.v
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := wsconn.Dial(dialCtx, url)
	cancel()
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	pub := v.cfg.Keypair.Public()
	if err := conn.Send(ctx, &protocol.V0AuthenticationRequest{
		PublicKey: hex.EncodeToString(pub[:]), Signature: v.cfg.Keypair.Sign(pub[:]).Hex(),
	}); err != nil {
		return err
	}
	frame, err := conn.ReadFrame(ctx)
	if err != nil {
		return err
	}
	msg, err := protocol.DecodeFacilitatorToValidator(frame)
	if err != nil {
		return fmt.Errorf("the facilitator's answer to the authentication: %w", err)
	}
	if r, ok := msg.(*protocol.Response); !ok || r.Status != protocol.ResponseStatusSuccess {
		return fmt.Errorf("%w: %s", ErrFacilitatorRefused, frame)
	}
	v.log.Info("facilitator link up", "url", url)

	cctx, stop := context.WithCancel(ctx)
	defer stop()
	l.mu.Lock()
	l.sent = 0 // everything unanswered goes again on this connection
	l.mu.Unlock()
	l.kick()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Go(func() { l.write(cctx, conn) })
	for {
		frame, err := conn.ReadFrame(cctx)
		if err != nil {
			return err
		}
		msg, err := protocol.DecodeFacilitatorToValidator(frame)
		if err != nil {
			v.log.Warn("malformed message from the facilitator", "err", err)
			continue
		}
		switch m := msg.(type) {
		case *protocol.Response:
			l.answered(m)
		case *protocol.V2JobRequest:
			job := *m
			l.jobs.Go(func() { l.runJob(ctx, job) })
		case *protocol.V0JobCheated:
			v.log.Warn("the facilitator reports a cheated job", "job", m.JobUUID, "trusted_job", m.TrustedJobUUID)
		}
	}
}

// write sends heartbeats and the outbox in order until ctx ends.
func (l *facilitatorLink) write(ctx context.Context, conn *wsconn.Conn) {
	beat := time.NewTicker(facilitatorHeartbeat)
	defer beat.Stop()
	for {
		l.mu.Lock()
		var next *protocol.V0JobStatusUpdate
		if l.sent < len(l.outbox) {
			next = l.outbox[l.sent]
		}
		l.mu.Unlock()
		if next != nil {
			if err := conn.Send(ctx, next); err != nil {
				conn.CloseNow() // the reader sees it and the link reconnects
				return
			}
			l.mu.Lock()
			l.sent++
			l.mu.Unlock()
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			if err := conn.Send(ctx, &protocol.V0Heartbeat{}); err != nil {
				conn.CloseNow()
				return
			}
		case <-l.wake:
		}
	}
}

// answered pops the oldest sent status update: the facilitator answers each in order.
func (l *facilitatorLink) answered(r *protocol.Response) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sent == 0 || len(l.outbox) == 0 {
		return
	}
	if r.Status != protocol.ResponseStatusSuccess {
		l.v.log.Info("the facilitator answered a status update with an error", "job", l.outbox[0].UUID,
			"status", l.outbox[0].Status, "errors", fmt.Sprint(r.Errors))
	}
	l.outbox = l.outbox[1:]
	l.sent--
}

func (l *facilitatorLink) report(u *protocol.V0JobStatusUpdate) {
	l.mu.Lock()
	l.outbox = append(l.outbox, u)
	l.mu.Unlock()
	l.kick()
}

func (l *facilitatorLink) kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// runJob checks the job's signature, routes it and reports every status.
func (l *facilitatorLink) runJob(ctx context.Context, spec protocol.V2JobRequest) {
	status := func(s protocol.JobStatus, md *protocol.JobStatusMetadata) {
		l.report(&protocol.V0JobStatusUpdate{UUID: spec.UUID, Status: s, Metadata: md})
	}
	if err := verifyJobSignature(&spec); err != nil {
		l.v.log.Warn("facilitator job with a bad signature rejected", "job", spec.UUID, "err", err)
		status(protocol.JobStatusRejected, &protocol.JobStatusMetadata{JobRejectionDetails: &protocol.JobRejectionDetails{
			RejectedBy: protocol.JobParticipantTypeValidator, Reason: protocol.JobRejectionReasonInvalidSignature, Message: err.Error()}})
		return
	}
	status(protocol.JobStatusReceived, nil)
	res, _, err := l.v.RouteWith(ctx, spec, l.v.cfg.Clock.Now().Add(organicJobWindow), func(s protocol.JobStatus) { status(s, nil) })
	if err != nil {
		status(protocol.JobStatusRejected, &protocol.JobStatusMetadata{JobRejectionDetails: &protocol.JobRejectionDetails{
			RejectedBy: protocol.JobParticipantTypeValidator, Reason: protocol.JobRejectionReasonNoMinerForJob, Message: err.Error()}})
		return
	}
	status(res.Status, resultMetadata(res))
}

// resultMetadata is a terminal status's details. Failures the validator detected itself are
// the horde's and are reported as horde_failed (upstream mislabels them failed).
func resultMetadata(res *JobResult) *protocol.JobStatusMetadata {
	switch res.Status {
	case protocol.JobStatusCompleted:
		return &protocol.JobStatusMetadata{MinerResponse: &protocol.JobResultDetails{DockerProcessStdout: res.Stdout, DockerProcessStderr: res.Stderr}}
	case protocol.JobStatusRejected:
		return &protocol.JobStatusMetadata{JobRejectionDetails: &protocol.JobRejectionDetails{
			RejectedBy: res.ReportedBy, Reason: protocol.JobRejectionReason(res.Reason), Message: res.Message}}
	case protocol.JobStatusFailed:
		return &protocol.JobStatusMetadata{JobFailureDetails: &protocol.JobFailureDetails{
			Reason: protocol.JobFailureReason(res.Reason), Stage: res.Stage, Message: res.Message,
			DockerProcessExitStatus: res.ExitStatus, DockerProcessStdout: new(res.Stdout), DockerProcessStderr: new(res.Stderr)}}
	}
	return &protocol.JobStatusMetadata{HordeFailureDetails: &protocol.HordeFailureDetails{
		ReportedBy: res.ReportedBy, Reason: protocol.HordeFailureReason(res.Reason), Message: res.Message}}
}

// verifyJobSignature checks the facilitator job's signature (scope SignedFields) by its
// signatory.
func verifyJobSignature(spec *protocol.V2JobRequest) error {
	sig := spec.Signature
	if sig == nil || len(sig.Signature) != 64 || sig.Signatory == "" {
		return errors.New("the job carries no signature")
	}
	if sig.SignatureType != "" && !strings.EqualFold(sig.SignatureType, "bittensor") {
		return fmt.Errorf("signature type %q is not bittensor", sig.SignatureType)
	}
	digest, err := spec.SignedPayloadDigest()
	if err != nil {
		return err
	}
	pub, err := keys.ParsePublicKey(sig.Signatory)
	if err != nil {
		return fmt.Errorf("signatory: %w", err)
	}
	var s keys.Signature
	copy(s[:], sig.Signature)
	if !pub.Verify(digest[:], s) {
		return errors.New("the signature does not verify")
	}
	return nil
}
