package miner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/computehorde/horde/internal/hwclass"
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
		Seq:                protocol.ReceiptSeq(p),
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
	if err := (protocol.Receipt{Payload: p, ValidatorSignature: sig}).VerifyValidatorSignature(); err != nil {
		return fmt.Errorf("validator signature: %w", err)
	}
	return nil
}

// excuseLookback bounds how far back busy-excuse receipts are searched: no executor is kept
// longer than upstream's MAX_EXECUTOR_TIMEOUT.
const excuseLookback = hwclass.MaxExecutorTimeout

// maxExcuses caps the receipts attached to one busy decline.
const maxExcuses = 256

// excuseReceipts returns the countersigned JobStarted receipts that prove the miner busy with
// class at time at (upstream's busy-decline excuses, protocol.md §2.4): organic, same class,
// valid at at, for another job than exclude, and of validator unless it is empty. Errors are
// logged; the decline then goes out without excuses.
func (m *Miner) excuseReceipts(ctx context.Context, class protocol.ExecutorClass, at time.Time, exclude, validator string) []protocol.Receipt {
	rows, err := m.cfg.Store.ListReceipts(ctx, store.ReceiptFilter{
		Type: string(protocol.ReceiptTypeJobStarted), MinerHotkey: m.hotkey,
		Since: at.Add(-excuseLookback), Until: at.Add(time.Microsecond),
	})
	if err != nil {
		m.log.Error("cannot list receipts for a busy decline", "err", err)
		return nil
	}
	var out []protocol.Receipt
	for _, row := range rows {
		if row.JobUUID == exclude || row.MinerSignature == "" || (validator != "" && row.ValidatorHotkey != validator) {
			continue
		}
		var p protocol.JobStartedReceiptPayload
		if err := json.Unmarshal(row.Payload, &p); err != nil {
			m.log.Error("stored receipt does not decode", "job", row.JobUUID, "err", err)
			continue
		}
		expiry := p.Timestamp.Add(time.Duration(p.TTL) * time.Second)
		if !p.IsOrganic || p.ExecutorClass != class || at.After(expiry) {
			continue
		}
		out = append(out, protocol.Receipt{Payload: p, ValidatorSignature: row.ValidatorSignature, MinerSignature: &row.MinerSignature})
		if len(out) == maxExcuses {
			break
		}
	}
	return out
}
