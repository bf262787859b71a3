// Package validator is the ComputeHorde validator role. This first cut drives one job on one
// miner over the upstream websocket protocol: authenticate, send the job with signed
// receipts, follow the stages under upstream's cumulative deadlines, and record the outcome.
package validator

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/clock"
	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/scoring"
	"github.com/computehorde/horde/internal/store"
)

// Config holds a validator's dependencies and settings.
type Config struct {
	Keypair *keys.Keypair // the validator's hotkey; required
	Chain   chain.Chain   // writes (weights); required
	// Metagraph is the process's metagraph cache over Chain, kept fresh by its owner (its
	// Run); jobs find their miners in it, so no job waits on the chain. Required.
	Metagraph *chain.MetagraphCache
	NetUID    chain.NetUID      // subnet the validator works on
	Store     *store.DB         // required
	Classes   *hwclass.Registry // nil means hwclass.Default()

	// ReservationTimeLimit bounds the wait for a miner's accept or decline; zero means
	// upstream's 7 s. It is also the JobStarted receipt's ttl.
	ReservationTimeLimit time.Duration
	// ExecutorStartupTimeLimit is added to the class's spin-up time for the executor-ready
	// wait; zero means upstream's 5 s.
	ExecutorStartupTimeLimit time.Duration
	// Leeway is sent to the executor as allowed_leeway and added to the validator's own
	// deadline; zero means upstream's 5 s.
	Leeway time.Duration
	// ScoreWindow is the stretch of countersigned work each tempo's weights reward; zero
	// means DefaultScoreWindow.
	ScoreWindow time.Duration
	// BenchImage is the benchmark job's image (jobs/bench); empty disables benchmarks.
	// BenchRate (hashes per second of the reference machine) and BenchSeconds (the
	// reference duration) size each run; zero means DefaultBenchRate and DefaultBenchSeconds.
	BenchImage   string
	BenchRate    float64
	BenchSeconds int
	// TrustedMiner, when set, re-runs CrossCheckFraction of the completed organic jobs so
	// that their outputs can be compared.
	TrustedMiner       *TrustedMiner
	CrossCheckFraction float64
	// RewardRate is the reward (alpha) per executor-hour of value 1.0 published to miners;
	// zero means DefaultRewardRate.
	RewardRate float64
	// PenaltyFactor multiplies a miner's class multiplier at each decline it is not
	// excused for; zero means DefaultPenaltyFactor. PenaltyHalfLife is how fast a penalty
	// fades; zero means DefaultPenaltyHalfLife.
	PenaltyFactor   float64
	PenaltyHalfLife time.Duration
	// Clock is the time source of every deadline; nil means the real clock.
	Clock  clock.Clock
	Logger *slog.Logger // nil means slog.Default()
}

// Validator drives jobs on miners. It is safe for concurrent use.
type Validator struct {
	cfg         Config
	hotkey      string
	log         *slog.Logger
	manifests   manifestBook                    // the miners' manifests under the 2-hour rule
	penalties   penaltyBook                     // the miners' decline penalties
	demand      demandBook                      // demand per class, for the demand multipliers
	efficiency  efficiencyBook                  // benchmark results per miner and class
	reliability reliabilityBook                 // jobs done against declined or failed, per miner
	cheats      cheatBook                       // cross-check mismatches
	facilitator atomic.Pointer[facilitatorLink] // the facilitator link while it runs
	// rateOverride is SetRewardRate's rate (nil: Config.RewardRate); valuesChanged wakes
	// the miner links to publish it.
	rateOverride  atomic.Pointer[float64]
	valuesChanged signal

	mu       sync.Mutex
	inflight map[scoring.MinerClass]int // this validator's jobs per miner and class; guarded by mu
}

// New validates cfg and returns a validator.
func New(cfg Config) (*Validator, error) {
	switch {
	case cfg.Keypair == nil:
		return nil, errors.New("validator: config: Keypair is required")
	case cfg.Chain == nil:
		return nil, errors.New("validator: config: Chain is required")
	case cfg.Metagraph == nil:
		return nil, errors.New("validator: config: Metagraph is required (a chain.MetagraphCache over Chain, started with its Run)")
	case cfg.Store == nil:
		return nil, errors.New("validator: config: Store is required")
	}
	if cfg.Classes == nil {
		cfg.Classes = hwclass.Default()
	}
	if cfg.ReservationTimeLimit == 0 {
		cfg.ReservationTimeLimit = 7 * time.Second
	}
	if cfg.ExecutorStartupTimeLimit == 0 {
		cfg.ExecutorStartupTimeLimit = 5 * time.Second
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 5 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	hotkey := cfg.Keypair.Public().SS58()
	v := &Validator{cfg: cfg, hotkey: hotkey, log: cfg.Logger.With("role", "validator", "hotkey", hotkey[:10])}
	v.manifests.clock = cfg.Clock
	return v, nil
}

// Hotkey returns the validator's SS58 hotkey.
func (v *Validator) Hotkey() string { return v.hotkey }

// secs converts a whole-second limit to a duration.
func secs(n int) time.Duration { return time.Duration(n) * time.Second }

// errMinerNotServing means the miner has no axon on chain to connect to.
var errMinerNotServing = errors.New("miner has no axon served on chain")

func minerURL(n chain.Neuron) (string, error) {
	if !n.Axon.IsServing() {
		return "", fmt.Errorf("%w: %s", errMinerNotServing, n.Hotkey)
	}
	host := n.Axon.IP.String()
	if n.Axon.IP.Is6() {
		host = "[" + host + "]"
	}
	return fmt.Sprintf("ws://%s:%d", host, n.Axon.Port), nil
}
