// Package validatord assembles a standalone validator process from its configuration file:
// the wallet hotkey, the chain (embedded, `horde chain sim` or Pylon) with its metagraph
// cache, the database, the validator that routes jobs to miners, its local job API, and a
// clean shutdown. `horde validator run` is this package behind a flag parser.
package validatord

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/computehorde/horde/internal/chain/backend"
	"github.com/computehorde/horde/internal/config"
	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/keys"
)

// EnvPrefix prefixes the environment variable of every key: HORDE_VALIDATOR_CHAIN_TOKEN is
// [chain] token.
const EnvPrefix = "HORDE_VALIDATOR"

// Config is the validator's configuration file (examples/validator.toml documents it).
type Config struct {
	// APIListen is where the local job API listens (jobs for tests and private use; the
	// facilitator link comes later).
	APIListen string `toml:"api_listen"`
	// APIToken is the bearer token the API requires; it may be empty only on loopback.
	APIToken string `toml:"api_token" secret:"true"`
	// DataDir holds the database by default.
	DataDir string `toml:"data_dir"`
	// Database is "sqlite:PATH" or a postgres:// DSN; empty means DataDir/validator.db.
	Database string `toml:"database" secret:"true"`
	// ShutdownGrace is how long a stopping validator waits for the jobs it drives.
	ShutdownGrace config.Duration `toml:"shutdown_grace"`
	// MaxJobs bounds the jobs the API runs at once.
	MaxJobs int `toml:"max_jobs"`
	// BenchmarkImage is the benchmark job's image (jobs/bench, pullable by miners); empty
	// disables benchmarks (every efficiency factor stays 1). BenchmarkInterval is how often
	// new miners and classes are looked for.
	BenchmarkImage    string          `toml:"benchmark_image"`
	BenchmarkInterval config.Duration `toml:"benchmark_interval"`
	// FacilitatorURL is the facilitator's validator channel (upstream's fv protocol), e.g.
	// wss://facilitator.example/ws/v0/; empty means jobs come from the local API only.
	FacilitatorURL string `toml:"facilitator_url"`
	// CrossCheckFraction of the completed organic jobs is re-run on the trusted miner
	// (a miner this operator runs, not registered on chain) and the outputs compared.
	CrossCheckFraction float64 `toml:"cross_check_fraction"`
	TrustedMiner       struct {
		Hotkey  string `toml:"hotkey"`
		Address string `toml:"address"`
	} `toml:"trusted_miner"`
	// RewardRate is the reward (alpha) per executor-hour of value 1.0 published to miners,
	// by which they judge which classes pay for themselves.
	RewardRate float64 `toml:"reward_rate"`
	// ScoreWindow is the stretch of countersigned work each tempo's weights reward.
	ScoreWindow config.Duration `toml:"score_window"`
	// ClassWeights overrides the executor classes' relative values in upstream's
	// DYNAMIC_EXECUTOR_CLASS_WEIGHTS format, e.g. "always_on.test=1"; classes not listed keep
	// theirs (always_on.test's is 0, so a subnet of test executors earns no weights).
	ClassWeights string `toml:"class_weights"`
	// ReceiptsInterval is how often miners' receipts pages are pulled.
	ReceiptsInterval config.Duration `toml:"receipts_interval"`
	// AllowEgress lists internal CIDRs miners may announce and still be pulled from
	// (loopback or private networks of a devnet); none by default.
	AllowEgress []string `toml:"allow_egress"`

	Wallet struct {
		Path   string `toml:"path"`
		Name   string `toml:"name"`
		Hotkey string `toml:"hotkey"`
	} `toml:"wallet"`

	Chain backend.Table `toml:"chain"`
}

// Defaults returns the configuration every key starts from.
func Defaults() Config {
	var c Config
	c.APIListen = "127.0.0.1:8100"
	c.DataDir = "horde-validator"
	c.ShutdownGrace = config.Duration(5 * time.Minute)
	c.MaxJobs = 256
	c.RewardRate = 1
	c.BenchmarkInterval = config.Duration(10 * time.Minute)
	c.ScoreWindow = config.Duration(72 * time.Minute)
	c.ReceiptsInterval = config.Duration(10 * time.Second)
	c.Wallet.Path = keys.DefaultWalletsDir()
	c.Wallet.Name = "default"
	c.Wallet.Hotkey = "default"
	c.Chain = backend.DefaultTable()
	return c
}

// Load reads the configuration file at path (none when empty) over the defaults, then the
// environment, and checks the result.
func Load(path string, getenv func(string) string) (Config, error) {
	c := Defaults()
	if err := config.Load(path, &c, EnvPrefix, getenv); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// Classes is the class registry with class_weights applied.
func (c *Config) Classes() (*hwclass.Registry, error) {
	return hwclass.Default().ParseOverrides(c.ClassWeights)
}

// Validate checks every key, naming the key and the fix.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	ap, err := netip.ParseAddrPort(c.APIListen)
	switch {
	case err != nil:
		bad("api_listen", "%q is not IP:PORT, e.g. 127.0.0.1:8100", c.APIListen)
	case c.APIToken == "" && !ap.Addr().IsLoopback():
		bad("api_token", "the job API listens on %s, beyond this machine: set a token ($%s_API_TOKEN) or listen on 127.0.0.1", ap, EnvPrefix)
	}
	if c.DataDir == "" {
		bad("data_dir", "empty; name the directory for the database")
	}
	if c.ShutdownGrace < 0 {
		bad("shutdown_grace", "%v is negative", c.ShutdownGrace)
	}
	if c.RewardRate <= 0 || c.RewardRate != c.RewardRate {
		bad("reward_rate", "must be a positive number (alpha per executor-hour of value 1.0)")
	}
	if u := c.FacilitatorURL; u != "" && !strings.HasPrefix(u, "ws://") && !strings.HasPrefix(u, "wss://") {
		bad("facilitator_url", "%q is not a ws:// or wss:// URL", u)
	}
	if c.CrossCheckFraction < 0 || c.CrossCheckFraction > 1 || c.CrossCheckFraction != c.CrossCheckFraction {
		bad("cross_check_fraction", "%v is outside 0..1", c.CrossCheckFraction)
	}
	if (c.TrustedMiner.Hotkey == "") != (c.TrustedMiner.Address == "") {
		bad("trusted_miner", "set both hotkey and address, or neither")
	} else if c.TrustedMiner.Address != "" {
		if _, err := netip.ParseAddrPort(c.TrustedMiner.Address); err != nil {
			bad("trusted_miner.address", "%q is not IP:PORT", c.TrustedMiner.Address)
		}
	}
	if c.CrossCheckFraction > 0 && c.TrustedMiner.Hotkey == "" {
		bad("cross_check_fraction", "needs a [trusted_miner] to re-run jobs on")
	}
	if c.BenchmarkInterval <= 0 {
		bad("benchmark_interval", "must be positive, e.g. 10m")
	}
	if c.ScoreWindow <= 0 {
		bad("score_window", "must be positive, e.g. 72m (one tempo)")
	}
	if _, err := c.Classes(); err != nil {
		bad("class_weights", "%v", err)
	}
	if c.ReceiptsInterval <= 0 {
		bad("receipts_interval", "must be positive, e.g. 10s")
	}
	if _, err := egress.ParseAllow(strings.Join(c.AllowEgress, ",")); err != nil {
		bad("allow_egress", "%v", err)
	}
	if c.MaxJobs <= 0 {
		bad("max_jobs", "%d must be positive", c.MaxJobs)
	}
	if c.Wallet.Name == "" || c.Wallet.Hotkey == "" {
		bad("wallet", "name and hotkey are required, as btcli names them (--wallet.name, --wallet.hotkey)")
	}
	if err := c.Chain.Check(EnvPrefix + "_CHAIN_TOKEN"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// DSN is the database to open.
func (c *Config) DSN() string {
	if c.Database != "" {
		return c.Database
	}
	return "sqlite:" + filepath.Join(c.DataDir, "validator.db")
}

// LoadLocal reads the configuration like Load but checks only what local tools (`horde
// validator scores`) need, the data directory and database: they run without secrets.
func LoadLocal(path string, getenv func(string) string) (Config, error) {
	c := Defaults()
	if err := config.Load(path, &c, EnvPrefix, getenv); err != nil {
		return Config{}, err
	}
	if c.DataDir == "" {
		return Config{}, errors.New("data_dir: empty; name the validator's data directory")
	}
	return c, nil
}
