package validator

import (
	"testing"
	"time"

	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
)

// excuse is a JobStarted receipt of another job of Bob's, signed by validator and minerKey.
func (e *env) excuse(validator, minerKey *keys.Keypair) protocol.Receipt {
	p := protocol.JobStartedReceiptPayload{
		JobUUID: "00000000-0000-4000-8000-00000000eeee", MinerHotkey: e.bob.SS58(), ValidatorHotkey: validator.SS58(),
		Timestamp: protocol.NewTimestamp(e.clock.Now().Add(-time.Second)), ExecutorClass: protocol.ExecutorClassAlwaysOnTest,
		IsOrganic: true, TTL: 60,
	}
	sig := minerKey.Sign(p.BlobForSigning()).Hex()
	return protocol.Receipt{Payload: p, ValidatorSignature: validator.Sign(p.BlobForSigning()).Hex(), MinerSignature: &sig}
}

// decline runs a job that Bob declines busy with the given excuses.
func (e *env) decline(excuses ...protocol.Receipt) {
	e.t.Helper()
	m := e.startMiner(func(p *minerPeer, job string) {
		p.send(&protocol.V0DeclineJobRequest{JobUUID: job, Reason: protocol.JobRejectionReasonBusy, Message: "busy", Receipts: excuses})
	})
	res, err := e.v.RunJob(e.t.Context(), e.bob.SS58(), testSpec(protocol.ExecutorClassAlwaysOnTest))
	if err != nil || res.Status != protocol.JobStatusRejected {
		e.t.Fatalf("RunJob: %+v, %v; want rejected", res, err)
	}
	m.wait()
}

func TestDeclineWhileFreePenalisedAndDecays(t *testing.T) {
	e := newEnv(t, nil)
	e.decline()
	if p := e.v.Penalty(e.bob.SS58(), protocol.ExecutorClassAlwaysOnTest); p != DefaultPenaltyFactor {
		t.Fatalf("penalty after an unexcused decline: %v, want %v", p, DefaultPenaltyFactor)
	}
	e.clock.Advance(DefaultPenaltyHalfLife)
	if p := e.v.Penalty(e.bob.SS58(), protocol.ExecutorClassAlwaysOnTest); p != 0.75 {
		t.Errorf("penalty a half-life later: %v, want 0.75", p)
	}
	e.clock.Advance(20 * DefaultPenaltyHalfLife)
	if p := e.v.Penalty(e.bob.SS58(), protocol.ExecutorClassAlwaysOnTest); p < 0.9999 {
		t.Errorf("penalty long after: %v, want back to about 1", p)
	}
}

func TestExcusedDeclineNotPenalised(t *testing.T) {
	e := newEnv(t, nil)
	e.decline(e.excuse(e.alice, e.bob)) // the miner's one executor runs another job of ours
	if p := e.v.Penalty(e.bob.SS58(), protocol.ExecutorClassAlwaysOnTest); p != 1 {
		t.Errorf("penalty after an excused decline: %v, want 1", p)
	}
}

func TestForgedExcusePenalised(t *testing.T) {
	e := newEnv(t, nil)
	e.decline(e.excuse(e.alice, e.alice)) // "countersigned" with the validator's own key
	if p := e.v.Penalty(e.bob.SS58(), protocol.ExecutorClassAlwaysOnTest); p != DefaultPenaltyFactor {
		t.Errorf("penalty after a forged excuse: %v, want %v", p, DefaultPenaltyFactor)
	}
}
