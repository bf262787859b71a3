package miner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/ptr"
	"github.com/computehorde/horde/internal/wsconn"
)

// validatorSession is one authenticated validator connection.
type validatorSession struct {
	hotkey string
	conn   *wsconn.Conn
	log    *slog.Logger
}

// send delivers m to the validator. A validator that went away is logged, not fatal: its jobs
// keep running, as upstream's do.
func (s *validatorSession) send(ctx context.Context, m protocol.Message) {
	if err := s.conn.Send(ctx, m); err != nil {
		s.log.Warn("cannot reach validator", "message", m.MessageType(), "err", err)
	}
}

func (m *Miner) serveValidator(w http.ResponseWriter, r *http.Request) {
	hotkey := r.PathValue("hotkey")
	ip := remoteIP(r)
	freeSlot, overCap := m.limits.acquire(ip)
	if overCap != nil {
		m.refuseOverCap(w, overCap)
		return
	}
	defer freeSlot()
	act := newActivity()
	conn, release := m.acceptValidator(w, r, act)
	if conn == nil {
		return
	}
	defer release()
	ctx := r.Context()
	log := m.log.With("validator", shortKey(hotkey), "remote_ip", ip)

	// Everything before authentication can be caused by anyone who can reach the port, so
	// its logs are rate-limited.
	refuse := func(err error) {
		if m.stopping() {
			return
		}
		m.logNoisy(log, slog.LevelWarn, refusalKind(err), "validator refused", "err", err)
		if errors.Is(err, errPreAuthConn) || errors.Is(err, errAuthTimedOut) {
			return // nothing more can be said on the connection, or it has been said
		}
		_ = conn.Send(ctx, &protocol.GenericError{Details: new(fmt.Sprintf("Validator %s not authenticated due to: %v", hotkey, err))})
		_ = conn.Close("not authenticated")
	}

	if m.cfg.Metagraph.Latest() == nil {
		// Only before the cache's first refresh: afterwards it serves its last good metagraph
		// whatever the chain does.
		log.Error("cannot check validator: no metagraph read from the chain yet", "err", m.cfg.Metagraph.Status().LastError)
		_ = conn.Send(ctx, &protocol.GenericError{Details: new("Miner cannot check validators right now; retry later")})
		_ = conn.Close("chain unavailable")
		return
	}
	if err := m.checkValidator(hotkey); err != nil {
		refuse(err)
		return
	}
	if err := m.awaitAuth(ctx, conn, hotkey); err != nil {
		refuse(err)
		return
	}
	// Only now may frames be as large as the protocol allows.
	conn.SetReadLimit(protocol.MaxFrameSize)
	s := &validatorSession{hotkey: hotkey, conn: conn, log: log}
	log.Info("validator authenticated")
	act.touch()
	idle := m.watchIdle(conn, s, act)
	defer idle.stop()
	defer m.offer.track(s)() // told of manifest changes from now on
	s.send(ctx, m.manifest())
	m.sendOwed(ctx, s)
	for {
		frame, err := conn.ReadFrame(ctx)
		if err != nil {
			if idle.stop() {
				return // the watchdog closed an idle connection and logged it
			}
			if !wsconn.IsClosed(err) && !m.stopping() {
				log.Warn("validator connection failed", "err", err)
			}
			return
		}
		act.touch()
		msg, err := protocol.DecodeValidatorToMiner(frame)
		if err != nil {
			if d := unknownClassDecline(frame, err); d != nil {
				log.Info("declining job of an unknown executor class", "job", d.JobUUID, "err", err)
				s.send(ctx, d)
				continue
			}
			s.send(ctx, &protocol.GenericError{Details: new("Malformed message: " + err.Error())})
			continue
		}
		m.handleValidatorMessage(ctx, s, msg)
	}
}

// Errors of awaitAuth that need no GenericError: the connection failed (or the frame broke
// a limit, which the websocket library has answered with its close frame), or the auth
// timeout has expired and the validator has been told.
var (
	errPreAuthConn  = errors.New("connection failed before auth")
	errAuthTimedOut = errors.New("no auth message received in time")
)

// awaitAuth reads the validator's first frame, which must be a valid ValidatorAuthForMiner
// arriving within ValidatorAuthTimeout and fitting in preAuthReadLimit. Nothing else is read
// or kept before authentication: any other first frame is a refusal.
func (m *Miner) awaitAuth(ctx context.Context, conn *wsconn.Conn, hotkey string) error {
	timeout := m.cfg.ValidatorAuthTimeout
	dog := startWatchdog(timeout, func() time.Duration { return 0 }, func() {
		expireConn(conn, fmt.Sprintf("Validator %s not authenticated due to: no auth message received within %s", hotkey, timeout),
			"auth timeout")
	})
	frame, err := conn.ReadFrame(ctx)
	if dog.stop() {
		return fmt.Errorf("%w (%s)", errAuthTimedOut, timeout)
	}
	switch {
	case errors.Is(err, wsconn.ErrBinaryFrame):
		return fmt.Errorf("%w (got a binary frame)", errAuthNotFirstFrame)
	case errors.Is(err, websocket.ErrMessageTooBig):
		return fmt.Errorf("%w: first frame over the %d-byte limit before auth", errPreAuthConn, preAuthReadLimit)
	case err != nil:
		return fmt.Errorf("%w: %w", errPreAuthConn, err)
	}
	msg, err := protocol.DecodeValidatorToMiner(frame)
	if err != nil {
		return fmt.Errorf("malformed message before auth: %w", err)
	}
	auth, ok := msg.(*protocol.ValidatorAuthForMiner)
	if !ok {
		return fmt.Errorf("%w (got %s)", errAuthNotFirstFrame, msg.MessageType())
	}
	return m.checkAuth(hotkey, auth)
}

// refusalKind names the cause of a refusal for logNoisy, from a fixed set.
func refusalKind(err error) string {
	for _, known := range []error{
		errUnknownValidator, errNoPermit, errLowStake, errAuthStale, errAuthReplayed, errAuthWrongMiner,
		errAuthWrongVal, errAuthBadSignature, errAuthNotFirstFrame, errPreAuthConn, errAuthTimedOut,
	} {
		if errors.Is(err, known) {
			return "validator-refused: " + known.Error()
		}
	}
	return "validator-refused: other"
}

// acceptValidator is accept for the validator endpoint: frames are limited to
// preAuthReadLimit until the caller raises the limit, and pings count as activity.
func (m *Miner) acceptValidator(w http.ResponseWriter, r *http.Request, act *activity) (conn *wsconn.Conn, release func()) {
	conn, err := wsconn.AcceptWith(w, r, wsconn.AcceptOptions{ReadLimit: preAuthReadLimit, OnPing: act.touch})
	if err != nil {
		m.logNoisy(m.log, slog.LevelWarn, "validator-upgrade-failed", "validator websocket upgrade failed", "err", err)
		return nil, nil
	}
	return m.track(conn)
}

// watchIdle closes conn, with a GenericError, once the validator has sent nothing, pings
// included, for ValidatorIdleTimeout while none of the jobs it started on s is in flight.
func (m *Miner) watchIdle(conn *wsconn.Conn, s *validatorSession, act *activity) *watchdog {
	idle := m.cfg.ValidatorIdleTimeout
	return startWatchdog(idle, func() time.Duration {
		if left := idle - act.idleFor(); left > 0 {
			return left
		}
		if m.hasJobsOf(s) {
			return idle // a job in flight keeps its connection, however quiet
		}
		return 0
	}, func() {
		s.log.Info("closing idle validator connection", "idle_timeout", idle)
		expireConn(conn, fmt.Sprintf("Closing the connection: no message from the validator for %s and no job in flight", idle),
			"idle timeout")
	})
}

// hasJobsOf reports whether a job started on s is in flight.
func (m *Miner) hasJobsOf(s *validatorSession) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, j := range m.byUUID {
		if j.validator == s {
			return true
		}
	}
	return false
}

func (m *Miner) handleValidatorMessage(ctx context.Context, s *validatorSession, msg protocol.Message) {
	switch msg := msg.(type) {
	case *protocol.V0InitialJobRequest:
		m.handleInitialJobRequest(ctx, s, msg)
	case *protocol.V0JobRequest:
		m.handleJobRequest(ctx, s, msg)
	case *protocol.V0JobAcceptedReceiptRequest:
		m.storeReceipt(ctx, s, msg.Payload, msg.Signature)
	case *protocol.V0JobFinishedReceiptRequest:
		m.storeReceipt(ctx, s, msg.Payload, msg.Signature)
	case *protocol.V0WorkIntervalReceiptRequest:
		m.storeWorkInterval(ctx, s, msg)
	case *protocol.V0MainHotkeyMessage:
		s.send(ctx, &protocol.V0MainHotkeyMessage{MainHotkey: new(m.hotkey)})
	case *protocol.V0ClassValuesMessage:
		m.offer.classValues(s, msg) // profitability: may change the offered manifest
	case *protocol.ValidatorAuthForMiner:
		s.send(ctx, &protocol.GenericError{Details: new("Already authenticated")})
	case *protocol.GenericError:
		s.log.Warn("validator reported an error", "details", ptr.Deref(msg.Details))
	default:
		s.send(ctx, &protocol.GenericError{Details: new("Unsupported message: " + msg.MessageType())})
	}
}

// unknownClassDecline turns an initial job request that only fails to decode because its
// executor class is one this miner does not know (a class newer than the miner) into a clean
// class_not_offered decline, which carries no penalty; nil for any other decoding error.
func unknownClassDecline(frame []byte, err error) *protocol.V0DeclineJobRequest {
	if !errors.Is(err, protocol.ErrUnknownEnumValue) {
		return nil
	}
	var head struct {
		MessageType   string `json:"message_type"`
		JobUUID       string `json:"job_uuid"`
		ExecutorClass string `json:"executor_class"`
	}
	if json.Unmarshal(frame, &head) != nil || head.MessageType != "V0InitialJobRequest" ||
		protocol.ExecutorClass(head.ExecutorClass).Valid() {
		return nil
	}
	if id, err := uuid.Parse(head.JobUUID); err != nil || id.String() != head.JobUUID {
		return nil
	}
	return &protocol.V0DeclineJobRequest{
		JobUUID: head.JobUUID, Reason: protocol.JobRejectionReasonClassNotOffered,
		Message: fmt.Sprintf("Executor class %.64q is unknown to this miner", head.ExecutorClass),
	}
}
