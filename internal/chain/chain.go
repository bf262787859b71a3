// Package chain defines what horde's roles need from the Bittensor chain
// (subtensor): the head block, the metagraph at a block, a subnet's
// hyperparameters, weights, axons and commitments.
//
// It holds types, the [Chain] interface, the chain's error names and the pure
// helpers every backend shares ([NormalizeWeights], [EpochBounds]); it imports
// no backend. The embedded simulator lives in chain/sim; production backends
// (a Pylon client plus direct reads, see reference/chain.md §8c) come later.
// Nothing outside internal/chain may know which backend runs.
//
// Hotkeys and coldkeys are SS58 strings here. Parsing and verifying them is
// the keys package's job; this package never looks inside them.
package chain

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"time"
)

// NetUID identifies a subnet. ComputeHorde is subnet 12 on finney.
type NetUID uint16

// UID is a neuron's slot on a subnet. A uid is reused when its neuron is
// deregistered, so weights must be translated from hotkeys to uids at the
// block used for scoring, never cached across blocks.
type UID uint16

// Hotkey is an SS58 address of a hotkey (the key a neuron signs with).
type Hotkey string

// Coldkey is an SS58 address of a coldkey (the key that owns hotkeys).
type Coldkey string

// Block identifies one block of the chain.
type Block struct {
	Number uint64
	Hash   [32]byte
	// Time is the block's timestamp (pallet Timestamp, millisecond precision
	// on the real chain).
	Time time.Time
}

// AxonInfo is the address a neuron announced with serve_axon.
// The zero value means "never served".
type AxonInfo struct {
	// IP is the announced address; invalid (zero) when never served.
	IP   netip.Addr
	Port uint16
	// Protocol is the chain's protocol byte (4 = TCP as the Python SDK sends).
	Protocol uint8
	Version  uint32
	// Block is the block the axon was last served at; 0 if never.
	Block uint64
}

// IsServing reports whether the axon announces a reachable address, which is
// upstream's is_serving: the ip is neither unset nor 0.0.0.0 / ::.
func (a AxonInfo) IsServing() bool {
	return a.IP.IsValid() && !a.IP.IsUnspecified()
}

// AddrPort returns the axon's address and port.
func (a AxonInfo) AddrPort() netip.AddrPort { return netip.AddrPortFrom(a.IP, a.Port) }

// Neuron is one registered hotkey on a subnet, as of some block.
type Neuron struct {
	UID     UID
	Hotkey  Hotkey
	Coldkey Coldkey
	Active  bool
	Axon    AxonInfo
	// ValidatorPermit is recomputed by the chain at each epoch: the top
	// MaxValidators neurons by stake hold one.
	ValidatorPermit bool
	// Stake is the neuron's total stake in rao (1 TAO/alpha = 1e9 rao).
	Stake uint64
	// LastUpdate is the block of the neuron's last weights (or, with
	// commit-reveal, its last commit); 0 if never.
	LastUpdate   uint64
	RegisteredAt uint64
}

// Metagraph is the state of a subnet's neurons at one block.
// A Metagraph returned by a [Chain] is the caller's to keep and modify.
type Metagraph struct {
	NetUID NetUID
	Block  Block
	// Neurons are sorted by uid. UIDs are usually contiguous from 0, but a
	// backend may leave gaps (the simulator's Deregister does).
	Neurons []Neuron
}

// ByHotkey returns the neuron registered with hotkey h.
func (m *Metagraph) ByHotkey(h Hotkey) (Neuron, bool) {
	for _, n := range m.Neurons {
		if n.Hotkey == h {
			return n, true
		}
	}
	return Neuron{}, false
}

// ByUID returns the neuron at uid.
func (m *Metagraph) ByUID(uid UID) (Neuron, bool) {
	i, ok := slices.BinarySearchFunc(m.Neurons, uid, func(n Neuron, u UID) int { return cmp.Compare(n.UID, u) })
	if !ok {
		return Neuron{}, false
	}
	return m.Neurons[i], true
}

// Validators returns the neurons holding a validator permit, by stake
// descending (ties by uid ascending), as Pylon's validators endpoint does.
func (m *Metagraph) Validators() []Neuron {
	var vs []Neuron
	for _, n := range m.Neurons {
		if n.ValidatorPermit {
			vs = append(vs, n)
		}
	}
	slices.SortStableFunc(vs, func(a, b Neuron) int {
		if c := cmp.Compare(b.Stake, a.Stake); c != 0 {
			return c
		}
		return cmp.Compare(a.UID, b.UID)
	})
	return vs
}

// Hyperparams are the subnet settings roles act on (reference/chain.md §3.4,
// §3.6). Block counts are in blocks.
type Hyperparams struct {
	// Tempo is the number of blocks between epochs (an epoch is tempo+1
	// blocks long; see [EpochBounds]). 0 means epochs never run.
	Tempo uint16
	// WeightsRateLimit is the minimum number of blocks between two weight
	// settings (or commits) of one neuron.
	WeightsRateLimit uint64
	// WeightsVersionKey is the minimum version_key set_weights accepts;
	// 0 accepts any.
	WeightsVersionKey uint64
	// MaxWeightsLimit caps the largest weight's share of the sum, as a
	// fraction of 65535; 65535 means no cap.
	MaxWeightsLimit uint16
	// MinAllowedWeights is the minimum number of non-zero weights, capped by
	// the number of neurons on the subnet.
	MinAllowedWeights uint16
	// MaxValidators is the number of validator permits handed out at each
	// epoch (MaxAllowedValidators).
	MaxValidators uint16
	// ServingRateLimit is the minimum number of blocks between two
	// serve_axon calls of one neuron; 0 means no limit.
	ServingRateLimit uint64
	// CommitRevealEnabled makes weights go through commit-reveal: they are
	// committed now and applied RevealPeriodEpochs epochs later.
	CommitRevealEnabled bool
	// RevealPeriodEpochs is the number of epochs between a commit and its
	// reveal.
	RevealPeriodEpochs uint64
	// ImmunityPeriod is the number of blocks after registration during which
	// a neuron cannot be replaced by a new registration.
	ImmunityPeriod uint16
	// StakeThreshold is the minimum stake in rao to set weights
	// (the chain's global StakeThreshold); 0 means none.
	StakeThreshold uint64
}

// DefaultHyperparams returns subtensor's default values for a new subnet
// (reference/chain.md §3.6): tempo 360, weights rate limit 100, serving rate
// limit 50, 128 validators, MinAllowedWeights 1024, immunity 4096,
// commit-reveal on with a reveal period of 1 epoch, no max-weight cap.
func DefaultHyperparams() Hyperparams {
	return Hyperparams{
		Tempo:               360,
		WeightsRateLimit:    100,
		WeightsVersionKey:   0,
		MaxWeightsLimit:     65535,
		MinAllowedWeights:   1024,
		MaxValidators:       128,
		ServingRateLimit:    50,
		CommitRevealEnabled: true,
		RevealPeriodEpochs:  1,
		ImmunityPeriod:      4096,
		StakeThreshold:      0,
	}
}

// WeightsReceipt tells what a [Chain.SetWeights] call was accepted as.
type WeightsReceipt struct {
	// Block is the block the extrinsic is included in.
	Block uint64
	// CommitReveal is true when the weights were committed rather than set.
	CommitReveal bool
	// RevealBlock is the first block at which the weights are in effect:
	// Block without commit-reveal, the start of the reveal epoch with it.
	RevealBlock uint64
	// UIDs and Values are the vector sent, sorted by uid (see
	// [NormalizeWeights]).
	UIDs   []UID
	Values []uint16
	// Unknown lists the hotkeys of the request that are not registered on the
	// subnet, sorted; they were left out of the vector.
	Unknown []Hotkey
	// Pending is true when the backend only scheduled the weights (Pylon sets
	// or commits them in the background, retrying until the epoch ends): the
	// chain's verdict comes later, through [WeightsStatuser] where the backend
	// has it. UIDs and Values are then what the backend is expected to send.
	Pending bool
}

// WeightsStatus is a backend's word on one epoch's weights.
type WeightsStatus struct {
	// Submitted is true once the weights for the epoch are set or committed.
	Submitted bool
	// Scheduled is true when the backend holds weights for the epoch, in work or
	// done; false means it has none (it restarted, say) and they must be sent
	// again.
	Scheduled bool
	// Done is true when the backend stopped trying for the epoch (landed,
	// epoch over, or failed). Err says why the weights have not landed: the
	// final reason when Done, else the chain's last refusal while the backend
	// keeps trying.
	Done bool
	Err  error
}

// WeightsStatuser is implemented by backends that schedule weights and can
// tell later whether they landed (Pylon releases with a weights status
// endpoint).
type WeightsStatuser interface {
	// WeightsStatus reports on the backend identity's weights for the epoch
	// holding block.
	// A backend version without the endpoint returns an error wrapping
	// [ErrNotSupported].
	WeightsStatus(ctx context.Context, block uint64) (WeightsStatus, error)
}

// Chain is what horde's roles need from the chain. Roles take a Chain in
// their constructor, read a snapshot (head, metagraph, hyperparameters) once
// per cycle and pass plain values to pure functions.
//
// Implementations are safe for concurrent use. Every method honours ctx.
// Reads return [ErrUnavailable] (wrapped) when the backend cannot be reached
// and [ErrUnknownBlock] for a block the backend no longer (or not yet) has.
//
// Identity: the write methods take the hotkey that signs them. The simulator
// has no keys and trusts the parameter; a production backend is bound to one
// signing identity (a wallet hotkey, or a Pylon identity token) and rejects a
// hotkey that is not its own.
//
// Writes are extrinsics: they are validated with the chain's rules
// (reference/chain.md §3.2) and included in the next block, so their effect is
// visible from the block after the current head.
type Chain interface {
	// Head returns the newest block.
	Head(ctx context.Context) (Block, error)
	// Metagraph returns the subnet's neurons at block at; at == 0 means the
	// newest block.
	Metagraph(ctx context.Context, netuid NetUID, at uint64) (*Metagraph, error)
	// Hyperparams returns the subnet's current hyperparameters.
	Hyperparams(ctx context.Context, netuid NetUID) (Hyperparams, error)
	// SetWeights sets hotkey's weights, translating hotkeys to uids at the
	// newest block and quantising with [NormalizeWeights]. Hotkeys that are
	// not registered are left out and listed in the receipt. With
	// commit-reveal enabled the weights are committed and applied at the
	// reveal epoch; without, they are set at once.
	SetWeights(ctx context.Context, hotkey Hotkey, netuid NetUID, weights map[Hotkey]float64, versionKey uint64) (WeightsReceipt, error)
	// ServeAxon announces hotkey's address (serve_axon).
	ServeAxon(ctx context.Context, hotkey Hotkey, netuid NetUID, ip netip.Addr, port uint16) error
	// SetCommitment replaces hotkey's commitment on the subnet. data is at
	// most [MaxCommitmentBytes] long.
	SetCommitment(ctx context.Context, hotkey Hotkey, netuid NetUID, data []byte) error
	// Commitments returns every hotkey's commitment on the subnet at the
	// newest block.
	Commitments(ctx context.Context, netuid NetUID) (map[Hotkey][]byte, error)
	// WatchHeads returns a channel that receives new heads, starting with the
	// current one, and is closed when ctx is done. A slow reader misses
	// intermediate blocks but always receives the newest.
	WatchHeads(ctx context.Context) <-chan Block
}

// MaxCommitmentBytes is the largest commitment horde writes. It is
// ComputeHorde's rule for the manifest envelope, not the chain's own limit.
const MaxCommitmentBytes = 128
