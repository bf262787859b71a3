// Package devnet assembles the whole subnet in one process on the embedded default: the
// simulated chain, SQLite stores, one validator (//Alice), one miner (//Bob) and its
// executors on the local Docker engine. `horde dev` and the end-to-end tests run on it.
package devnet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
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

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/sim"
	"github.com/computehorde/horde/internal/clock"
	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/gpu"
	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/jobimage"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/miner"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/validator"
)

// NetUID is the subnet the devnet simulates (ComputeHorde's on mainnet).
const NetUID chain.NetUID = 12

// Dev hotkeys: the well-known Substrate development accounts.
const (
	ValidatorURI = "//Alice"
	MinerURI     = "//Bob"
)

// raoPerTAO converts TAO to the chain's integer unit.
const raoPerTAO = 1_000_000_000

// Config describes a devnet.
type Config struct {
	// DataDir holds the SQLite databases; empty means a temporary directory removed by Close.
	DataDir string
	// BlockTime is the simulated chain's block interval; zero means 1 s.
	BlockTime time.Duration
	// JobBinary is the executable that job images are assembled from (static, or dynamically
	// linked: jobimage then copies in its loader and libraries from this host), and
	// JobEntrypoint how the image starts it (e.g. the horde binary with its hidden `__job
	// hello` command, or a binary compiled from jobs/hello).
	JobBinary     string
	JobEntrypoint []string
	// JobImage is the tag of the hello job image; empty means "horde-jobs/hello:dev".
	JobImage string
	// ExecutorClass is the class the miner offers and the hello job runs on; empty means
	// always_on.test, which needs no GPU.
	ExecutorClass protocol.ExecutorClass
	// Executors is how many executors of that class the miner offers; zero means 1.
	Executors int
	// BenchBinary, when set, is an executable of the benchmark job (jobs/bench) that
	// the validator's benchmark image is assembled from, started as BenchEntrypoint; the
	// image is tagged BenchImage (empty means "horde-jobs/bench:dev"). BenchRate and
	// BenchSeconds size each run as validator.Config says.
	BenchBinary     string
	BenchEntrypoint []string
	BenchImage      string
	BenchRate       float64
	BenchSeconds    int
	// Clock is the validator's time source and the miner's for the checks of the
	// validator's timestamps and its manifest rules; nil means the real clock. Scenario
	// tests compress time with a fake one. Executors and the Docker engine keep real time.
	Clock  clock.Clock
	Logger *slog.Logger // nil means slog.Default()
}

// Devnet is a running subnet. Close it to stop everything it started.
type Devnet struct {
	cfg       Config
	log       *slog.Logger
	Chain     *sim.Chain
	Validator *validator.Validator
	Miner     *miner.Miner
	MinerAddr netip.AddrPort
	// ValidatorStore and MinerStore are the roles' databases, open until Close.
	ValidatorStore *store.DB
	MinerStore     *store.DB

	// ExecutorID labels every container this devnet's executors start (docker.LabelExecutor):
	// "horde-dev-" and a suffix, random or derived from a kept data dir (see executorID).
	ExecutorID string

	// One metagraph cache per role, as each role runs in its own process in production.
	minerMetagraph, validatorMetagraph *chain.MetagraphCache

	runtime  *docker.Runtime
	stores   []*store.DB
	server   *http.Server
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	tempDir  string
	closeErr error
	once     sync.Once
}

// Start builds and starts a devnet. On error everything already started is stopped again.
func Start(ctx context.Context, cfg Config) (_ *Devnet, err error) {
	if cfg.JobBinary == "" {
		return nil, errors.New("devnet: config: JobBinary is required (the executable the job image is assembled from)")
	}
	cfg.setDefaults()
	tempDir, err := cfg.makeDataDir()
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d := &Devnet{cfg: cfg, log: cfg.Logger, cancel: cancel, tempDir: tempDir, ExecutorID: executorID(cfg.DataDir, tempDir != "")}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()

	// The Docker engine first: without it nothing can run, so fail before anything else.
	if err := d.startRuntime(ctx, runCtx); err != nil {
		return nil, err
	}
	alice, err := keys.FromURI(ValidatorURI)
	if err != nil {
		return nil, err
	}
	bob, err := keys.FromURI(MinerURI)
	if err != nil {
		return nil, err
	}
	if d.Chain, err = newChain(cfg, alice, bob); err != nil {
		return nil, err
	}
	if d.ValidatorStore, err = d.openStore(ctx, "validator.db"); err != nil {
		return nil, err
	}
	if d.MinerStore, err = d.openStore(ctx, "miner.db"); err != nil {
		return nil, err
	}
	if err := d.startMetagraphCaches(ctx, runCtx); err != nil {
		return nil, err
	}
	classes := hwclass.Default()
	if err := d.startMiner(ctx, runCtx, bob, classes); err != nil {
		return nil, err
	}
	d.Validator, err = validator.New(validator.Config{
		Keypair: alice, Chain: d.Chain, Metagraph: d.validatorMetagraph, NetUID: NetUID, Store: d.ValidatorStore,
		Classes: classes, Clock: cfg.Clock, Logger: cfg.Logger,
		BenchImage: d.benchImage(), BenchRate: cfg.BenchRate, BenchSeconds: cfg.BenchSeconds,
	})
	if err != nil {
		return nil, err
	}

	d.wg.Go(func() { d.Chain.Run(runCtx) })
	d.log.Info("devnet up", "validator", alice.Public().SS58(), "miner", bob.Public().SS58(),
		"miner_addr", d.MinerAddr.String(), "data_dir", cfg.DataDir, "block_time", cfg.BlockTime)
	return d, nil
}

func (c *Config) setDefaults() {
	if c.BlockTime == 0 {
		c.BlockTime = time.Second
	}
	if c.JobImage == "" {
		c.JobImage = "horde-jobs/hello:dev"
	}
	if c.ExecutorClass == "" {
		c.ExecutorClass = protocol.ExecutorClassAlwaysOnTest
	}
	if c.Executors == 0 {
		c.Executors = 1
	}
	if c.BenchBinary != "" && c.BenchImage == "" {
		c.BenchImage = "horde-jobs/bench:dev"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// makeDataDir creates the data directory, or a temporary one when none is configured, which
// it returns so that Close can remove it.
func (c *Config) makeDataDir() (tempDir string, err error) {
	if c.DataDir != "" {
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return "", fmt.Errorf("devnet: data dir %s: %w", c.DataDir, err)
		}
		return "", nil
	}
	if tempDir, err = os.MkdirTemp("", "horde-dev-"); err != nil {
		return "", fmt.Errorf("devnet: %w", err)
	}
	c.DataDir = tempDir
	return tempDir, nil
}

// workDir holds the executors' job directories.
func (d *Devnet) workDir() string { return filepath.Join(d.cfg.DataDir, "jobs") }

// startRuntime connects to the Docker engine, removes what earlier runs abandoned, keeps doing
// so until runCtx ends, and builds the job image.
func (d *Devnet) startRuntime(ctx, runCtx context.Context) error {
	if err := os.MkdirAll(d.workDir(), 0o700); err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	var err error
	if d.runtime, err = docker.New(ctx, docker.Options{ExecutorID: d.ExecutorID, WorkDir: d.workDir(), Logger: d.log}); err != nil {
		return err
	}
	if d.tempDir == "" {
		// A devnet on a kept data dir owns its executor ID: whatever a killed earlier run on
		// the same directory left (containers, job directories) is removed now.
		if err := d.runtime.Sweep(ctx); err != nil {
			d.log.Warn("could not remove an earlier run's leftovers", "err", err)
		}
	}
	// Any horde job past its deadline was abandoned by a killed executor, whoever ran it:
	// removed now and every minute while the devnet runs.
	d.sweepExpired(ctx)
	d.wg.Go(func() { clock.Every(runCtx, expirySweepInterval, func() { d.sweepExpired(runCtx) }) })
	if err := jobimage.Build(ctx, d.runtime.Client(), jobimage.Spec{
		Tag: d.cfg.JobImage, Binary: d.cfg.JobBinary, Entrypoint: d.cfg.JobEntrypoint,
	}); err != nil {
		return fmt.Errorf("devnet: build job image: %w", err)
	}
	if d.cfg.BenchBinary != "" {
		if err := jobimage.Build(ctx, d.runtime.Client(), jobimage.Spec{
			Tag: d.cfg.BenchImage, Binary: d.cfg.BenchBinary, Entrypoint: d.cfg.BenchEntrypoint,
		}); err != nil {
			return fmt.Errorf("devnet: build benchmark image: %w", err)
		}
	}
	return nil
}

// benchImage is the validator's benchmark image: empty (benchmarks off) without BenchBinary.
func (d *Devnet) benchImage() string {
	if d.cfg.BenchBinary == "" {
		return ""
	}
	return d.cfg.BenchImage
}

// startMetagraphCaches creates the roles' metagraph caches, refreshes them on every block
// until runCtx ends, and waits for their first metagraph.
func (d *Devnet) startMetagraphCaches(ctx, runCtx context.Context) error {
	for _, mc := range []**chain.MetagraphCache{&d.minerMetagraph, &d.validatorMetagraph} {
		var err error
		if *mc, err = chain.NewMetagraphCache(chain.CacheConfig{Chain: d.Chain, NetUID: NetUID, Logger: d.log}); err != nil {
			return fmt.Errorf("devnet: %w", err)
		}
		c := *mc
		d.wg.Go(func() { _ = c.Run(runCtx) })
	}
	for _, mc := range []*chain.MetagraphCache{d.minerMetagraph, d.validatorMetagraph} {
		if err := mc.Wait(ctx); err != nil {
			return fmt.Errorf("devnet: %w", err)
		}
	}
	return nil
}

// startMiner serves the miner with the given key on a loopback port, its executors running in
// this process until runCtx ends, and has it announce its axon on the chain, which it then
// checks every tempo until runCtx ends.
func (d *Devnet) startMiner(ctx, runCtx context.Context, key *keys.Keypair, classes *hwclass.Registry) error {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("devnet: listen for the miner: %w", err)
	}
	d.MinerAddr = netip.MustParseAddrPort(lis.Addr().String())
	execs := &localExecutors{
		ctx: runCtx, wg: &d.wg, runtime: d.runtime, classes: classes, workDir: d.workDir(),
		minerURL: "ws://" + d.MinerAddr.String(), log: d.log,
	}
	d.Miner, err = miner.New(miner.Config{
		Keypair: key, Chain: d.Chain, Metagraph: d.minerMetagraph, NetUID: NetUID, Store: d.MinerStore, Executors: execs,
		Manifest: protocol.Manifest{{Class: d.cfg.ExecutorClass, Count: d.cfg.Executors}},
		// Upstream's miners serve validators with at least 1000 stake.
		MinValidatorStake: 1000 * raoPerTAO,
		Axon:              d.MinerAddr,
		Clock:             d.cfg.Clock,
		Logger:            d.log,
	})
	if err != nil {
		lis.Close()
		return err
	}
	d.server = &http.Server{Handler: d.Miner.Handler(), ReadHeaderTimeout: 10 * time.Second}
	d.wg.Go(func() {
		if err := d.server.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("miner server stopped", "err", err)
		}
	})
	// The miner's own check announces the axon (the simulator can serve one, unlike Pylon).
	// The block that includes it is produced here, and both caches read it, so that the
	// validator can dial the miner as soon as Start returns.
	if st := d.Miner.CheckAxon(ctx); !st.OK {
		return fmt.Errorf("devnet: miner axon: %w", st.Err)
	}
	d.Chain.Advance(1)
	for _, mc := range []*chain.MetagraphCache{d.minerMetagraph, d.validatorMetagraph} {
		if err := mc.Refresh(ctx); err != nil {
			return fmt.Errorf("devnet: %w", err)
		}
	}
	d.wg.Go(func() { _ = d.Miner.RunAxonCheck(runCtx) })
	d.wg.Go(func() { _ = d.Miner.RunManifest(runCtx) })
	return nil
}

// expirySweepInterval is how often a running devnet removes abandoned job containers.
const expirySweepInterval = time.Minute

func (d *Devnet) sweepExpired(ctx context.Context) {
	if err := d.runtime.SweepExpired(ctx); err != nil && ctx.Err() == nil {
		d.log.Warn("could not remove abandoned job containers", "err", err)
	}
}

func newChain(cfg Config, validatorKey, minerKey *keys.Keypair) (*sim.Chain, error) {
	permit := true
	hp := sim.DefaultHyperparams()
	return sim.New(sim.Genesis{
		NetUID:         NetUID,
		Hyperparams:    hp,
		BlockTime:      cfg.BlockTime,
		RelaxedAxonIPs: true, // the miner listens on loopback
		Neurons: []sim.NeuronSpec{
			{Hotkey: chain.Hotkey(validatorKey.Public().SS58()), Coldkey: "5DevValidatorColdkey", Stake: 10_000 * raoPerTAO, ValidatorPermit: &permit},
			{Hotkey: chain.Hotkey(minerKey.Public().SS58()), Coldkey: "5DevMinerColdkey", Stake: 0},
		},
	})
}

func (d *Devnet) openStore(ctx context.Context, name string) (*store.DB, error) {
	db, err := store.Open(ctx, store.Config{DSN: "sqlite:" + filepath.Join(d.cfg.DataDir, name), Logger: d.log})
	if err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	d.stores = append(d.stores, db)
	return db, nil
}

// HelloJob returns the spec of the hello job on the devnet's job image.
func (d *Devnet) HelloJob(args ...string) protocol.V2JobRequest {
	return protocol.V2JobRequest{
		ExecutorClass:      d.cfg.ExecutorClass,
		DockerImage:        d.cfg.JobImage,
		Args:               args,
		DownloadTimeLimit:  30,
		ExecutionTimeLimit: 60,
		UploadTimeLimit:    30,
	}
}

// RunJob runs spec from the devnet's validator on its miner.
func (d *Devnet) RunJob(ctx context.Context, spec protocol.V2JobRequest) (*validator.JobResult, error) {
	return d.Validator.RunJob(ctx, d.Miner.Hotkey(), spec)
}

// Close stops everything the devnet started and waits for it. It is safe on a devnet that
// failed half-way through Start, and safe to call twice.
func (d *Devnet) Close() error {
	d.once.Do(func() {
		d.cancel()
		if d.server != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = d.server.Shutdown(ctx)
			cancel()
		}
		if d.Miner != nil {
			_ = d.Miner.Close()
		}
		d.wg.Wait()
		var errs []error
		for _, s := range d.stores {
			errs = append(errs, s.Close())
		}
		if d.runtime != nil {
			errs = append(errs, d.runtime.Close())
		}
		if d.tempDir != "" {
			errs = append(errs, os.RemoveAll(d.tempDir))
		}
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}

// localExecutors runs each executor in this process, on the local Docker engine. A real miner
// runs them as separate processes or machines; the protocol between them is the same.
type localExecutors struct {
	ctx context.Context // outlives the request that started the executor
	wg  *sync.WaitGroup

	runtime  *docker.Runtime
	classes  *hwclass.Registry
	workDir  string
	minerURL string
	log      *slog.Logger
}

func (l *localExecutors) Start(_ context.Context, req miner.ExecutorRequest) error {
	cfg := executor.Config{
		MinerURL:  l.minerURL,
		Token:     req.Token,
		Runtime:   l.runtime,
		Classes:   l.classes,
		GPUs:      gpu.NvidiaSMI{}, // a development host's real GPUs, if any, go into the specs
		SpecsDisk: l.workDir,
		Logger:    l.log,
	}
	l.wg.Go(func() {
		if err := executor.Run(l.ctx, cfg); err != nil && l.ctx.Err() == nil {
			l.log.Warn("executor ended with an error", "job", req.JobUUID, "err", err)
		}
	})
	return nil
}

// executorID names this devnet's executors on the Docker engine. On a kept data directory it is
// derived from the directory, so a later run can find and remove what a killed one left; on a
// throwaway one it is random, so devnets side by side never touch each other's containers.
func executorID(dataDir string, throwaway bool) string {
	if throwaway {
		return "horde-dev-" + strings.ToLower(rand.Text()[:8])
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	sum := sha256.Sum256([]byte(abs))
	return "horde-dev-" + hex.EncodeToString(sum[:4])
}
