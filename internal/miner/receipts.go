package miner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// storeReceipt verifies a validator-signed receipt, countersigns it and stores it. Like
// upstream, an invalid receipt is logged and dropped; the job itself goes on.
func (m *Miner) storeReceipt(ctx context.Context, s *validatorSession, p protocol.ReceiptPayload, validatorSig string) {
	if err := m.checkReceipt(s.hotkey, p, validatorSig); err != nil {
		s.log.Warn("receipt rejected", "type", p.ReceiptType(), "job", p.Header().JobUUID, "err", err)
		return
	}
	payload, err := json.Marshal(p)
	if err != nil {
		s.log.Error("cannot encode receipt", "type", p.ReceiptType(), "err", err)
		return
	}
	c := p.Header()
	_, err = m.cfg.Store.InsertReceipt(ctx, store.Receipt{
		Type:               string(p.ReceiptType()),
		JobUUID:            c.JobUUID,
		ValidatorHotkey:    c.ValidatorHotkey,
		MinerHotkey:        c.MinerHotkey,
		Timestamp:          c.Timestamp.Time,
		Payload:            payload,
		ValidatorSignature: validatorSig,
		MinerSignature:     m.cfg.Keypair.Sign(p.BlobForSigning()).Hex(),
	})
	if err != nil {
		s.log.Error("cannot store receipt", "type", p.ReceiptType(), "job", c.JobUUID, "err", err)
	}
}

var errReceiptParty = errors.New("receipt names another miner or validator")

func (m *Miner) checkReceipt(validatorHotkey string, p protocol.ReceiptPayload, sig string) error {
	c := p.Header()
	if c.MinerHotkey != m.hotkey || c.ValidatorHotkey != validatorHotkey {
		return errReceiptParty
	}
	if err := keys.Verify(validatorHotkey, p.BlobForSigning(), sig); err != nil {
		return fmt.Errorf("validator signature: %w", err)
	}
	return nil
}
