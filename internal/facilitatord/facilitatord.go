// Package facilitatord assembles a standalone facilitator process from its configuration
// file: the wallet hotkey that signs jobs, the database, the allowed validators, prices, and
// the HTTP server for users and validators with a clean shutdown. `horde facilitator run` is
// this package behind a flag parser.
package facilitatord

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/blob"
	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/backend"
	"github.com/computehorde/horde/internal/config"
	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/facilitator"
	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// EnvPrefix prefixes the environment variable of every key: HORDE_FACILITATOR_TOKEN_SECRET
// is token_secret.
const EnvPrefix = "HORDE_FACILITATOR"

// Config is the facilitator's configuration file (examples/facilitator.toml documents it).
type Config struct {
	// Listen is where users' API and validators' channel (/ws/v0/) are served.
	Listen string `toml:"listen"`
	// DataDir holds the database by default.
	DataDir string `toml:"data_dir"`
	// Database is "sqlite:PATH" or a postgres:// DSN (replicas share one); empty means
	// DataDir/facilitator.db.
	Database string `toml:"database" secret:"true"`
	// TokenSecret signs login tokens and, unless blobs.secret is set, blob URLs; replicas
	// must share it. Empty: one generated once and kept in data_dir/secret (so tokens and
	// presigned uploads survive a restart; fine for one replica).
	TokenSecret string `toml:"token_secret" secret:"true"`
	// Validators are the validator hotkeys (ss58) allowed on the channel.
	Validators []string `toml:"validators"`
	// PricePerValueSecond is the base price, in micro-credits per second, of a class of
	// relative value 1; Prices overrides it per class (micro-credits per second).
	PricePerValueSecond int64            `toml:"price_per_value_second"`
	Prices              map[string]int64 `toml:"prices"`
	// JobsPerValidator bounds the jobs in flight on one validator.
	JobsPerValidator int `toml:"jobs_per_validator"`
	// RequeueAfter is how long a validator that dropped may take to come back before its
	// jobs go to another.
	RequeueAfter config.Duration `toml:"requeue_after"`
	// RateLimit (requests per second) and RateBurst bound each user's API requests.
	RateLimit float64 `toml:"rate_limit"`
	RateBurst int     `toml:"rate_burst"`
	// RequireFreshAuth takes only validators that authenticate with a signed timestamp
	// (horde's V1AuthenticationRequest), refusing upstream's replayable V0 form.
	RequireFreshAuth bool `toml:"require_fresh_auth"`
	// CheckImages asks each job's image registry whether the image exists before taking the
	// job (an unreachable registry or a private image lets it through). InsecureRegistries
	// are hosts ("host:port") spoken to over plain HTTP; AllowEgress lists the internal CIDRs
	// the checks may reach (none: a user cannot make the facilitator probe its network).
	CheckImages        bool     `toml:"check_images"`
	InsecureRegistries []string `toml:"insecure_registries"`
	AllowEgress        []string `toml:"allow_egress"`
	// ShutdownGrace bounds the wait for requests in progress at shutdown.
	ShutdownGrace config.Duration `toml:"shutdown_grace"`

	Wallet struct {
		Path   string `toml:"path"`
		Name   string `toml:"name"`
		Hotkey string `toml:"hotkey"`
	} `toml:"wallet"`

	// Blobs keeps the outputs of jobs that name no upload target: kind "local" (a directory
	// the facilitator serves at public_url/blobs/, default data_dir/blobs), "s3" (any
	// S3-compatible service), or "none".
	Blobs struct {
		Kind      string `toml:"kind"`
		Dir       string `toml:"dir"`
		PublicURL string `toml:"public_url"` // how executors reach this facilitator; default http://LISTEN
		Secret    string `toml:"secret" secret:"true"`
		MaxBytes  int64  `toml:"max_bytes"`
		Endpoint  string `toml:"endpoint"`
		Secure    bool   `toml:"secure"`
		Region    string `toml:"region"`
		Bucket    string `toml:"bucket"`
		AccessKey string `toml:"access_key" secret:"true"`
		SecretKey string `toml:"secret_key" secret:"true"`
	} `toml:"blobs"`

	// Chain, when its url is set, is where users' stakes come from: a user registered on the
	// netuid has its neuron's stake as its share weight; others get the floor weight (1 TAO).
	// Without it every user weighs the same.
	Chain backend.Table `toml:"chain"`
}

// Defaults returns the configuration every key starts from.
func Defaults() Config {
	var c Config
	c.Listen = "127.0.0.1:8200"
	c.DataDir = "horde-facilitator"
	c.PricePerValueSecond = facilitator.DefaultPricePerValueSecond
	c.JobsPerValidator = facilitator.DefaultJobsPerValidator
	c.RequeueAfter = config.Duration(facilitator.DefaultRequeueAfter)
	c.RateLimit = facilitator.DefaultRateLimit
	c.RateBurst = facilitator.DefaultRateBurst
	c.ShutdownGrace = config.Duration(10 * time.Second)
	c.Wallet.Path = keys.DefaultWalletsDir()
	c.Wallet.Name = "default"
	c.Wallet.Hotkey = "default"
	c.Chain = backend.DefaultTable()
	c.CheckImages = true
	c.Blobs.Kind = "local"
	c.Blobs.MaxBytes = 1 << 30
	c.Blobs.Region = "us-east-1"
	c.Blobs.Secure = true
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

// LoadLocal reads the configuration like Load but checks only the data directory and
// database, for local tools (`horde facilitator grant`).
func LoadLocal(path string, getenv func(string) string) (Config, error) {
	c := Defaults()
	if err := config.Load(path, &c, EnvPrefix, getenv); err != nil {
		return Config{}, err
	}
	if c.DataDir == "" && c.Database == "" {
		return Config{}, errors.New("data_dir: empty; name the facilitator's data directory")
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
		bad("listen", "%q is not IP:PORT, e.g. 0.0.0.0:8200", c.Listen)
	}
	if c.DataDir == "" {
		bad("data_dir", "empty; name the directory for the database")
	}
	if len(c.Validators) == 0 {
		bad("validators", "empty; list the validator hotkeys (ss58) allowed to take jobs")
	}
	for _, v := range c.Validators {
		if _, err := keys.ParsePublicKey(v); err != nil {
			bad("validators", "%q is not an ss58 hotkey: %v", v, err)
		}
	}
	if c.PricePerValueSecond <= 0 {
		bad("price_per_value_second", "%d must be positive (micro-credits per second)", c.PricePerValueSecond)
	}
	classes := hwclass.Default()
	for class, p := range c.Prices {
		if _, err := classes.Lookup(protocol.ExecutorClass(class)); err != nil {
			bad("prices", "%v", err)
		}
		if p <= 0 {
			bad("prices", "%s: %d must be positive (micro-credits per second)", class, p)
		}
	}
	if c.JobsPerValidator <= 0 {
		bad("jobs_per_validator", "%d must be positive", c.JobsPerValidator)
	}
	if c.RequeueAfter <= 0 {
		bad("requeue_after", "must be positive, e.g. 2m")
	}
	if c.RateLimit <= 0 || c.RateBurst <= 0 {
		bad("rate_limit", "rate_limit and rate_burst must be positive")
	}
	if c.TokenSecret != "" && len(c.TokenSecret) < 32 {
		bad("token_secret", "shorter than 32 characters; use a long random string ($%s_TOKEN_SECRET)", EnvPrefix)
	}
	if c.Wallet.Name == "" || c.Wallet.Hotkey == "" {
		bad("wallet", "name and hotkey are required, as btcli names them")
	}
	if err := c.Chain.Check(EnvPrefix + "_CHAIN_TOKEN"); err != nil {
		errs = append(errs, err)
	}
	if _, err := egress.ParseAllow(strings.Join(c.AllowEgress, ",")); err != nil {
		bad("allow_egress", "%v", err)
	}
	switch c.Blobs.Kind {
	case "none":
	case "local":
		if u := c.Blobs.PublicURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			bad("blobs.public_url", "%q is not an http(s) URL", u)
		}
		if c.Blobs.MaxBytes <= 0 {
			bad("blobs.max_bytes", "%d must be positive", c.Blobs.MaxBytes)
		}
	case "s3":
		if c.Blobs.Endpoint == "" || c.Blobs.Bucket == "" || c.Blobs.AccessKey == "" || c.Blobs.SecretKey == "" {
			bad("blobs", "kind s3 needs endpoint, bucket, access_key and secret_key ($%s_BLOBS_SECRET_KEY)", EnvPrefix)
		}
	default:
		bad("blobs.kind", "%q: local, s3 or none", c.Blobs.Kind)
	}
	return errors.Join(errs...)
}

// DSN is the database to open.
func (c *Config) DSN() string {
	if c.Database != "" {
		return c.Database
	}
	return "sqlite:" + filepath.Join(c.DataDir, "facilitator.db")
}

// Options are what the command adds to the configuration.
type Options struct {
	Logger *slog.Logger
	// Ready is called once the server listens, with its address.
	Ready func(addr netip.AddrPort)
}

// Run runs the facilitator until ctx ends.
func Run(ctx context.Context, cfg Config, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	key, err := keys.LoadHotkey(cfg.Wallet.Path, cfg.Wallet.Name, cfg.Wallet.Hotkey)
	if err != nil {
		return fmt.Errorf("wallet %s hotkey %s: %w", cfg.Wallet.Name, cfg.Wallet.Hotkey, err)
	}
	log.Info("facilitator starting", "hotkey", key.SS58(), "config", strings.TrimSpace(config.Describe(&cfg)))
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	db, err := store.Open(ctx, store.Config{DSN: cfg.DSN(), Logger: log})
	if err != nil {
		return err
	}
	defer db.Close()
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	var stake func(string) float64
	if cfg.Chain.URL != "" {
		op, err := backend.Open(ctx, cfg.Chain.Settings(), backend.Options{Hotkey: chain.Hotkey(key.SS58()), Logger: log, WaitForChain: true})
		if err != nil {
			return err
		}
		cache, err := op.Follow(ctx, runCtx, &wg, log)
		if err != nil {
			return err
		}
		stake = func(user string) float64 {
			if n, ok := cache.Neuron(chain.Hotkey(user)); ok {
				return float64(n.Stake) / 1e9
			}
			return 0
		}
	} else {
		log.Info("no [chain] url: users share the validators' capacity equally, not by stake")
	}
	secret, err := processSecret(cfg)
	if err != nil {
		return err
	}
	prices := map[protocol.ExecutorClass]int64{}
	for c, p := range cfg.Prices {
		prices[protocol.ExecutorClass(c)] = p
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	defer ln.Close()
	addr := netip.MustParseAddrPort(ln.Addr().String())
	blobs, blobHandler, err := openBlobs(cfg, addr, secret, log)
	if err != nil {
		return err
	}
	var images *facilitator.ImageChecker
	if cfg.CheckImages {
		allow, _ := egress.ParseAllow(strings.Join(cfg.AllowEgress, ",")) // checked by Validate
		images = facilitator.NewImageChecker(egress.Policy{Allow: allow}, cfg.InsecureRegistries)
	}
	f, err := facilitator.New(facilitator.Config{Blobs: blobs, BlobHandler: blobHandler, Images: images, RequireFreshAuth: cfg.RequireFreshAuth, Store: db, Keypair: key, Validators: cfg.Validators, Prices: prices,
		PricePerValueSecond: cfg.PricePerValueSecond, TokenSecret: secret, JobsPerValidator: cfg.JobsPerValidator,
		RequeueAfter: time.Duration(cfg.RequeueAfter), RateLimit: cfg.RateLimit, RateBurst: cfg.RateBurst, Stake: stake, Logger: log})
	if err != nil {
		return err
	}
	if err := f.Recover(ctx); err != nil {
		return fmt.Errorf("recover the jobs of an earlier run: %w", err)
	}

	// Validators' channels are hijacked connections that Shutdown does not wait for: they
	// end with runCtx.
	srv := &http.Server{Handler: f.Handler(), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10,
		BaseContext: func(net.Listener) context.Context { return runCtx }}
	wg.Go(func() { _ = f.Run(runCtx) })
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("facilitator serving", "listen", addr, "signs_as", key.SS58(), "validators", len(cfg.Validators))
	if o.Ready != nil {
		o.Ready(addr)
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
		serveErr = fmt.Errorf("serving on %s: %w", addr, serveErr)
	}
	shCtx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownGrace))
	defer cancel()
	_ = srv.Shutdown(shCtx)
	stop()
	wg.Wait()
	log.Info("facilitator stopped")
	return serveErr
}

// processSecret is token_secret, or else a secret generated once and kept in
// data_dir/secret (mode 0600).
func processSecret(cfg Config) ([]byte, error) {
	if cfg.TokenSecret != "" {
		return []byte(cfg.TokenSecret), nil
	}
	path := filepath.Join(cfg.DataDir, "secret")
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return b, nil
	}
	fresh := []byte(rand.Text() + rand.Text())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) { // another process wrote it first
		return os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("token secret: %w", err)
	}
	if _, err := f.Write(fresh); err != nil {
		f.Close()
		return nil, fmt.Errorf("token secret: %w", err)
	}
	return fresh, f.Close()
}

// openBlobs opens the blob store the configuration names.
func openBlobs(cfg Config, addr netip.AddrPort, secret []byte, log *slog.Logger) (blob.Store, http.Handler, error) {
	b := cfg.Blobs
	switch b.Kind {
	case "local":
		dir := b.Dir
		if dir == "" {
			dir = filepath.Join(cfg.DataDir, "blobs")
		}
		public := b.PublicURL
		if public == "" {
			public = "http://" + addr.String()
			log.Warn("blobs.public_url not set: executors upload outputs to "+public+"; set it to the URL miners reach", "dir", dir)
		}
		blobSecret := []byte(b.Secret)
		if len(blobSecret) == 0 {
			// Presigned uploads outlive the process that signed them (a job may wait in the
			// queue across a restart): derived from the lasting secret, not random.
			mac := hmac.New(sha256.New, secret)
			mac.Write([]byte("blobs"))
			blobSecret = mac.Sum(nil)
		}
		l, err := blob.NewLocal(dir, public, blobSecret, b.MaxBytes)
		if err != nil {
			return nil, nil, err
		}
		return l, l.Handler(), nil
	case "s3":
		s, err := blob.NewS3(blob.S3Config{Endpoint: b.Endpoint, Secure: b.Secure, Region: b.Region, Bucket: b.Bucket, AccessKey: b.AccessKey, SecretKey: b.SecretKey})
		return s, nil, err
	}
	return nil, nil, nil
}

// Grant adds amount micro-credits to user's balance in the facilitator's database.
func Grant(ctx context.Context, cfg Config, user string, amount int64, key string) (bool, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return false, fmt.Errorf("data_dir: %w", err)
	}
	db, err := store.Open(ctx, store.Config{DSN: cfg.DSN()})
	if err != nil {
		return false, err
	}
	defer db.Close()
	return facilitator.Grant(ctx, db, user, amount, key)
}
