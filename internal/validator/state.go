package validator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/computehorde/horde/internal/clock"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/scoring"
	"github.com/computehorde/horde/internal/store"
)

// A validator's books — benchmark results, manifests under the 2-hour rule, decline
// penalties, reliability and demand multipliers — are kept in its store, so that a restart
// neither resets every miner's factor to 1 (and its weight with it) until it is benchmarked
// again, nor opens a new 2-hour window for every miner's manifest, nor forgives penalties.

// books is the stored form of the books.
type books struct {
	SavedAt     time.Time                          `json:"saved_at"`
	Efficiency  []efficiencyEntry                  `json:"efficiency"`
	Manifests   []MinerManifest                    `json:"manifests"`
	Penalties   []penaltyEntry                     `json:"penalties"`
	Reliability []reliabilityEntry                 `json:"reliability"`
	Demand      map[protocol.ExecutorClass]float64 `json:"demand"`
}

type efficiencyEntry struct {
	Miner  string                 `json:"miner"`
	Class  protocol.ExecutorClass `json:"class"`
	Factor float64                `json:"factor"`
	Runs   int                    `json:"runs"`
	Failed int                    `json:"failed"`
}

type penaltyEntry struct {
	Miner string                 `json:"miner"`
	Class protocol.ExecutorClass `json:"class"`
	Value float64                `json:"value"`
	At    time.Time              `json:"at"`
}

type reliabilityEntry struct {
	Miner string  `json:"miner"`
	Good  float64 `json:"good"`
	Bad   float64 `json:"bad"`
}

// stateName is the books' name in the store: one validator per hotkey.
func (v *Validator) stateName() string { return "validator/" + v.hotkey + "/books" }

// SaveState writes the books to the store.
func (v *Validator) SaveState(ctx context.Context) error {
	b := books{SavedAt: v.cfg.Clock.Now(), Manifests: v.manifests.all()}
	v.efficiency.mu.Lock()
	for k, e := range v.efficiency.m {
		b.Efficiency = append(b.Efficiency, efficiencyEntry{Miner: k.Miner, Class: k.Class, Factor: e.factor, Runs: e.runs, Failed: e.failed})
	}
	v.efficiency.mu.Unlock()
	v.penalties.mu.Lock()
	for k, p := range v.penalties.m {
		b.Penalties = append(b.Penalties, penaltyEntry{Miner: k.Miner, Class: k.Class, Value: p.value, At: p.at})
	}
	v.penalties.mu.Unlock()
	v.reliability.mu.Lock()
	for m, c := range v.reliability.m {
		b.Reliability = append(b.Reliability, reliabilityEntry{Miner: m, Good: c[0], Bad: c[1]})
	}
	v.reliability.mu.Unlock()
	v.demand.mu.Lock()
	b.Demand = make(map[protocol.ExecutorClass]float64, len(v.demand.mult))
	for c, m := range v.demand.mult {
		b.Demand[c] = m
	}
	v.demand.mu.Unlock()
	return v.cfg.Store.PutState(ctx, v.stateName(), b)
}

// LoadState restores the books a previous run saved; it reports false when there were none.
// Call it before the validator takes jobs. Values out of their bounds are refused whole: a
// damaged state must not set weights.
func (v *Validator) LoadState(ctx context.Context) (bool, error) {
	var b books
	err := v.cfg.Store.GetState(ctx, v.stateName(), &b)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("validator: load books: %w", err)
	}
	if err := b.check(); err != nil {
		return false, fmt.Errorf("validator: load books saved at %s: %w", b.SavedAt.Format(time.RFC3339), err)
	}
	v.efficiency.mu.Lock()
	v.efficiency.m = make(map[scoring.MinerClass]*efficiency, len(b.Efficiency))
	for _, e := range b.Efficiency {
		v.efficiency.m[scoring.MinerClass{Miner: e.Miner, Class: e.Class}] = &efficiency{factor: e.Factor, runs: e.Runs, failed: e.Failed}
	}
	v.efficiency.mu.Unlock()
	v.manifests.mu.Lock()
	v.manifests.miners = make(map[string]*MinerManifest, len(b.Manifests))
	for _, mm := range b.Manifests {
		mm.Honoured, mm.Announced = slices.Clone(mm.Honoured), slices.Clone(mm.Announced)
		v.manifests.miners[mm.Miner] = &mm
	}
	v.manifests.mu.Unlock()
	v.penalties.mu.Lock()
	v.penalties.m = make(map[scoring.MinerClass]penalty, len(b.Penalties))
	for _, p := range b.Penalties {
		v.penalties.m[scoring.MinerClass{Miner: p.Miner, Class: p.Class}] = penalty{value: p.Value, at: p.At}
	}
	v.penalties.mu.Unlock()
	v.reliability.mu.Lock()
	v.reliability.m = make(map[string]*[2]float64, len(b.Reliability))
	for _, r := range b.Reliability {
		v.reliability.m[r.Miner] = &[2]float64{r.Good, r.Bad}
	}
	v.reliability.mu.Unlock()
	v.demand.mu.Lock()
	v.demand.mult = b.Demand
	v.demand.mu.Unlock()
	v.log.Info("books restored", "saved_at", b.SavedAt, "benchmarks", len(b.Efficiency), "manifests", len(b.Manifests),
		"penalties", len(b.Penalties))
	return true, nil
}

// check refuses books whose values are out of their bounds.
func (b *books) check() error {
	for _, e := range b.Efficiency {
		if !(e.Factor >= 0 && e.Factor <= EfficiencyMax) || e.Runs < 0 || e.Failed < 0 {
			return fmt.Errorf("efficiency of %s on %s out of bounds: %+v", e.Miner, e.Class, e)
		}
	}
	for _, p := range b.Penalties {
		if !(p.Value > 0 && p.Value <= 1) {
			return fmt.Errorf("penalty of %s on %s out of bounds: %v", p.Miner, p.Class, p.Value)
		}
	}
	for _, r := range b.Reliability {
		if !(r.Good >= 0 && r.Bad >= 0) {
			return fmt.Errorf("reliability of %s out of bounds: %+v", r.Miner, r)
		}
	}
	for c, m := range b.Demand {
		if !(m >= DemandMin && m <= DemandMax) {
			return fmt.Errorf("demand multiplier of %s out of bounds: %v", c, m)
		}
	}
	return nil
}

// RunStateSaver saves the books every interval and once more when ctx ends.
func (v *Validator) RunStateSaver(ctx context.Context, interval time.Duration) {
	save := func(ctx context.Context) {
		if err := v.SaveState(ctx); err != nil {
			v.log.Warn("cannot save the books", "err", err)
		}
	}
	clock.Every(ctx, interval, func() { save(ctx) })
	final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	save(final)
}
