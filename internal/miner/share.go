package miner

import (
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/fairshare"
	"github.com/computehorde/horde/internal/protocol"
)

// askWindow is how long a declined request keeps counting its validator as asking for the
// class: validators retry declined jobs on other miners within seconds, and come back with
// the next one soon after.
const askWindow = time.Minute

// askKey is one validator's demand for one class.
type askKey struct {
	validator string
	class     protocol.ExecutorClass
}

// shareDecisionLocked applies the subnet's stake-proportional sharing to validator's request
// for one executor of class: every validator holding executors of the class or asking for
// one recently is a claimant, weighted by its stake in the cached metagraph. Called with
// m.mu held.
func (m *Miner) shareDecisionLocked(class protocol.ExecutorClass, capacity int, validator string, now time.Time) (fairshare.Decision, error) {
	held := map[string]int{}
	for _, j := range m.byUUID {
		if j.class == class {
			held[j.validator.hotkey]++
		}
	}
	asking := map[string]bool{validator: true}
	for k, at := range m.asked {
		switch {
		case now.Sub(at) > askWindow:
			delete(m.asked, k)
		case k.class == class:
			asking[k.validator] = true
		}
	}
	ids := map[string]bool{}
	for id := range held {
		ids[id] = true
	}
	for id := range asking {
		ids[id] = true
	}
	cs := make([]fairshare.Claimant, 0, len(ids))
	for id := range ids {
		var stake float64
		if n, ok := m.cfg.Metagraph.Neuron(chain.Hotkey(id)); ok {
			stake = float64(n.Stake)
		}
		wants := held[id]
		if asking[id] {
			wants++
		}
		cs = append(cs, fairshare.Claimant{ID: id, Weight: stake, Held: held[id], Wants: wants})
	}
	return fairshare.Decide(capacity, cs, validator)
}

// noteAskLocked records that validator asked for class and was declined. Called with m.mu
// held.
func (m *Miner) noteAskLocked(validator string, class protocol.ExecutorClass, now time.Time) {
	if m.asked == nil {
		m.asked = map[askKey]time.Time{}
	}
	m.asked[askKey{validator, class}] = now
}
