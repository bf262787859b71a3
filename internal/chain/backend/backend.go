// Package backend names a chain the same way for every role and opens it: the embedded
// simulated chain, or a Pylon (or `horde chain sim`) server reached with an identity and
// token. Roles register the same flags and environment variables, log which chain they
// use and where its hyperparameters come from, and get a chain.Chain.
package backend

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/pylon"
	"github.com/computehorde/horde/internal/chain/sim"
	"github.com/computehorde/horde/internal/clock"
	"github.com/computehorde/horde/internal/config"
)

// DefaultNetUID is ComputeHorde's subnet on finney.
const DefaultNetUID = 12

// Settings name a chain.
type Settings struct {
	// URL is the Pylon or `horde chain sim` server; empty means an embedded simulated
	// chain private to this process.
	URL string
	// Identity and Token log in to the server as a Pylon identity (needed for writes).
	Identity string
	Token    string
	// OpenAccessToken is the server's open access token, if it checks one.
	OpenAccessToken string
	NetUID          uint
	// Hyperparameters used when the server does not serve them (Pylon does not), with
	// finney's values as defaults.
	Tempo              uint
	WeightsRateLimit   uint
	CommitReveal       bool
	CommitRevealPeriod uint
	// PollInterval is how often the server is asked for the head and the metagraph; zero
	// means a block of finney (12 s). A chain with faster blocks needs less than a tempo, or
	// the roles see no head in some tempos (a validator then sets no weights in them).
	PollInterval time.Duration
}

// Defaults are finney's: subnet 12 and subtensor's default hyperparameters.
func Defaults() Settings {
	hp := chain.DefaultHyperparams()
	return Settings{
		NetUID:             DefaultNetUID,
		Tempo:              uint(hp.Tempo),
		WeightsRateLimit:   uint(hp.WeightsRateLimit),
		CommitReveal:       hp.CommitRevealEnabled,
		CommitRevealPeriod: uint(hp.RevealPeriodEpochs),
	}
}

// Environment variables read by [Settings.ApplyEnv]; flags override them.
const (
	EnvURL             = "HORDE_CHAIN"
	EnvIdentity        = "HORDE_CHAIN_IDENTITY"
	EnvToken           = "HORDE_CHAIN_TOKEN"
	EnvOpenAccessToken = "HORDE_CHAIN_OPEN_ACCESS_TOKEN"
	EnvNetUID          = "HORDE_NETUID"
)

// ApplyEnv sets what the environment names; call it before Register so flags win.
func (s *Settings) ApplyEnv(getenv func(string) string) error {
	for env, dst := range map[string]*string{
		EnvURL: &s.URL, EnvIdentity: &s.Identity, EnvToken: &s.Token, EnvOpenAccessToken: &s.OpenAccessToken,
	} {
		if v := getenv(env); v != "" {
			*dst = v
		}
	}
	if v := getenv(EnvNetUID); v != "" {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return fmt.Errorf("$%s=%q is not a netuid (0..65535)", EnvNetUID, v)
		}
		s.NetUID = uint(n)
	}
	return nil
}

// Register adds the chain flags to fs, with s's current values as defaults.
func (s *Settings) Register(fs *flag.FlagSet) {
	fs.StringVar(&s.URL, "chain", s.URL, "Pylon or `horde chain sim` URL, e.g. http://127.0.0.1:8000; empty: an embedded simulated chain of this process only ($"+EnvURL+")")
	fs.StringVar(&s.Identity, "chain-identity", s.Identity, "Pylon identity to log in as; writes need one ($"+EnvIdentity+")")
	fs.Var((*secret)(&s.Token), "chain-token", "the identity's token; prefer $"+EnvToken+", which stays out of process listings")
	fs.Var((*secret)(&s.OpenAccessToken), "chain-open-access-token", "the server's open access token, if it checks one ($"+EnvOpenAccessToken+")")
	fs.UintVar(&s.NetUID, "netuid", s.NetUID, "subnet (ComputeHorde is 12 on finney) ($"+EnvNetUID+")")
	fs.UintVar(&s.Tempo, "tempo", s.Tempo, "subnet tempo in blocks, used when the chain server does not serve hyperparameters (Pylon does not)")
	fs.UintVar(&s.WeightsRateLimit, "weights-rate-limit", s.WeightsRateLimit, "blocks between weight settings, used when the chain server does not serve hyperparameters")
	fs.BoolVar(&s.CommitReveal, "commit-reveal", s.CommitReveal, "whether the subnet uses commit-reveal weights, used when the chain server does not serve hyperparameters")
	fs.UintVar(&s.CommitRevealPeriod, "commit-reveal-period", s.CommitRevealPeriod, "epochs between a weights commit and its reveal, used when the chain server does not serve hyperparameters")
}

// secret is a flag value that never shows itself, so a token taken from the environment
// does not appear in --help as a default.
type secret string

func (s *secret) String() string     { return "" }
func (s *secret) Set(v string) error { *s = secret(v); return nil }

// String describes the settings for a start-up log; tokens are masked.
func (s Settings) String() string {
	if s.URL == "" {
		return fmt.Sprintf("embedded simulated chain, netuid %d", s.NetUID)
	}
	id := "open access"
	if s.Identity != "" {
		id = "identity " + s.Identity + ", token " + mask(s.Token)
	}
	return fmt.Sprintf("%s (%s, netuid %d)", s.URL, id, s.NetUID)
}

func mask(secret string) string {
	if secret == "" {
		return "(none)"
	}
	return "****"
}

func (s Settings) validate() error {
	if s.NetUID > 0xffff {
		return fmt.Errorf("--netuid %d is outside 0..65535", s.NetUID)
	}
	if s.Tempo == 0 || s.Tempo > 0xffff {
		return fmt.Errorf("--tempo %d is outside 1..65535", s.Tempo)
	}
	if s.Identity != "" && s.Token == "" {
		return fmt.Errorf("identity %q has no token; set $%s (or --chain-token)", s.Identity, EnvToken)
	}
	return nil
}

// fallbackHyperparams are the configured hyperparameters over subtensor's defaults.
func (s Settings) fallbackHyperparams() chain.Hyperparams {
	hp := chain.DefaultHyperparams()
	hp.Tempo = uint16(s.Tempo)
	hp.WeightsRateLimit = uint64(s.WeightsRateLimit)
	hp.CommitRevealEnabled = s.CommitReveal
	hp.RevealPeriodEpochs = uint64(s.CommitRevealPeriod)
	return hp
}

// Options are what a role adds to Settings when it opens the chain.
type Options struct {
	// Hotkey is the role's own hotkey: a Pylon identity signing as another is refused at
	// the first write. Empty skips the check.
	Hotkey chain.Hotkey
	Logger *slog.Logger
	// Pylon tunes the Pylon client (retries, poll interval); URL, identity, tokens,
	// netuid, hotkey and hyperparameters come from Settings.
	Pylon pylon.Config
	// WaitForChain makes Open wait, trying again with backoff until ctx ends, while the
	// chain server cannot be reached, as a long-running role should: one started while
	// the server restarts or the network is down would otherwise exit. Errors a retry
	// cannot mend (a wrong token, a netuid mismatch) still end Open at once. One-shot
	// commands leave it off and fail fast.
	WaitForChain bool
	// Clock times the waits of WaitForChain; nil is the real clock.
	Clock clock.Clock
}

// Backoff of Open's waits for an unreachable chain server (Options.WaitForChain).
const (
	chainWaitFirst = time.Second
	chainWaitMax   = 30 * time.Second
)

// Opened is an open chain and what the role should know about it.
type Opened struct {
	Chain  chain.Chain
	NetUID chain.NetUID
	// Shared is false for an embedded simulated chain, which no other process sees.
	Shared bool
	// Interval is how often a metagraph cache should poll it; 0 means it pushes heads
	// (chain.Chain.WatchHeads) cheaply.
	Interval time.Duration
	// HyperparamsSource says where hyperparameters come from.
	HyperparamsSource string
}

// Open opens the chain s names and logs which one it is and where its hyperparameters come
// from.
func Open(ctx context.Context, s Settings, o Options) (*Opened, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("chain settings: %w", err)
	}
	if s.URL == "" {
		c, err := sim.New(sim.Genesis{NetUID: chain.NetUID(s.NetUID)})
		if err != nil {
			return nil, err
		}
		op := &Opened{Chain: c, NetUID: chain.NetUID(s.NetUID), HyperparamsSource: "the embedded simulated chain"}
		log.Warn("chain: embedded simulated chain; no other process sees it, pass --chain URL to share one", "netuid", s.NetUID)
		return op, nil
	}
	cfg := o.Pylon
	if s.PollInterval > 0 {
		cfg.PollInterval = s.PollInterval
	}
	cfg.URL, cfg.Identity, cfg.Token, cfg.OpenAccessToken = s.URL, s.Identity, s.Token, s.OpenAccessToken
	cfg.NetUID, cfg.Hotkey, cfg.Hyperparams, cfg.Logger = chain.NetUID(s.NetUID), o.Hotkey, s.fallbackHyperparams(), log
	c, err := pylon.New(ctx, cfg)
	for wait := chainWaitFirst; err != nil; wait = min(2*wait, chainWaitMax) {
		if !o.WaitForChain || !errors.Is(err, chain.ErrUnavailable) {
			return nil, err
		}
		log.Warn("chain: the chain server cannot be reached; trying again", "chain", s.String(), "in", wait, "err", err)
		clk := o.Clock
		if clk == nil {
			clk = clock.Real{}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stopped while waiting for the chain server: %w", err)
		case <-clk.After(wait):
		}
		c, err = pylon.New(ctx, cfg)
	}
	op := &Opened{Chain: c, NetUID: c.NetUID(), Shared: true, Interval: cmp.Or(cfg.PollInterval, pylon.DefaultPollInterval),
		HyperparamsSource: c.HyperparamsSource()}
	args := []any{"chain", s.String(), "hyperparameters_from", op.HyperparamsSource}
	if hp, err := c.Hyperparams(ctx, op.NetUID); err == nil {
		args = append(args, "tempo", hp.Tempo, "weights_rate_limit", hp.WeightsRateLimit,
			"commit_reveal", hp.CommitRevealEnabled, "commit_reveal_period", hp.RevealPeriodEpochs)
	}
	log.Info("chain: connected", args...)
	return op, nil
}

// Table is the [chain] table of a role's configuration file: the same keys for every role.
type Table struct {
	URL                string `toml:"url"`
	Identity           string `toml:"identity"`
	Token              string `toml:"token" secret:"true"`
	OpenAccessToken    string `toml:"open_access_token" secret:"true"`
	NetUID             uint16 `toml:"netuid"`
	Tempo              uint16 `toml:"tempo"`
	WeightsRateLimit   uint64 `toml:"weights_rate_limit"`
	CommitReveal       bool   `toml:"commit_reveal"`
	CommitRevealPeriod uint64 `toml:"commit_reveal_period"`
	// PollInterval is Settings.PollInterval; zero means 12 s.
	PollInterval config.Duration `toml:"poll_interval"`
}

// DefaultTable is the [chain] table with finney's defaults.
func DefaultTable() Table {
	s := Defaults()
	return Table{NetUID: uint16(s.NetUID), Tempo: uint16(s.Tempo), WeightsRateLimit: uint64(s.WeightsRateLimit),
		CommitReveal: s.CommitReveal, CommitRevealPeriod: uint64(s.CommitRevealPeriod)}
}

// Settings are the table's chain settings.
func (t Table) Settings() Settings {
	return Settings{
		URL: t.URL, Identity: t.Identity, Token: t.Token, OpenAccessToken: t.OpenAccessToken,
		NetUID: uint(t.NetUID), Tempo: uint(t.Tempo), WeightsRateLimit: uint(t.WeightsRateLimit),
		CommitReveal: t.CommitReveal, CommitRevealPeriod: uint(t.CommitRevealPeriod),
		PollInterval: time.Duration(t.PollInterval),
	}
}

// Check reports what is wrong with the table, naming the key; envToken names the variable
// that carries the token.
func (t Table) Check(envToken string) error {
	if t.Tempo == 0 {
		return fmt.Errorf("chain.tempo: 0; finney's is 360")
	}
	if t.PollInterval < 0 {
		return fmt.Errorf("chain.poll_interval: %v is negative; 0 means 12 s", time.Duration(t.PollInterval))
	}
	if t.Identity != "" && t.Token == "" {
		return fmt.Errorf("chain.token: identity %q needs its token; set $%s", t.Identity, envToken)
	}
	return nil
}

// Follow creates the process's metagraph cache over the opened chain, keeps it fresh in wg
// until runCtx ends, and waits (until ctx ends) for its first metagraph: every role reads
// the chain through it and starts only once it has one.
func (op *Opened) Follow(ctx, runCtx context.Context, wg *sync.WaitGroup, log *slog.Logger) (*chain.MetagraphCache, error) {
	cache, err := chain.NewMetagraphCache(chain.CacheConfig{Chain: op.Chain, NetUID: op.NetUID, Interval: op.Interval, Logger: log})
	if err != nil {
		return nil, err
	}
	wg.Go(func() { _ = cache.Run(runCtx) })
	log.Info("waiting for the first metagraph")
	if err := cache.Wait(ctx); err != nil {
		return nil, fmt.Errorf("no metagraph from the chain before the process was stopped: %w", err)
	}
	return cache, nil
}
