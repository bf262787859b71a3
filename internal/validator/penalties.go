package validator

import (
	"math"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/scoring"
)

// Defaults of the decline penalty (mission rule 10).
const (
	// DefaultPenaltyFactor multiplies a miner's class multiplier at each unexcused decline.
	DefaultPenaltyFactor = 0.5
	// DefaultPenaltyHalfLife is how fast a penalty fades: half of what is missing to 1
	// comes back per half-life.
	DefaultPenaltyHalfLife = time.Hour
)

// excuseSlack tolerates clocks when judging whether an excuse receipt is still valid.
const excuseSlack = 5 * time.Second

// penaltyBook keeps each (miner, class)'s penalty multiplier, recovering towards 1.
type penaltyBook struct {
	mu sync.Mutex
	m  map[scoring.MinerClass]penalty
}

type penalty struct {
	value float64   // the multiplier at at
	at    time.Time // when value was set
}

// current returns p's multiplier at now.
func (p penalty) current(now time.Time, halfLife time.Duration) float64 {
	if halfLife <= 0 {
		return p.value
	}
	lost := (1 - p.value) * math.Exp2(-float64(now.Sub(p.at))/float64(halfLife))
	return 1 - lost
}

func (b *penaltyBook) penalize(k scoring.MinerClass, now time.Time, factor float64, halfLife time.Duration) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[scoring.MinerClass]penalty{}
	}
	cur := 1.0
	if p, ok := b.m[k]; ok {
		cur = p.current(now, halfLife)
	}
	v := cur * factor
	b.m[k] = penalty{value: v, at: now}
	return v
}

// snapshot returns the multipliers below 1 at now.
func (b *penaltyBook) snapshot(now time.Time, halfLife time.Duration) map[scoring.MinerClass]float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[scoring.MinerClass]float64{}
	for k, p := range b.m {
		if v := p.current(now, halfLife); v < 1-1e-9 {
			out[k] = v
		}
	}
	return out
}

// Penalty returns miner's current multiplier for class (1 without penalty).
func (v *Validator) Penalty(miner string, class protocol.ExecutorClass) float64 {
	if p, ok := v.penalties.snapshot(v.cfg.Clock.Now(), v.penaltyHalfLife())[scoring.MinerClass{Miner: miner, Class: class}]; ok {
		return p
	}
	return 1
}

func (v *Validator) penaltyHalfLife() time.Duration {
	if v.cfg.PenaltyHalfLife > 0 {
		return v.cfg.PenaltyHalfLife
	}
	return DefaultPenaltyHalfLife
}

func (v *Validator) penaltyFactor() float64 {
	if v.cfg.PenaltyFactor > 0 && v.cfg.PenaltyFactor < 1 {
		return v.cfg.PenaltyFactor
	}
	return DefaultPenaltyFactor
}

// judgeDecline penalises miner for declining a job of class while its honoured manifest
// showed a free executor, unless the decline is excused: busy with valid JobStarted receipts
// covering the executors, or this validator holding at least its stake share of them,
// proven by its own receipts. A forged or stale excuse counts for nothing. ownInFlight is
// this validator's other jobs of the class on the miner.
func (v *Validator) judgeDecline(miner string, class protocol.ExecutorClass, d *protocol.V0DeclineJobRequest, ownInFlight int) {
	honoured, known := v.manifests.honoured(miner)
	if !known {
		return // nothing to judge against yet
	}
	capacity := honoured.Count(class)
	if capacity == 0 || ownInFlight >= capacity {
		return // not offered, or busy with this validator's own jobs
	}
	now := v.cfg.Clock.Now()
	why := "declined while its honoured manifest shows a free executor"
	if d.Reason == protocol.JobRejectionReasonBusy {
		valid, own := v.validExcuses(miner, class, d.Receipts, now)
		if valid >= capacity || (own > 0 && own >= v.stakeShare(capacity)) {
			v.log.Info("decline excused", "miner", miner[:min(10, len(miner))], "class", class, "receipts", valid, "own", own)
			return
		}
		if len(d.Receipts) > 0 {
			why = "declined busy without valid receipts covering its executors"
		}
	}
	p := v.penalties.penalize(scoring.MinerClass{Miner: miner, Class: class}, now, v.penaltyFactor(), v.penaltyHalfLife())
	v.log.Info("miner penalised", "miner", miner[:min(10, len(miner))], "class", class, "reason", d.Reason, "why", why, "multiplier", p)
}

// validExcuses counts the receipts that prove the miner busy with class at now: JobStarted,
// this miner and class, signed by both parties, not expired, one per job; own counts those
// of this validator.
func (v *Validator) validExcuses(miner string, class protocol.ExecutorClass, rs []protocol.Receipt, now time.Time) (valid, own int) {
	seen := map[string]bool{}
	for _, r := range rs {
		p, ok := r.Payload.(protocol.JobStartedReceiptPayload)
		if !ok {
			if pp, ok2 := r.Payload.(*protocol.JobStartedReceiptPayload); ok2 {
				p, ok = *pp, true
			}
		}
		if !ok || p.MinerHotkey != miner || p.ExecutorClass != class || seen[p.JobUUID] {
			continue
		}
		expiry := p.Timestamp.Add(time.Duration(p.TTL)*time.Second + excuseSlack)
		if now.After(expiry) || p.Timestamp.After(now.Add(excuseSlack)) {
			continue
		}
		if r.VerifyValidatorSignature() != nil || r.VerifyMinerSignature() != nil {
			continue
		}
		if n, ok := v.cfg.Metagraph.Neuron(chain.Hotkey(p.ValidatorHotkey)); !ok || !n.ValidatorPermit {
			continue
		}
		seen[p.JobUUID] = true
		valid++
		if p.ValidatorHotkey == v.hotkey {
			own++
		}
	}
	return valid, own
}

// stakeShare is this validator's stake share of capacity executors among the validators
// holding a permit, at least 1.
func (v *Validator) stakeShare(capacity int) int {
	mg := v.cfg.Metagraph.Latest()
	if mg == nil {
		return 1
	}
	var total, ours float64
	for _, n := range mg.Neurons {
		if n.ValidatorPermit {
			total += float64(n.Stake)
			if string(n.Hotkey) == v.hotkey {
				ours = float64(n.Stake)
			}
		}
	}
	if total == 0 {
		return 1
	}
	return max(1, int(math.Floor(float64(capacity)*ours/total)))
}

// countInFlight adds delta to this validator's jobs of class on miner.
func (v *Validator) countInFlight(miner string, class protocol.ExecutorClass, delta int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.inflight == nil {
		v.inflight = map[scoring.MinerClass]int{}
	}
	k := scoring.MinerClass{Miner: miner, Class: class}
	if v.inflight[k] += delta; v.inflight[k] <= 0 {
		delete(v.inflight, k)
	}
}

// inFlight returns this validator's jobs of class on miner.
func (v *Validator) inFlight(miner string, class protocol.ExecutorClass) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.inflight[scoring.MinerClass{Miner: miner, Class: class}]
}
