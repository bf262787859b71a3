package sim

import (
	"fmt"

	"github.com/computehorde/horde/internal/chain"
)

// Register registers hotkey (owned by coldkey) with no stake and returns its
// uid. It takes the lowest free uid; when all MaxNeurons slots are taken it
// replaces the neuron with the lowest stake among those past their
// ImmunityPeriod (ties: the earliest registered, then the lowest uid). The
// new neuron holds no permit until the next epoch.
func (s *Chain) Register(hotkey chain.Hotkey, coldkey chain.Coldkey) (chain.UID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if hotkey == "" {
		return 0, fmt.Errorf("sim: Register: empty hotkey; pass the SS58 address of the hotkey")
	}
	if uid, ok := s.uids[hotkey]; ok {
		return 0, fmt.Errorf("%w (hotkey %s has uid %d)", ErrAlreadyRegistered, hotkey, uid)
	}
	now := s.pendingBlockLocked()
	uid := -1
	for i, n := range s.neurons {
		if n == nil {
			uid = i
			break
		}
	}
	if uid < 0 && len(s.neurons) < s.maxNeurons {
		uid = len(s.neurons)
		s.neurons = append(s.neurons, nil)
	}
	if uid < 0 {
		uid = s.pruneCandidateLocked(now)
		if uid < 0 {
			return 0, fmt.Errorf("%w (%d slots, immunity %d blocks)", ErrNoSlotAvailable, s.maxNeurons, s.hp.ImmunityPeriod)
		}
		delete(s.uids, s.neurons[uid].hotkey)
	}
	s.neurons[uid] = &neuron{hotkey: hotkey, coldkey: coldkey, registeredAt: now}
	s.uids[hotkey] = chain.UID(uid)
	s.dirty = true
	return chain.UID(uid), nil
}

// pruneCandidateLocked returns the uid a registration at block now replaces,
// or -1 if every neuron is immune.
func (s *Chain) pruneCandidateLocked(now uint64) int {
	best := -1
	for uid, n := range s.neurons {
		if n == nil || now-n.registeredAt < uint64(s.hp.ImmunityPeriod) {
			continue
		}
		if best < 0 {
			best = uid
			continue
		}
		b := s.neurons[best]
		if n.stake < b.stake || (n.stake == b.stake && n.registeredAt < b.registeredAt) {
			best = uid
		}
	}
	return best
}

// Deregister removes hotkey from the subnet and frees its uid. Its
// commitment stays, as on chain; its unrevealed commits will be dropped.
func (s *Chain) Deregister(hotkey chain.Hotkey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	uid, ok := s.uids[hotkey]
	if !ok {
		return fmt.Errorf("%w (hotkey %s)", chain.ErrNotRegistered, hotkey)
	}
	s.neurons[uid] = nil
	delete(s.uids, hotkey)
	s.dirty = true
	return nil
}

// SetStake sets hotkey's total stake in rao. Permits follow at the next
// epoch.
func (s *Chain) SetStake(hotkey chain.Hotkey, rao uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	uid, ok := s.uids[hotkey]
	if !ok {
		return fmt.Errorf("%w (hotkey %s)", chain.ErrNotRegistered, hotkey)
	}
	s.neurons[uid].stake = rao
	s.dirty = true
	return nil
}

// SetHyperparams replaces the subnet's hyperparameters from the next block
// (as the subnet owner or sudo would). Commits already made keep their
// reveal block.
func (s *Chain) SetHyperparams(hp chain.Hyperparams) error {
	if err := validateHyperparams(hp); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hp = hp
	s.dirty = true
	return nil
}
