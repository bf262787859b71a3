// Package minerd assembles a standalone miner process from its configuration file: the
// wallet hotkey, the chain (embedded, `horde chain sim` or Pylon) with its metagraph cache
// and axon check, the database, the executor manager, the miner's HTTP server, and a clean
// shutdown. `horde miner run` is this package behind a flag parser.
package minerd

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/computehorde/horde/internal/chain/backend"
	"github.com/computehorde/horde/internal/config"
	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
)

// EnvPrefix prefixes the environment variable of every key: HORDE_MINER_CHAIN_TOKEN is
// [chain] token.
const EnvPrefix = "HORDE_MINER"

// Config is the miner's configuration file (examples/miner.toml documents every key).
type Config struct {
	// Listen is where validators and executors connect.
	Listen string `toml:"listen"`
	// ExternalAddress is the IP:PORT validators dial: the axon the miner checks on chain and
	// announces where the backend can. Empty skips the check (tests, private setups).
	ExternalAddress string `toml:"external_address"`
	// DataDir holds the database (by default) and the executors' job directories.
	DataDir string `toml:"data_dir"`
	// Database is "sqlite:PATH" or a postgres:// DSN; empty means DataDir/miner.db.
	Database string `toml:"database" secret:"true"`
	// MinValidatorStake is the stake, in TAO, a validator needs to be served.
	MinValidatorStake float64 `toml:"min_validator_stake"`
	// ShutdownGrace is how long a stopping miner waits for running jobs to finish.
	ShutdownGrace config.Duration `toml:"shutdown_grace"`

	// Admin are the credentials of the admin panel (/admin/ on the listen port); both
	// empty disable it. PasswordHash comes from `horde miner hash-password`.
	Admin struct {
		Username     string `toml:"username"`
		PasswordHash string `toml:"password_hash" secret:"true"`
	} `toml:"admin"`

	Wallet struct {
		Path   string `toml:"path"`
		Name   string `toml:"name"`
		Hotkey string `toml:"hotkey"`
	} `toml:"wallet"`

	Chain backend.Table `toml:"chain"`

	Executors struct {
		// Manager is how executors run: "process" (children of the miner, on the local
		// engine) or "docker" (containers on the Docker hosts below).
		Manager string `toml:"manager"`
		// Classes is the manifest of the process manager: executors offered per class.
		// The docker manager's manifest is its up hosts' classes.
		Classes map[string]int `toml:"classes"`
		// GPUs is this machine's GPU count for the process manager: each executor of a GPU
		// class gets its own GPUs among 0..GPUs-1. 0 means nvidia-smi counts them.
		GPUs int `toml:"gpus"`
		// Image is the docker manager's executor image; BuildImage assembles it from this
		// horde binary on each host that lacks it (no registry needed), else it is pulled.
		Image      string `toml:"image"`
		BuildImage bool   `toml:"build_image"`
		// MinerURL is the miner's executor endpoint as executor containers dial it; empty
		// means ws:// and the listen address (loopback for 0.0.0.0), right for host-network
		// containers on this machine.
		MinerURL string `toml:"miner_url"`
		// Hosts are the docker manager's engines (file only, not from the environment).
		Hosts []DockerHost `toml:"hosts"`
		// Costs is the cost of one executor of a class for one hour, in alpha, compared
		// with the reward rates validators publish: a class whose best published rate is
		// below its cost leaves the manifest. A class without a cost is always offered.
		Costs map[string]float64 `toml:"costs"`
		// StartTimeout bounds the wait for an executor to connect; 0 means each class's
		// spin-up time (at least 5 s).
		StartTimeout config.Duration `toml:"start_timeout"`
		// AllowEgress lists CIDRs job downloads and uploads may reach although internal.
		AllowEgress []string `toml:"allow_egress"`
		// MaxVolumeBytes caps a job's unpacked input volume; negative means none.
		MaxVolumeBytes int64 `toml:"max_volume_bytes"`
	} `toml:"executors"`
}

// Defaults returns the configuration every key starts from.
func Defaults() Config {
	var c Config
	c.Listen = "0.0.0.0:8000"
	c.DataDir = "horde-miner"
	c.MinValidatorStake = 1000 // upstream's miners serve validators with at least 1000 stake
	c.ShutdownGrace = config.Duration(5 * time.Minute)
	c.Wallet.Path = keys.DefaultWalletsDir()
	c.Wallet.Name = "default"
	c.Wallet.Hotkey = "default"
	c.Chain = backend.DefaultTable()
	c.Executors.Manager = "process"
	c.Executors.MaxVolumeBytes = 10 << 30
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

// LoadLocal reads the configuration like Load but checks only what local tools (`horde miner
// status`, `horde miner jobs`) need, the data directory and database: they run without the
// miner's secrets.
func LoadLocal(path string, getenv func(string) string) (Config, error) {
	c := Defaults()
	if err := config.Load(path, &c, EnvPrefix, getenv); err != nil {
		return Config{}, err
	}
	if c.DataDir == "" {
		return Config{}, errors.New("data_dir: empty; name the miner's data directory")
	}
	return c, nil
}

// Validate checks every key, naming the key and the fix.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	if _, err := netip.ParseAddrPort(c.Listen); err != nil {
		bad("listen", "%q is not IP:PORT, e.g. 0.0.0.0:8000", c.Listen)
	}
	if c.ExternalAddress != "" {
		if ap, err := netip.ParseAddrPort(c.ExternalAddress); err != nil || ap.Addr().IsUnspecified() || ap.Port() == 0 {
			bad("external_address", "%q is not the IP:PORT validators dial, e.g. 203.0.113.7:8000", c.ExternalAddress)
		}
	}
	if c.DataDir == "" {
		bad("data_dir", "empty; name the directory for the database and job files")
	}
	if c.MinValidatorStake < 0 {
		bad("min_validator_stake", "%v is negative", c.MinValidatorStake)
	}
	if c.ShutdownGrace < 0 {
		bad("shutdown_grace", "%v is negative", c.ShutdownGrace)
	}
	if (c.Admin.Username == "") != (c.Admin.PasswordHash == "") {
		bad("admin", "set both username and password_hash (from `horde miner hash-password`), or neither to disable the panel")
	}
	if c.Wallet.Name == "" || c.Wallet.Hotkey == "" {
		bad("wallet", "name and hotkey are required, as btcli names them (--wallet.name, --wallet.hotkey)")
	}
	if err := c.Chain.Check(EnvPrefix + "_CHAIN_TOKEN"); err != nil {
		errs = append(errs, err)
	}
	checkClasses := func(key string, classes map[string]int) {
		for _, k := range slices.Sorted(maps.Keys(classes)) {
			if !protocol.ExecutorClass(k).Valid() {
				bad(key, "%q is not an executor class (%s)", k, classNames())
			}
			if n := classes[k]; n < 0 || n > 1024 {
				bad(key, "%s = %d is outside 0..1024", k, n)
			}
		}
	}
	switch c.Executors.Manager {
	case "process":
		if len(c.Executors.Classes) == 0 {
			bad("executors.classes", "empty; offer at least one class, e.g. classes = { \"spin_up-4min.gpu-24gb\" = 1 }")
		}
		checkClasses("executors.classes", c.Executors.Classes)
		if c.Executors.GPUs < 0 || c.Executors.GPUs > 1024 {
			bad("executors.gpus", "%d is outside 0..1024; give this machine's GPU count, or 0 to have nvidia-smi count them", c.Executors.GPUs)
		}
	case "docker":
		if len(c.Executors.Hosts) == 0 {
			bad("executors.hosts", "the docker manager needs at least one [[executors.hosts]] with an endpoint and classes")
		}
		if c.Executors.Image == "" {
			bad("executors.image", "the docker manager needs the executor image's tag")
		}
		for i, h := range c.Executors.Hosts {
			key := fmt.Sprintf("executors.hosts[%d]", i)
			if h.Name == "" || h.Endpoint == "" {
				bad(key, "name and endpoint (unix:///var/run/docker.sock or tcp://HOST:PORT with tls_*) are required")
			}
			if len(h.Classes) == 0 {
				bad(key+".classes", "empty; say what executors this host offers")
			}
			checkClasses(key+".classes", h.Classes)
			if h.GPUs < 0 || h.GPUs > 1024 {
				bad(key+".gpus", "%d is outside 0..1024; give the host's GPU count (0: unknown)", h.GPUs)
			}
		}
	default:
		bad("executors.manager", "%q is not a manager; use \"process\" or \"docker\"", c.Executors.Manager)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Executors.Costs)) {
		if !protocol.ExecutorClass(k).Valid() {
			bad("executors.costs", "%q is not an executor class (%s)", k, classNames())
		}
		if v := c.Executors.Costs[k]; v < 0 || v != v || v > 1e12 {
			bad("executors.costs", "%s = %v is not a cost of 0 or more", k, v)
		}
	}
	if c.Executors.StartTimeout < 0 {
		bad("executors.start_timeout", "is negative; 0 means each class's spin-up time")
	}
	if _, err := egress.ParseAllow(strings.Join(c.Executors.AllowEgress, ",")); err != nil {
		bad("executors.allow_egress", "%v", err)
	}
	return errors.Join(errs...)
}

func classNames() string {
	var names []string
	for _, c := range protocol.ExecutorClassValues() {
		names = append(names, string(c))
	}
	return strings.Join(names, ", ")
}

// DockerHost is one engine of the docker manager.
type DockerHost struct {
	Name     string `toml:"name"`
	Endpoint string `toml:"endpoint"`
	TLSCA    string `toml:"tls_ca"`
	TLSCert  string `toml:"tls_cert"`
	TLSKey   string `toml:"tls_key"`
	// ExecutorEndpoint is the engine as executors on it reach it, when it differs.
	ExecutorEndpoint string         `toml:"executor_endpoint"`
	Classes          map[string]int `toml:"classes"`
	// GPUs is the host's GPU count: each executor of a GPU class gets its own GPUs among
	// 0..GPUs-1. 0 means unknown, allowed for a host with one GPU executor only.
	GPUs int `toml:"gpus"`
}

// Manifest is the configured capacity, classes in name order: the process manager's
// classes, or the sum of the docker manager's hosts.
func (c *Config) Manifest() protocol.Manifest {
	total := maps.Clone(c.Executors.Classes)
	if c.Executors.Manager == "docker" {
		total = map[string]int{}
		for _, h := range c.Executors.Hosts {
			for k, n := range h.Classes {
				total[k] += n
			}
		}
	}
	var m protocol.Manifest
	for _, k := range slices.Sorted(maps.Keys(total)) {
		m = append(m, protocol.ManifestEntry{Class: protocol.ExecutorClass(k), Count: total[k]})
	}
	return m
}

// DSN is the database to open.
func (c *Config) DSN() string {
	if c.Database != "" {
		return c.Database
	}
	return "sqlite:" + filepath.Join(c.DataDir, "miner.db")
}

// minStakeRao is MinValidatorStake in rao.
func (c *Config) minStakeRao() uint64 { return uint64(c.MinValidatorStake * 1e9) }

// ClassCosts are the configured costs by class.
func (c *Config) ClassCosts() map[protocol.ExecutorClass]float64 {
	out := make(map[protocol.ExecutorClass]float64, len(c.Executors.Costs))
	for k, v := range c.Executors.Costs {
		out[protocol.ExecutorClass(k)] = v
	}
	return out
}
