package validator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/protocol"
)

// ErrNoMiner reports a job no miner could take: none serves an axon, or every one tried
// declined or failed on the horde's side.
var ErrNoMiner = errors.New("validator: no miner could take the job: none serves an axon on the subnet, " +
	"or every one tried declined or failed; retry later")

// Attempt is one miner tried for a routed job.
type Attempt struct {
	Miner  string
	Result *JobResult
}

// Route runs spec on a miner serving an axon on the subnet, and after a decline or a
// horde-side failure tries another while the deadline allows (upstream never retries). The
// first attempt keeps spec's UUID; later ones get fresh UUIDs, since a miner keys its job
// by it. It returns the last attempt's result and every attempt; the result is that of the
// attempt that completed or failed by the job's own fault, when one did.
func (v *Validator) Route(ctx context.Context, spec protocol.V2JobRequest, deadline time.Time) (*JobResult, []Attempt, error) {
	if spec.UUID == "" {
		spec.UUID = uuid.NewString()
	}
	candidates := v.candidates(spec.ExecutorClass)
	served := false
	defer func() { v.demand.record(spec.ExecutorClass, v.cfg.Clock.Now(), !served) }()
	var attempts []Attempt
	for i, miner := range candidates {
		if i > 0 {
			if v.cfg.Clock.Now().Add(v.minAttempt(spec)).After(deadline) {
				break
			}
			spec.UUID = uuid.NewString()
		}
		res, err := v.RunJob(ctx, miner, spec)
		if err != nil {
			return nil, attempts, err
		}
		attempts = append(attempts, Attempt{Miner: miner, Result: res})
		if res.Status != protocol.JobStatusRejected && res.Status != protocol.JobStatusHordeFailed {
			served = true
			return res, attempts, nil
		}
		v.log.Info("job not done by this miner; trying another", "job", spec.UUID, "miner", miner[:min(10, len(miner))],
			"status", res.Status, "reason", res.Reason)
		if ctx.Err() != nil {
			break
		}
	}
	if len(attempts) == 0 {
		return nil, nil, fmt.Errorf("%w (%d miners serve an axon)", ErrNoMiner, len(candidates))
	}
	return attempts[len(attempts)-1].Result, attempts, nil
}

// minAttempt is the least time one more attempt needs: the reservation and the job's own
// limits.
func (v *Validator) minAttempt(spec protocol.V2JobRequest) time.Duration {
	return v.cfg.ReservationTimeLimit + secs(spec.DownloadTimeLimit+spec.ExecutionTimeLimit+spec.UploadTimeLimit)
}

// candidates are the miners of the cached metagraph serving an axon, other than this
// validator, whose honoured manifest offers class (or that the validator has not heard
// from yet; any class when class is empty), in random order so that load spreads.
func (v *Validator) candidates(class protocol.ExecutorClass) []string {
	mg := v.cfg.Metagraph.Latest()
	if mg == nil {
		return nil
	}
	var out []string
	for _, n := range mg.Neurons {
		if !n.Axon.IsServing() || n.Hotkey == chain.Hotkey(v.hotkey) {
			continue
		}
		if m, ok := v.manifests.honoured(string(n.Hotkey)); ok && class != "" && m.Count(class) == 0 {
			continue
		}
		out = append(out, string(n.Hotkey))
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
