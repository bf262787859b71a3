package validator

import (
	"math"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/protocol"
)

// Demand multipliers (mission rule 2): each class's multiplier follows its measured demand
// against supply. Demand is the jobs of the class asked of this validator in the last
// DemandWindow, boosted by the share of them no miner could take; supply is the executors
// of the class in the miners' honoured manifests. The target is requests per executor per
// window × (1 + unserved share), bounded to [DemandMin, DemandMax]; the multiplier moves a
// DemandSmoothing fraction towards it at most once per demandStep, so it neither jumps nor
// sticks.
const (
	DemandMin       = 0.5
	DemandMax       = 2.0
	DemandWindow    = time.Hour
	DemandSmoothing = 0.3
	demandStep      = time.Minute
)

// DefaultRewardRate is the reward (alpha) per executor-hour of value 1.0 the validator
// publishes to miners (V0ClassValuesMessage) when none is configured. A class publishes
// RewardRate × its relative value × its demand multiplier, per executor-hour, which miners
// compare with their cost per executor-hour of the class: the same unit, so the scale of
// the relative values matters. At this default, spin_up-4min.gpu-24gb (value 98) publishes
// 49 to 196 α/h, and always_on.test (value 1 on the devnet) 0.5 to 2.
const DefaultRewardRate = 1.0

type demandEvent struct {
	at       time.Time
	unserved bool
}

// demandBook measures demand per class.
type demandBook struct {
	mu      sync.Mutex
	events  map[protocol.ExecutorClass][]demandEvent
	mult    map[protocol.ExecutorClass]float64
	stepped time.Time
}

// record notes a job of class asked at now; unserved when no miner could take it.
func (b *demandBook) record(class protocol.ExecutorClass, now time.Time, unserved bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.events == nil {
		b.events = map[protocol.ExecutorClass][]demandEvent{}
	}
	b.events[class] = append(b.events[class], demandEvent{at: now, unserved: unserved})
}

// multipliers returns each class's multiplier at now, given supply (executors per class);
// a class never asked for has 1.
func (b *demandBook) multipliers(now time.Time, supply func(protocol.ExecutorClass) int) map[protocol.ExecutorClass]float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mult == nil {
		b.mult = map[protocol.ExecutorClass]float64{}
	}
	if now.Sub(b.stepped) >= demandStep {
		b.stepped = now
		for class, evs := range b.events {
			kept := evs[:0]
			unserved := 0
			for _, e := range evs {
				if now.Sub(e.at) <= DemandWindow {
					kept = append(kept, e)
					if e.unserved {
						unserved++
					}
				}
			}
			b.events[class] = kept
			// No request on executors that exist is no demand (the floor); on none, no
			// evidence either way (1).
			target := 1.0
			if n := len(kept); n > 0 {
				target = float64(n) / float64(max(1, supply(class))) * (1 + float64(unserved)/float64(n))
			} else if supply(class) > 0 {
				target = DemandMin
			}
			target = min(max(target, DemandMin), DemandMax)
			cur, ok := b.mult[class]
			if !ok {
				cur = 1
			}
			b.mult[class] = cur + DemandSmoothing*(target-cur)
		}
	}
	out := make(map[protocol.ExecutorClass]float64, len(b.mult))
	for c, m := range b.mult {
		out[c] = m
	}
	return out
}

// supply is the executors of class in the miners' honoured manifests.
func (v *Validator) supply(class protocol.ExecutorClass) int {
	n := 0
	for _, m := range v.manifests.all() {
		n += m.Honoured.Count(class)
	}
	return n
}

// DemandMultipliers returns the current demand multiplier of every class asked for.
func (v *Validator) DemandMultipliers() map[protocol.ExecutorClass]float64 {
	return v.demand.multipliers(v.cfg.Clock.Now(), v.supply)
}

// ClassValues is what the validator publishes to miners: each class's relative value and
// demand multiplier, and the reward rate.
func (v *Validator) ClassValues() *protocol.V0ClassValuesMessage {
	mult := v.DemandMultipliers()
	msg := &protocol.V0ClassValuesMessage{RewardRate: v.rewardRate()}
	for _, c := range v.cfg.Classes.Classes() {
		m, ok := mult[c.Name]
		if !ok {
			m = 1
		}
		msg.ClassValues.Set(string(c.Name), protocol.ClassValue{RelativeValue: c.RelativeValue, Multiplier: m})
	}
	return msg
}

// SetRewardRate changes the reward rate published to miners from now on; 0 restores
// Config.RewardRate. The miner links send the new class values at once, so that miners
// judge again which classes pay for themselves (and drop those that no longer do, under
// their 2-hour rule).
func (v *Validator) SetRewardRate(r float64) {
	if r > 0 && !math.IsInf(r, 0) {
		v.rateOverride.Store(&r)
	} else {
		v.rateOverride.Store(nil)
	}
	v.valuesChanged.fire()
}

func (v *Validator) rewardRate() float64 {
	if r := v.rateOverride.Load(); r != nil {
		return *r
	}
	if v.cfg.RewardRate > 0 {
		return v.cfg.RewardRate
	}
	return DefaultRewardRate
}
