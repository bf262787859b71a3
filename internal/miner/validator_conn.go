package miner

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/ptr"
	"github.com/computehorde/horde/internal/wsconn"
)

// authTimeout bounds how long a connected validator may take to authenticate.
const authTimeout = 10 * time.Second

// maxQueuedBeforeAuth bounds the frames a validator may send before authenticating; upstream
// queues them and replays them after auth.
const maxQueuedBeforeAuth = 16

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
	conn, release := m.accept(w, r, "validator")
	if conn == nil {
		return
	}
	defer release()
	ctx := r.Context()
	log := m.log.With("validator", shortKey(hotkey))

	refuse := func(err error) {
		log.Warn("validator refused", "err", err)
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

	queued, err := m.awaitAuth(ctx, conn, hotkey)
	if err != nil {
		refuse(err)
		return
	}
	s := &validatorSession{hotkey: hotkey, conn: conn, log: log}
	log.Info("validator authenticated")
	s.send(ctx, m.manifest())
	for _, msg := range queued {
		m.handleValidatorMessage(ctx, s, msg)
	}
	for {
		frame, err := conn.ReadFrame(ctx)
		if err != nil {
			if !wsconn.IsClosed(err) && !m.stopping() {
				log.Warn("validator connection failed", "err", err)
			}
			return
		}
		msg, err := protocol.DecodeValidatorToMiner(frame)
		if err != nil {
			s.send(ctx, &protocol.GenericError{Details: new("Malformed message: " + err.Error())})
			continue
		}
		m.handleValidatorMessage(ctx, s, msg)
	}
}

// awaitAuth reads frames until a valid ValidatorAuthForMiner arrives, queueing (a bounded
// number of) other messages for after authentication.
func (m *Miner) awaitAuth(ctx context.Context, conn *wsconn.Conn, hotkey string) ([]protocol.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, authTimeout)
	defer cancel()
	var queued []protocol.Message
	for {
		frame, err := conn.ReadFrame(ctx)
		if err != nil {
			return nil, fmt.Errorf("no auth message received: %w", err)
		}
		msg, err := protocol.DecodeValidatorToMiner(frame)
		if err != nil {
			return nil, fmt.Errorf("malformed message before auth: %w", err)
		}
		auth, ok := msg.(*protocol.ValidatorAuthForMiner)
		if !ok {
			if len(queued) >= maxQueuedBeforeAuth {
				return nil, errAuthNotFirstFrame
			}
			queued = append(queued, msg)
			continue
		}
		if err := m.checkAuth(hotkey, auth); err != nil {
			return nil, err
		}
		return queued, nil
	}
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
	case *protocol.V0MainHotkeyMessage:
		s.send(ctx, &protocol.V0MainHotkeyMessage{MainHotkey: new(m.hotkey)})
	case *protocol.ValidatorAuthForMiner:
		s.send(ctx, &protocol.GenericError{Details: new("Already authenticated")})
	case *protocol.GenericError:
		s.log.Warn("validator reported an error", "details", ptr.Deref(msg.Details))
	default:
		s.send(ctx, &protocol.GenericError{Details: new("Unsupported message: " + msg.MessageType())})
	}
}
