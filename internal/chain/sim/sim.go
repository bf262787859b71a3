// Package sim is an embedded, deterministic simulation of one Bittensor
// subnet that implements [chain.Chain]. It is the default chain of `horde dev`
// and of tests.
//
// Blocks are produced only by [Chain.Advance] (tests) or [Chain.Run] (local
// stacks, one block per BlockTime on an injected clock). Block n has hash
// blake2b-256(seed ‖ n as 8 bytes big-endian) and time Start + n×BlockTime.
//
// Every write, an extrinsic (SetWeights, ServeAxon, SetCommitment) or an
// administrative change (Register, Deregister, SetStake, SetHyperparams), is
// validated against the pending state and included in the next block: its
// effect is visible once the head has advanced. Extrinsics get the chain's
// checks in the chain's order (reference/chain.md §3.2) and return the errors
// of package chain. Epoch steps (validator permits, commit-reveal reveals)
// run at the epoch boundaries of [chain.EpochBounds].
//
// Metagraphs of the last History blocks are kept as copy-on-write snapshots;
// older blocks return [chain.ErrUnknownBlock], like a lite node.
//
// A Chain is safe for concurrent use and starts no goroutine unless Run is
// called.
package sim

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/computehorde/horde/internal/chain"
)

// Defaults for zero Genesis fields.
const (
	DefaultMaxNeurons = 256
	DefaultBlockTime  = 12 * time.Second
	DefaultHistory    = 1000
	// MaxUnrevealedCommits is the chain's cap on pending commits per hotkey.
	MaxUnrevealedCommits = 10
)

// DefaultStart is the time of block 0 when Genesis.Start is zero.
var DefaultStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Genesis configures a simulated subnet.
type Genesis struct {
	// NetUID is the one subnet the simulation runs; calls for another netuid
	// fail with chain.ErrSubnetNotExists.
	NetUID chain.NetUID
	// Hyperparams are used as given, field by field (a zero field is a zero
	// value, not a default), except that an all-zero struct means
	// DefaultHyperparams(). For mainnet-like rules start from
	// chain.DefaultHyperparams(). Tempo must be > 0.
	Hyperparams chain.Hyperparams
	// MaxNeurons is the number of uid slots (MaxAllowedUids); 0 means 256.
	MaxNeurons int
	// BlockTime is the time between blocks; 0 means 12s.
	BlockTime time.Duration
	// Start is the time of block 0; zero means DefaultStart.
	Start time.Time
	// Seed makes block hashes distinct between simulations; nil means
	// "horde-sim".
	Seed []byte
	// History is the number of blocks whose metagraph stays readable;
	// 0 means 1000.
	History int
	// RelaxedAxonIPs lets ServeAxon announce 127.0.0.1 and ::1, which the
	// chain rejects; for local stacks on one machine.
	RelaxedAxonIPs bool
	// Clock drives Run; nil means the real clock. Unused by Advance.
	Clock Clock
	// Neurons are registered at block 0 with uids in order from 0.
	Neurons []NeuronSpec
}

// NeuronSpec is one neuron registered at genesis.
type NeuronSpec struct {
	Hotkey  chain.Hotkey // SS58, required and unique
	Coldkey chain.Coldkey
	Stake   uint64 // rao
	// ValidatorPermit, when set, pins the neuron's permit to this value for
	// as long as it stays registered; nil means the epoch rule decides
	// (top MaxValidators by stake). A pinned neuron still takes its place in
	// the stake ranking.
	ValidatorPermit *bool
	// Axon is served as given at genesis, without serve_axon's checks.
	Axon chain.AxonInfo
}

// DefaultHyperparams returns the simulator's defaults, for tests and local
// stacks, in the spirit of subtensor's fast-runtime: tempo 10, rate limits of
// 2 blocks, one required weight, commit-reveal off, 64 validators, immunity
// 20 blocks. (chain.DefaultHyperparams has the mainnet defaults.)
func DefaultHyperparams() chain.Hyperparams {
	return chain.Hyperparams{
		Tempo:               10,
		WeightsRateLimit:    2,
		WeightsVersionKey:   0,
		MaxWeightsLimit:     chain.U16Max,
		MinAllowedWeights:   1,
		MaxValidators:       64,
		ServingRateLimit:    2,
		CommitRevealEnabled: false,
		RevealPeriodEpochs:  1,
		ImmunityPeriod:      20,
	}
}

// Errors of the simulator's administrative calls.
var (
	ErrAlreadyRegistered = errors.New("sim: HotKeyAlreadyRegisteredInSubNet: the hotkey is already registered; " +
		"deregister it first or use another hotkey")
	ErrNoSlotAvailable = errors.New("sim: no uid available: every slot is taken by a neuron still in its immunity period; " +
		"advance past ImmunityPeriod, raise MaxNeurons or deregister a neuron")
	ErrWeightVecNotEqualSize = errors.New("sim: WeightVecNotEqualSize: uids and values differ in length; send one value per uid")
)

// Chain is a simulated subnet implementing chain.Chain. Create it with [New].
type Chain struct {
	// Fixed at New.
	netuid     chain.NetUID
	maxNeurons int
	blockTime  time.Duration
	start      time.Time
	seed       []byte
	relaxedIPs bool
	clock      Clock

	mu sync.Mutex
	// Pending state, which the next block publishes; guarded by mu.
	hp          chain.Hyperparams
	neurons     []*neuron // by uid; nil is a free slot
	uids        map[chain.Hotkey]chain.UID
	commitments map[chain.Hotkey][]byte
	commits     []commit // unrevealed, in submission order
	revealErrs  map[chain.Hotkey]error
	dirty       bool // pending state differs from pub

	// Published state of the head block; guarded by mu, never mutated once
	// published (readers get copies).
	head chain.Block
	pub  published
	ring []snapshot // indexed by block number % len(ring)

	faults  map[string]*fault
	subs    map[*subscriber]struct{}
	running bool
}

var _ chain.Chain = (*Chain)(nil)

type neuron struct {
	hotkey         chain.Hotkey
	coldkey        chain.Coldkey
	stake          uint64
	axon           chain.AxonInfo
	permit         bool
	permitOverride *bool
	lastUpdate     uint64
	registeredAt   uint64
	weights        map[chain.UID]uint16 // nil if never set
}

type commit struct {
	hotkey      chain.Hotkey
	uids        []chain.UID
	values      []uint16
	versionKey  uint64
	block       uint64
	revealBlock uint64
}

type published struct {
	hp          chain.Hyperparams
	neurons     []chain.Neuron // sorted by uid
	weights     map[chain.Hotkey]map[chain.UID]uint16
	commitments map[chain.Hotkey][]byte
}

type snapshot struct {
	block   chain.Block
	neurons []chain.Neuron // shared between snapshots while unchanged
}

// New creates a simulated subnet at block 0 from g.
func New(g Genesis) (*Chain, error) {
	if g.Hyperparams == (chain.Hyperparams{}) {
		g.Hyperparams = DefaultHyperparams()
	}
	if err := validateHyperparams(g.Hyperparams); err != nil {
		return nil, err
	}
	s := &Chain{
		netuid:      g.NetUID,
		maxNeurons:  cmp.Or(g.MaxNeurons, DefaultMaxNeurons),
		blockTime:   cmp.Or(g.BlockTime, DefaultBlockTime),
		start:       g.Start,
		seed:        g.Seed,
		relaxedIPs:  g.RelaxedAxonIPs,
		clock:       g.Clock,
		hp:          g.Hyperparams,
		uids:        map[chain.Hotkey]chain.UID{},
		commitments: map[chain.Hotkey][]byte{},
		revealErrs:  map[chain.Hotkey]error{},
		faults:      map[string]*fault{},
		subs:        map[*subscriber]struct{}{},
	}
	if s.start.IsZero() {
		s.start = DefaultStart
	}
	if s.seed == nil {
		s.seed = []byte("horde-sim")
	}
	if s.clock == nil {
		s.clock = realClock{}
	}
	if s.maxNeurons < 0 || s.maxNeurons > 1<<16 {
		return nil, fmt.Errorf("sim: genesis MaxNeurons %d is outside 1..65536; fix the genesis", g.MaxNeurons)
	}
	if s.blockTime < 0 {
		return nil, fmt.Errorf("sim: genesis BlockTime %v is negative; fix the genesis", g.BlockTime)
	}
	history := cmp.Or(g.History, DefaultHistory)
	if history < 1 {
		return nil, fmt.Errorf("sim: genesis History %d must be >= 1; fix the genesis", g.History)
	}
	if len(g.Neurons) > s.maxNeurons {
		return nil, fmt.Errorf("sim: genesis has %d neurons but MaxNeurons is %d; raise MaxNeurons", len(g.Neurons), s.maxNeurons)
	}
	for i, spec := range g.Neurons {
		if spec.Hotkey == "" {
			return nil, fmt.Errorf("sim: genesis neuron %d has no hotkey; set NeuronSpec.Hotkey", i)
		}
		if _, dup := s.uids[spec.Hotkey]; dup {
			return nil, fmt.Errorf("sim: genesis neuron %d: hotkey %s appears twice; give each neuron its own hotkey", i, spec.Hotkey)
		}
		s.uids[spec.Hotkey] = chain.UID(i)
		s.neurons = append(s.neurons, &neuron{
			hotkey:         spec.Hotkey,
			coldkey:        spec.Coldkey,
			stake:          spec.Stake,
			axon:           spec.Axon,
			permitOverride: clonePtr(spec.ValidatorPermit),
		})
	}
	s.ring = make([]snapshot, history)
	s.updatePermitsLocked()
	s.dirty = true
	s.publishLocked(0)
	return s, nil
}

func validateHyperparams(hp chain.Hyperparams) error {
	if hp.Tempo == 0 {
		return errors.New("sim: Hyperparams.Tempo is 0, so epochs would never run; start from chain.DefaultHyperparams() or sim.DefaultHyperparams()")
	}
	return nil
}

// Head returns the newest block.
func (s *Chain) Head(ctx context.Context) (chain.Block, error) {
	if err := ctx.Err(); err != nil {
		return chain.Block{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.faultLocked(KindHead); err != nil {
		return chain.Block{}, err
	}
	return s.head, nil
}

// Metagraph returns the subnet's neurons at block at (0 = the head).
// Blocks more than History blocks old, or after the head, return
// chain.ErrUnknownBlock.
func (s *Chain) Metagraph(ctx context.Context, netuid chain.NetUID, at uint64) (*chain.Metagraph, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.faultLocked(KindMetagraph); err != nil {
		return nil, err
	}
	if err := s.checkNetUID(netuid); err != nil {
		return nil, err
	}
	if at == 0 {
		at = s.head.Number
	}
	if at > s.head.Number {
		return nil, fmt.Errorf("%w (block %d is after the head %d)", chain.ErrUnknownBlock, at, s.head.Number)
	}
	snap := s.ring[at%uint64(len(s.ring))]
	if s.head.Number-at >= uint64(len(s.ring)) || snap.block.Number != at {
		return nil, fmt.Errorf("%w (block %d is pruned; the simulator keeps the last %d blocks)", chain.ErrUnknownBlock, at, len(s.ring))
	}
	return &chain.Metagraph{NetUID: s.netuid, Block: snap.block, Neurons: slices.Clone(snap.neurons)}, nil
}

// Hyperparams returns the subnet's hyperparameters at the head.
func (s *Chain) Hyperparams(ctx context.Context, netuid chain.NetUID) (chain.Hyperparams, error) {
	if err := ctx.Err(); err != nil {
		return chain.Hyperparams{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.faultLocked(KindHyperparams); err != nil {
		return chain.Hyperparams{}, err
	}
	if err := s.checkNetUID(netuid); err != nil {
		return chain.Hyperparams{}, err
	}
	return s.pub.hp, nil
}

// Commitments returns every commitment at the head, including those of
// hotkeys deregistered since they committed (the chain keys commitments by
// account, not by uid).
func (s *Chain) Commitments(ctx context.Context, netuid chain.NetUID) (map[chain.Hotkey][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.faultLocked(KindCommitments); err != nil {
		return nil, err
	}
	if err := s.checkNetUID(netuid); err != nil {
		return nil, err
	}
	out := make(map[chain.Hotkey][]byte, len(s.pub.commitments))
	for h, d := range s.pub.commitments {
		out[h] = slices.Clone(d)
	}
	return out, nil
}

// Weights returns the weights hotkey has in effect at the head, by uid; an
// empty map if it has none. For tests: the chain.Chain interface has no read
// of weights because roles need none.
func (s *Chain) Weights(netuid chain.NetUID, hotkey chain.Hotkey) (map[chain.UID]uint16, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkNetUID(netuid); err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(s.pub.neurons, func(n chain.Neuron) bool { return n.Hotkey == hotkey }) {
		return nil, fmt.Errorf("%w (hotkey %s at block %d)", chain.ErrNotRegistered, hotkey, s.head.Number)
	}
	return maps.Clone(s.pub.weights[hotkey]), nil
}

// PendingCommits returns the number of hotkey's weight commits not yet
// revealed.
func (s *Chain) PendingCommits(hotkey chain.Hotkey) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.commits {
		if c.hotkey == hotkey {
			n++
		}
	}
	return n
}

// RevealError returns why hotkey's last reveal was dropped, or nil if it
// was applied (or there was none). The chain drops an invalid reveal without
// telling the committer; this is the simulator's window into that.
func (s *Chain) RevealError(hotkey chain.Hotkey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revealErrs[hotkey]
}

func (s *Chain) checkNetUID(netuid chain.NetUID) error {
	if netuid != s.netuid {
		return fmt.Errorf("%w (netuid %d; the simulator runs netuid %d)", chain.ErrSubnetNotExists, netuid, s.netuid)
	}
	return nil
}

// blockAt returns the header of block n.
func (s *Chain) blockAt(n uint64) chain.Block {
	var buf []byte
	buf = append(buf, s.seed...)
	buf = binary.BigEndian.AppendUint64(buf, n)
	return chain.Block{
		Number: n,
		Hash:   blake2b.Sum256(buf),
		Time:   s.start.Add(time.Duration(n) * s.blockTime),
	}
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// NetUID is the subnet the simulation runs.
func (s *Chain) NetUID() chain.NetUID { return s.netuid }

// Now returns the head and the hyperparameters in effect without going through injected
// faults: for servers and admin tools wrapping the simulator, whose own bookkeeping is not
// a chain call.
func (s *Chain) Now() (chain.Block, chain.Hyperparams) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.head, s.pub.hp
}
