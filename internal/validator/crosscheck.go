package validator

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/computehorde/horde/internal/protocol"
)

// Cross-checks (mission rule 5): a fraction of organic jobs is run again on the validator's
// trusted miner — one it runs itself, not registered on chain — and the outputs compared. A
// mismatch is recorded against the miner and lowers its reliability, and reported to the
// facilitator when the job came from it (V0JobCheatDetected). Only completed jobs are checked,
// and only their stdout is compared: a job that is not deterministic will mismatch, so the
// fraction should stay small and mismatches are evidence to weigh, not proof.

// TrustedMiner is a miner the validator runs itself, reached directly.
type TrustedMiner struct {
	Hotkey string
	Addr   netip.AddrPort
}

// Cheat is a cross-check whose outputs differed.
type Cheat struct {
	At            time.Time
	Miner         string
	JobUUID       string // the job on the miner
	RequestUUID   string // the job as requested (a retried job's attempts get new UUIDs)
	CheckUUID     string // the re-run on the trusted miner
	Class         protocol.ExecutorClass
	MinerStdout   string
	TrustedStdout string
}

// cheatBook keeps the recent mismatches.
type cheatBook struct {
	mu     sync.Mutex
	cheats []Cheat
}

const maxCheats = 1000

func (b *cheatBook) add(c Cheat) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cheats = append(b.cheats, c)
	if len(b.cheats) > maxCheats {
		b.cheats = b.cheats[len(b.cheats)-maxCheats:]
	}
}

// Cheats returns the recorded mismatches, oldest first.
func (v *Validator) Cheats() []Cheat {
	v.cheats.mu.Lock()
	defer v.cheats.mu.Unlock()
	return append([]Cheat(nil), v.cheats.cheats...)
}

// shouldCrossCheck draws whether a completed job is checked.
func (v *Validator) shouldCrossCheck() bool {
	return v.cfg.TrustedMiner != nil && v.cfg.CrossCheckFraction > 0 && rand.Float64() < v.cfg.CrossCheckFraction
}

// CrossCheck runs spec again on the trusted miner and compares its stdout with res, the
// miner's completed result. It reports whether they differed; a trusted run that does not
// complete is no evidence either way (ok false).
func (v *Validator) CrossCheck(ctx context.Context, miner string, spec protocol.V2JobRequest, res *JobResult) (mismatch, ok bool, err error) {
	return v.crossCheck(ctx, miner, spec.UUID, spec, res)
}

// crossCheck is CrossCheck of an attempt of the job requested as requestUUID.
func (v *Validator) crossCheck(ctx context.Context, miner, requestUUID string, spec protocol.V2JobRequest, res *JobResult) (mismatch, ok bool, err error) {
	t := v.cfg.TrustedMiner
	if t == nil {
		return false, false, nil
	}
	check := spec
	check.UUID = uuid.NewString()
	trusted, err := v.runJob(ctx, t.Hotkey, "ws://"+t.Addr.String(), check, Observer{})
	if err != nil {
		return false, false, err
	}
	if trusted.Status != protocol.JobStatusCompleted {
		v.log.Warn("cross-check: the trusted miner did not complete the job", "job", spec.UUID, "status", trusted.Status, "reason", trusted.Reason)
		return false, false, nil
	}
	if trusted.Stdout == res.Stdout {
		return false, true, nil
	}
	c := Cheat{At: v.cfg.Clock.Now(), Miner: miner, JobUUID: spec.UUID, RequestUUID: requestUUID, CheckUUID: check.UUID,
		Class: spec.ExecutorClass, MinerStdout: truncate(res.Stdout, 1024), TrustedStdout: truncate(trusted.Stdout, 1024)}
	v.recordCheat(c)
	if l := v.facilitator.Load(); l != nil {
		l.cheatDetected(c)
	}
	v.log.Warn("cross-check mismatch: the miner's output differs from the trusted miner's", "miner", miner[:min(10, len(miner))],
		"job", spec.UUID, "check", check.UUID)
	return true, true, nil
}

// recordCheat counts a confirmed cheat against the miner.
func (v *Validator) recordCheat(c Cheat) {
	v.reliability.record(c.Miner, false)
	v.cheats.add(c)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
