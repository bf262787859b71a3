package sim

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/computehorde/horde/internal/chain"
)

// axonProtocolTCP is the protocol byte the Python SDK announces.
const axonProtocolTCP = 4

// SetWeights implements chain.Chain: it translates hotkeys to uids in the
// pending state, quantises with chain.QuantizeWeights and then sets the
// weights directly, or commits them when commit-reveal is enabled. A commit
// is checked in full at once (the chain would only drop a bad one at reveal
// time), then again when revealed.
func (s *Chain) SetWeights(ctx context.Context, hotkey chain.Hotkey, netuid chain.NetUID, weights map[chain.Hotkey]float64, versionKey uint64) (chain.WeightsReceipt, error) {
	if err := ctx.Err(); err != nil {
		return chain.WeightsReceipt{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.faultLocked(KindSetWeights); err != nil {
		return chain.WeightsReceipt{}, err
	}
	if err := s.checkNetUID(netuid); err != nil {
		return chain.WeightsReceipt{}, err
	}
	byUID := make(map[chain.UID]float64, len(weights))
	var unknown []chain.Hotkey
	for h, w := range weights {
		uid, ok := s.uids[h]
		if !ok {
			unknown = append(unknown, h)
			continue
		}
		byUID[uid] = w
	}
	slices.Sort(unknown)
	uids, values, err := chain.QuantizeWeights(byUID)
	if err != nil {
		return chain.WeightsReceipt{}, err
	}
	r := chain.WeightsReceipt{
		Block:        s.pendingBlockLocked(),
		CommitReveal: s.hp.CommitRevealEnabled,
		UIDs:         uids,
		Values:       values,
		Unknown:      unknown,
	}
	if s.hp.CommitRevealEnabled {
		r.RevealBlock, err = s.commitLocked(hotkey, uids, values, versionKey)
	} else {
		r.RevealBlock, err = s.setLocked(hotkey, uids, values, versionKey)
	}
	if err != nil {
		return chain.WeightsReceipt{}, err
	}
	return r, nil
}

// SetWeightsRaw is the chain's set_weights extrinsic on a uid vector, for
// tests of the rules a hotkey-keyed map cannot break (duplicate or unknown
// uids). It returns the block the weights take effect at, and
// chain.ErrCommitRevealEnabled when the subnet uses commit-reveal.
func (s *Chain) SetWeightsRaw(hotkey chain.Hotkey, netuid chain.NetUID, uids []chain.UID, values []uint16, versionKey uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.faultLocked(KindSetWeights); err != nil {
		return 0, err
	}
	if err := s.checkNetUID(netuid); err != nil {
		return 0, err
	}
	if s.hp.CommitRevealEnabled {
		return 0, fmt.Errorf("%w (netuid %d)", chain.ErrCommitRevealEnabled, netuid)
	}
	return s.setLocked(hotkey, uids, values, versionKey)
}

// CommitWeightsRaw is the chain's weight commit on a uid vector (the
// simulator keeps the plaintext; no timelock encryption). It returns the
// block the weights are revealed at, and chain.ErrCommitRevealDisabled when
// the subnet does not use commit-reveal.
func (s *Chain) CommitWeightsRaw(hotkey chain.Hotkey, netuid chain.NetUID, uids []chain.UID, values []uint16, versionKey uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.faultLocked(KindSetWeights); err != nil {
		return 0, err
	}
	if err := s.checkNetUID(netuid); err != nil {
		return 0, err
	}
	if !s.hp.CommitRevealEnabled {
		return 0, fmt.Errorf("%w (netuid %d)", chain.ErrCommitRevealDisabled, netuid)
	}
	return s.commitLocked(hotkey, uids, values, versionKey)
}

// setLocked validates and applies set_weights in the chain's order:
// registration, stake and version key; rate limit; then permit and vector.
func (s *Chain) setLocked(hotkey chain.Hotkey, uids []chain.UID, values []uint16, versionKey uint64) (uint64, error) {
	now := s.pendingBlockLocked()
	n, err := s.checkSenderLocked(hotkey, versionKey)
	if err != nil {
		return 0, err
	}
	if n.lastUpdate != 0 && now-n.lastUpdate < s.hp.WeightsRateLimit {
		return 0, fmt.Errorf("%w (last update at block %d, now %d, limit %d blocks)",
			chain.ErrSettingWeightsTooFast, n.lastUpdate, now, s.hp.WeightsRateLimit)
	}
	if _, err := s.checkVectorLocked(hotkey, n, uids, values); err != nil {
		return 0, err
	}
	n.weights = weightMap(uids, values)
	n.lastUpdate = now
	s.dirty = true
	return now, nil
}

// commitLocked validates and records a commit: registration, stake and
// version key; commit rate limit and pending count; then, stricter than the
// chain, the permit and vector checks the reveal will make.
func (s *Chain) commitLocked(hotkey chain.Hotkey, uids []chain.UID, values []uint16, versionKey uint64) (uint64, error) {
	now := s.pendingBlockLocked()
	n, err := s.checkSenderLocked(hotkey, versionKey)
	if err != nil {
		return 0, err
	}
	if n.lastUpdate != 0 && now-n.lastUpdate < s.hp.WeightsRateLimit {
		return 0, fmt.Errorf("%w (last commit at block %d, now %d, limit %d blocks)",
			chain.ErrCommittingWeightsTooFast, n.lastUpdate, now, s.hp.WeightsRateLimit)
	}
	pending := 0
	for _, c := range s.commits {
		if c.hotkey == hotkey {
			pending++
		}
	}
	if pending >= MaxUnrevealedCommits {
		return 0, fmt.Errorf("%w (%d pending)", chain.ErrTooManyUnrevealedCommits, pending)
	}
	if _, err := s.checkVectorLocked(hotkey, n, uids, values); err != nil {
		return 0, err
	}
	epoch := chain.EpochIndex(now, s.netuid, s.hp.Tempo)
	reveal := chain.EpochStart(epoch+s.hp.RevealPeriodEpochs, s.netuid, s.hp.Tempo)
	s.commits = append(s.commits, commit{
		hotkey:      hotkey,
		uids:        slices.Clone(uids),
		values:      slices.Clone(values),
		versionKey:  versionKey,
		block:       now,
		revealBlock: reveal,
	})
	n.lastUpdate = now
	s.dirty = true
	return reveal, nil
}

// checkWeightsLocked is every set_weights check except the rate limit, as
// a reveal makes them.
func (s *Chain) checkWeightsLocked(hotkey chain.Hotkey, uids []chain.UID, values []uint16, versionKey uint64) (*neuron, error) {
	n, err := s.checkSenderLocked(hotkey, versionKey)
	if err != nil {
		return nil, err
	}
	return s.checkVectorLocked(hotkey, n, uids, values)
}

// checkSenderLocked is step 2 of set_weights: registered, enough stake,
// version key.
func (s *Chain) checkSenderLocked(hotkey chain.Hotkey, versionKey uint64) (*neuron, error) {
	uid, ok := s.uids[hotkey]
	if !ok {
		return nil, fmt.Errorf("%w (hotkey %s, netuid %d)", chain.ErrNotRegistered, hotkey, s.netuid)
	}
	n := s.neurons[uid]
	if n.stake < s.hp.StakeThreshold {
		return nil, fmt.Errorf("%w (stake %d rao, threshold %d rao)", chain.ErrNotEnoughStake, n.stake, s.hp.StakeThreshold)
	}
	if s.hp.WeightsVersionKey != 0 && versionKey < s.hp.WeightsVersionKey {
		return nil, fmt.Errorf("%w (sent %d, subnet requires >= %d)", chain.ErrIncorrectWeightVersionKey, versionKey, s.hp.WeightsVersionKey)
	}
	return n, nil
}

// checkVectorLocked is steps 4 to 6 of set_weights: permit, duplicate and
// unknown uids, minimum length, maximum weight. A pure self-weight (one
// entry, the sender's own uid) needs no permit and is exempt from the
// length and max-weight rules.
func (s *Chain) checkVectorLocked(hotkey chain.Hotkey, n *neuron, uids []chain.UID, values []uint16) (*neuron, error) {
	if len(uids) != len(values) {
		return nil, fmt.Errorf("%w (%d uids, %d values)", ErrWeightVecNotEqualSize, len(uids), len(values))
	}
	self := s.uids[hotkey]
	selfWeight := len(uids) == 1 && uids[0] == self
	if !selfWeight && !n.permit {
		return nil, fmt.Errorf("%w (hotkey %s, uid %d)", chain.ErrNoValidatorPermit, hotkey, self)
	}
	seen := make(map[chain.UID]bool, len(uids))
	for _, u := range uids {
		if seen[u] {
			return nil, fmt.Errorf("%w (uid %d)", chain.ErrDuplicateUIDs, u)
		}
		seen[u] = true
	}
	for _, u := range uids {
		if int(u) >= len(s.neurons) || s.neurons[u] == nil {
			return nil, fmt.Errorf("%w (uid %d)", chain.ErrUIDVecContainInvalidOne, u)
		}
	}
	if selfWeight {
		return n, nil
	}
	if need := chain.MinWeights(s.hp, len(s.uids)); len(uids) < need {
		return nil, fmt.Errorf("%w (%d weights, need %d)", chain.ErrWeightVecLengthIsLow, len(uids), need)
	}
	if !chain.WithinMaxWeight(values, s.hp.MaxWeightsLimit) {
		return nil, fmt.Errorf("%w (limit %d/65535)", chain.ErrMaxWeightExceeded, s.hp.MaxWeightsLimit)
	}
	return n, nil
}

func weightMap(uids []chain.UID, values []uint16) map[chain.UID]uint16 {
	m := make(map[chain.UID]uint16, len(uids))
	for i, u := range uids {
		m[u] = values[i]
	}
	return m
}

// ServeAxon implements chain.Chain with serve_axon's checks in the chain's
// order: registered, ip (not unset, not 127.0.0.1 or ::1 unless
// RelaxedAxonIPs; 0.0.0.0 and private ranges pass), rate limit (skipped for
// a neuron that never served), port not 0.
func (s *Chain) ServeAxon(ctx context.Context, hotkey chain.Hotkey, netuid chain.NetUID, ip netip.Addr, port uint16) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.faultLocked(KindServeAxon); err != nil {
		return err
	}
	if err := s.checkNetUID(netuid); err != nil {
		return err
	}
	uid, ok := s.uids[hotkey]
	if !ok {
		return fmt.Errorf("%w (hotkey %s, netuid %d)", chain.ErrNotRegistered, hotkey, netuid)
	}
	n := s.neurons[uid]
	ip = ip.Unmap()
	if !ip.IsValid() {
		return fmt.Errorf("%w (no ip given)", chain.ErrInvalidIPAddress)
	}
	if !s.relaxedIPs && (ip == netip.IPv6Loopback() || ip == netip.AddrFrom4([4]byte{127, 0, 0, 1})) {
		return fmt.Errorf("%w (%s)", chain.ErrInvalidIPAddress, ip)
	}
	now := s.pendingBlockLocked()
	if prev := n.axon.Block; prev != 0 && s.hp.ServingRateLimit != 0 && now-prev < s.hp.ServingRateLimit {
		return fmt.Errorf("%w (served at block %d, now %d, limit %d blocks)", chain.ErrServingRateLimitExceeded, prev, now, s.hp.ServingRateLimit)
	}
	if port == 0 {
		return chain.ErrInvalidPort
	}
	n.axon = chain.AxonInfo{IP: ip, Port: port, Protocol: axonProtocolTCP, Block: now}
	s.dirty = true
	return nil
}

// SetCommitment implements chain.Chain: data of at most
// chain.MaxCommitmentBytes from a registered hotkey replaces its commitment.
func (s *Chain) SetCommitment(ctx context.Context, hotkey chain.Hotkey, netuid chain.NetUID, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.faultLocked(KindSetCommitment); err != nil {
		return err
	}
	if err := s.checkNetUID(netuid); err != nil {
		return err
	}
	if len(data) > chain.MaxCommitmentBytes {
		return fmt.Errorf("%w (%d bytes)", chain.ErrCommitmentTooLarge, len(data))
	}
	if _, ok := s.uids[hotkey]; !ok {
		return fmt.Errorf("%w (hotkey %s, netuid %d)", chain.ErrNotRegistered, hotkey, netuid)
	}
	s.commitments[hotkey] = slices.Clone(data)
	if s.commitments[hotkey] == nil {
		s.commitments[hotkey] = []byte{}
	}
	s.dirty = true
	return nil
}
