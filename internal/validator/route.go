package validator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
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
	return v.RouteWith(ctx, spec, deadline, nil)
}

// RouteWith is Route telling onStatus each intermediate status of the attempt under way
// (accepted, executor_ready, volumes_ready, execution_done), as the facilitator relays them.
func (v *Validator) RouteWith(ctx context.Context, spec protocol.V2JobRequest, deadline time.Time, onStatus func(protocol.JobStatus)) (*JobResult, []Attempt, error) {
	return v.RouteObserved(ctx, spec, deadline, RouteOptions{Observer: Observer{Status: onStatus}})
}

// Observer is told what happens to a routed job while it runs; nil fields are not called.
// Calls come from the job's driver: they must not block.
type Observer struct {
	// Status is each intermediate status of the attempt under way (accepted,
	// executor_ready, volumes_ready, execution_done).
	Status func(protocol.JobStatus)
	// Work is each 10-minute interval signed for an attempt (its JobUUID is the attempt's).
	Work func(protocol.WorkIntervalReceiptPayload)
}

// RouteOptions are what RouteObserved does beyond Route.
type RouteOptions struct {
	Observer
	// WaitForMiner is how long a job waits for a miner when every miner tried declined it or
	// none had an executor free, trying them all again with backoff; zero rejects it at
	// once. A validator does not see the other validators' jobs, so miners it counts as free
	// may be busy with theirs for a while. A horde-side failure ends the waiting: the same
	// failure would likely follow.
	WaitForMiner time.Duration
}

// Backoff of the rounds of a job waiting for a miner (RouteOptions.WaitForMiner).
const (
	waitForMinerFirst = time.Second
	waitForMinerMax   = 8 * time.Second
)

// RouteObserved is Route telling opt's Observer what happens while the job runs, and waiting
// for a miner as opt says.
func (v *Validator) RouteObserved(ctx context.Context, spec protocol.V2JobRequest, deadline time.Time, opt RouteOptions) (*JobResult, []Attempt, error) {
	if spec.UUID == "" {
		spec.UUID = uuid.NewString()
	}
	if spec.OnTrustedMiner {
		return v.runOnTrustedMiner(ctx, spec, opt.Observer)
	}
	requestUUID := spec.UUID
	served := false
	defer func() { v.demand.record(spec.ExecutorClass, v.cfg.Clock.Now(), !served) }()
	var attempts []Attempt
	candidates := 0
	waitUntil := v.cfg.Clock.Now().Add(opt.WaitForMiner)
rounds:
	for backoff := waitForMinerFirst; ; backoff = min(2*backoff, waitForMinerMax) {
		miners := v.candidates(spec.ExecutorClass)
		candidates = max(candidates, len(miners))
		hordeFailed := false
		for _, miner := range miners {
			if len(attempts) > 0 {
				if v.cfg.Clock.Now().Add(v.minAttempt(spec)).After(deadline) {
					break rounds
				}
				// A miner keys its job by UUID: every attempt after the first gets its own.
				spec.UUID = uuid.NewString()
			}
			res, err := v.runJob(ctx, miner, "", spec, opt.Observer)
			if err != nil {
				return nil, attempts, err
			}
			v.reliability.record(miner, res.Status != protocol.JobStatusRejected && res.Status != protocol.JobStatusHordeFailed)
			attempts = append(attempts, Attempt{Miner: miner, Result: res})
			if res.Status != protocol.JobStatusRejected && res.Status != protocol.JobStatusHordeFailed {
				served = true
				if res.Status == protocol.JobStatusCompleted && v.shouldCrossCheck() {
					// In the background: the user's result does not wait for the check; it ends
					// with ctx (the process).
					go func() {
						if _, _, err := v.crossCheck(ctx, miner, requestUUID, spec, res); err != nil {
							v.log.Warn("cross-check failed", "job", spec.UUID, "err", err)
						}
					}()
				}
				return res, attempts, nil
			}
			hordeFailed = hordeFailed || res.Status == protocol.JobStatusHordeFailed
			v.log.Info("job not done by this miner; trying another", "job", spec.UUID, "miner", miner[:min(10, len(miner))],
				"status", res.Status, "reason", res.Reason)
			if ctx.Err() != nil {
				break rounds
			}
		}
		now := v.cfg.Clock.Now()
		if hordeFailed || now.Add(backoff).After(waitUntil) || now.Add(backoff+v.minAttempt(spec)).After(deadline) {
			break
		}
		v.log.Info("no miner can take the job now; waiting for one", "job", requestUUID, "wait", backoff,
			"miners_tried", len(miners), "waiting_until", waitUntil.Format(time.TimeOnly))
		select {
		case <-ctx.Done():
			break rounds
		case <-v.cfg.Clock.After(backoff):
		}
	}
	if len(attempts) == 0 {
		return nil, nil, fmt.Errorf("%w (%d miners serve an axon)", ErrNoMiner, candidates)
	}
	return attempts[len(attempts)-1].Result, attempts, nil
}

// ErrNoTrustedMiner reports a job asked for the trusted miner of a validator that has none.
var ErrNoTrustedMiner = errors.New("validator: the job asks for the trusted miner, and this validator has none configured")

// runOnTrustedMiner runs a job the user asked to run on the validator's trusted miner (to
// compare with a run on the subnet's miners), without retries.
func (v *Validator) runOnTrustedMiner(ctx context.Context, spec protocol.V2JobRequest, obs Observer) (*JobResult, []Attempt, error) {
	t := v.cfg.TrustedMiner
	if t == nil {
		return nil, nil, ErrNoTrustedMiner
	}
	res, err := v.runJob(ctx, t.Hotkey, "ws://"+t.Addr.String(), spec, obs)
	if err != nil {
		return nil, nil, err
	}
	return res, []Attempt{{Miner: t.Hotkey, Result: res}}, nil
}

// minAttempt is the least time one more attempt needs: the reservation and the job's own
// limits.
func (v *Validator) minAttempt(spec protocol.V2JobRequest) time.Duration {
	return v.cfg.ReservationTimeLimit + secs(spec.DownloadTimeLimit+spec.ExecutionTimeLimit+spec.UploadTimeLimit)
}

// candidates are the miners of the cached metagraph serving an axon, other than this
// validator, whose honoured manifest has an executor of class free of this validator's own
// jobs (or that the validator has not heard from yet; any class when class is empty). Their order is random, weighted by each miner's
// efficiency for the class times its reliability, so that load spreads and better miners
// get more of it (a weighted shuffle: each next miner is drawn with probability
// proportional to its weight among those left).
func (v *Validator) candidates(class protocol.ExecutorClass) []string {
	miners := v.servingMiners(class)
	weights := make([]float64, len(miners))
	for i, m := range miners {
		weights[i] = max(v.Efficiency(m, class)*v.Reliability(m), 0.01)
	}
	out := make([]string, 0, len(miners))
	for len(miners) > 0 {
		total := 0.0
		for _, w := range weights {
			total += w
		}
		r := rand.Float64() * total
		i := 0
		for ; i < len(weights)-1 && r >= weights[i]; i++ {
			r -= weights[i]
		}
		out = append(out, miners[i])
		miners = append(miners[:i], miners[i+1:]...)
		weights = append(weights[:i], weights[i+1:]...)
	}
	return out
}

// servingMiners are the candidates before ordering.
func (v *Validator) servingMiners(class protocol.ExecutorClass) []string {
	mg := v.cfg.Metagraph.Latest()
	if mg == nil {
		return nil
	}
	var out []string
	for _, n := range mg.Neurons {
		if !n.Axon.IsServing() || n.Hotkey == chain.Hotkey(v.hotkey) {
			continue
		}
		if m, ok := v.manifests.honoured(string(n.Hotkey)); ok && class != "" && m.Count(class)-v.inFlight(string(n.Hotkey), class) <= 0 {
			continue
		}
		out = append(out, string(n.Hotkey))
	}
	return out
}

// reliabilityBook counts, per miner, the jobs it took and did (completed, or failed by the
// job's own fault) against those it declined or failed on the horde's side.
type reliabilityBook struct {
	mu sync.Mutex
	m  map[string]*[2]float64 // good, bad, decayed so that recent jobs count most
}

// reliabilityDecay is how much earlier outcomes still count at each new one.
const reliabilityDecay = 0.95

func (b *reliabilityBook) record(miner string, good bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]*[2]float64{}
	}
	c := b.m[miner]
	if c == nil {
		c = &[2]float64{}
		b.m[miner] = c
	}
	c[0] *= reliabilityDecay
	c[1] *= reliabilityDecay
	if good {
		c[0]++
	} else {
		c[1]++
	}
}

// Reliability returns the share of miner's recent jobs it did, with a prior of one good
// job so that a new miner starts near 1 and one failure does not sink it.
func (v *Validator) Reliability(miner string) float64 {
	b := &v.reliability
	b.mu.Lock()
	defer b.mu.Unlock()
	good, bad := 1.0, 0.0
	if c := b.m[miner]; c != nil {
		good += c[0]
		bad += c[1]
	}
	return good / (good + bad)
}

// FreeCapacity returns, per class, the executors of the serving miners' honoured manifests
// that run none of this validator's jobs (classes offered but full count 0): what the
// facilitator may send this validator now.
func (v *Validator) FreeCapacity() protocol.Manifest {
	free := map[protocol.ExecutorClass]int{}
	for _, m := range v.servingMiners("") {
		honoured, ok := v.manifests.honoured(m)
		if !ok {
			continue
		}
		for _, e := range honoured {
			free[e.Class] += max(e.Count-v.inFlight(m, e.Class), 0)
		}
	}
	classes := make([]protocol.ExecutorClass, 0, len(free))
	for c := range free {
		classes = append(classes, c)
	}
	slices.Sort(classes)
	out := make(protocol.Manifest, 0, len(classes))
	for _, c := range classes {
		out = append(out, protocol.ManifestEntry{Class: c, Count: free[c]})
	}
	return out
}
