// Package devnet assembles the whole subnet in one process on the embedded default: the
// simulated chain, SQLite stores, validators, miners with their executors on the local
// Docker engine, and optionally a facilitator with a funded dev user. Every role talks to
// the others over real loopback sockets (websockets and HTTP), as separate processes would.
// `horde dev` and the end-to-end tests run on it.
package devnet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
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
	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/facilitator"
	"github.com/computehorde/horde/internal/gpu"
	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/jobimage"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/miner"
	"github.com/computehorde/horde/internal/minerweb"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/receiptsync"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/validator"
)

// NetUID is the subnet the devnet simulates (ComputeHorde's on mainnet).
const NetUID chain.NetUID = 12

// Dev hotkeys: the well-known Substrate development accounts. ValidatorURI and MinerURI
// are the first validator and miner; more validators are //Charlie, then //Validator3 …,
// more miners //Dave, //Eve, then //Miner4 ….
const (
	ValidatorURI   = "//Alice"
	MinerURI       = "//Bob"
	UserURI        = "//Ferdie"
	FacilitatorURI = "//Facilitator"
)

// AdminUser is the username of every miner's admin panel; the password is Devnet.AdminPassword.
const AdminUser = "admin"

// DefaultUserCredits is the dev user's grant: 1000 credits, in micro-credits.
const DefaultUserCredits = 1000 * 1_000_000

// raoPerTAO converts TAO to the chain's integer unit.
const raoPerTAO = 1_000_000_000

// Stakes: the first validator holds three times what each other one does, so that stake
// shares differ as on a real subnet; both are above the miners' minimum.
const (
	firstValidatorStake = 30_000 * raoPerTAO
	otherValidatorStake = 10_000 * raoPerTAO
)

// receiptsInterval is how often each validator pulls the miners' receipts pages, as
// `horde validator run` does by default.
const receiptsInterval = 10 * time.Second

// stateSaveInterval is how often each validator saves its books (and once at Close).
const stateSaveInterval = time.Minute

// readyTimeout bounds each wait of Start for the roles to find each other.
const readyTimeout = 30 * time.Second

// Config describes a devnet.
type Config struct {
	// DataDir holds the SQLite databases, the facilitator's blobs and secret, the dev
	// user's API key, the admin password and the ports of the last run; empty means a
	// temporary directory removed by Close. A kept one keeps balances, jobs, receipts and
	// (when still free) addresses across a restart.
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
	// ExecutorClass is the class the miners offer and the hello job runs on; empty means
	// always_on.test, which needs no GPU.
	ExecutorClass protocol.ExecutorClass
	// Executors is how many executors of that class the first miner offers; zero means 1.
	Executors int
	// Validators is how many validators run (//Alice, //Charlie, //Validator3 …); zero
	// means 1. The first holds three times the stake of each other one.
	Validators int
	// Miners is how many miners run (//Bob, //Dave, //Eve, //Miner4 …); zero means
	// len(MinerSpecs), or 1.
	Miners int
	// MinerSpecs gives miner i its manifest and costs; a miner without one offers
	// Executors+i executors of ExecutorClass at DefaultMinerCost(i).
	MinerSpecs []MinerSpec
	// Facilitator starts a facilitator (its SQLite database and blobs in DataDir, its API
	// and user pages on loopback) that every validator links to, with the dev user
	// (//Ferdie) granted UserCredits once per data directory and given an API key.
	Facilitator bool
	// UserCredits is the dev user's grant in micro-credits; zero means DefaultUserCredits.
	UserCredits int64
	// BenchBinary, when set, is an executable of the benchmark job (jobs/bench) that
	// the validators' benchmark image is assembled from, started as BenchEntrypoint; the
	// image is tagged BenchImage (empty means "horde-jobs/bench:dev"). BenchRate and
	// BenchSeconds size each run as validator.Config says. Benchmarks run when asked
	// (Validator.Benchmark), not in the background.
	BenchBinary     string
	BenchEntrypoint []string
	BenchImage      string
	BenchRate       float64
	BenchSeconds    int
	// Clock is the validators' time source and the miners' for the checks of the
	// validators' timestamps and their manifest rules; nil means the real clock. Scenario
	// tests compress time with a fake one. Executors, the facilitator and the Docker engine
	// keep real time.
	Clock  clock.Clock
	Logger *slog.Logger // nil means slog.Default()
}

// MinerSpec is one miner's offer: its executors per class and its cost of each class per
// executor-hour (alpha, compared with the validators' published reward rates; a class
// without a cost is always offered).
type MinerSpec struct {
	Manifest protocol.Manifest
	Costs    map[protocol.ExecutorClass]float64
	// WrongBenchAnswers makes the miner's executors cheat on the validators' benchmarks:
	// they answer without searching, so every answer is wrong (hooks_bench.go).
	WrongBenchAnswers bool
}

// DefaultMinerCost is the cost per executor-hour of miner i's class when its spec names
// none: 0.1, 0.2, 0.3 … alpha, below the lowest rate validators publish for a class of
// relative value 1 (RewardRate 1 × the smallest demand multiplier, 0.5) up to the fifth
// miner, so that every miner's manifest differs in cost and every class is offered.
func DefaultMinerCost(i int) float64 { return min(float64(i+1)/10, 0.45) }

// ValidatorNode is one running validator.
type ValidatorNode struct {
	URI       string // dev secret URI, e.g. //Alice
	Hotkey    string // SS58
	Stake     uint64 // rao
	Validator *validator.Validator
	Store     *store.DB

	metagraph *chain.MetagraphCache
	syncer    *receiptsync.Syncer
	syncMu    sync.Mutex // one receipts pull at a time
}

// MinerNode is one running miner.
type MinerNode struct {
	URI    string // dev secret URI, e.g. //Bob
	Hotkey string // SS58
	Miner  *miner.Miner
	Store  *store.DB
	// Addr is where validators (/v0.1/validator_interface/…), executors, receipts pages
	// and the admin panel (/admin/) are served.
	Addr netip.AddrPort
	Spec MinerSpec

	metagraph *chain.MetagraphCache
	// What KillMiner stops and RestartMiner starts again (hooks_miner.go): this miner's
	// executors and background loops, its server, and its admin panel's password hash.
	stopExecutors, stopLoops context.CancelFunc
	srv                      *http.Server
	adminHash                string
}

// AdminURL is the miner's admin panel login page.
func (m *MinerNode) AdminURL() string { return "http://" + m.Addr.String() + "/admin/login/" }

// User is the dev user of the facilitator.
type User struct {
	URI    string // //Ferdie
	Hotkey string // SS58
	// APIKey authenticates the user (HORDE_API_KEY); kept in the data directory, so a
	// restart on it keeps the key.
	APIKey string
}

// Devnet is a running subnet. Close it to stop everything it started.
type Devnet struct {
	cfg   Config
	log   *slog.Logger
	Chain *sim.Chain
	// Validator, Miner, MinerAddr, ValidatorStore and MinerStore are the first validator's
	// and miner's (Validators[0], Miners[0]).
	Validator      *validator.Validator
	Miner          *miner.Miner
	MinerAddr      netip.AddrPort
	ValidatorStore *store.DB
	MinerStore     *store.DB

	Validators []*ValidatorNode
	Miners     []*MinerNode

	// Facilitator, FacilitatorStore, FacilitatorURL (its API, user pages and validators'
	// channel, http://127.0.0.1:PORT) and FacilitatorHotkey are set with Config.Facilitator;
	// User is then its funded dev user.
	Facilitator       *facilitator.Facilitator
	FacilitatorStore  *store.DB
	FacilitatorURL    string
	FacilitatorHotkey string
	User              User
	// facMetagraph is the facilitator's metagraph cache: users' stakes (hooks_users.go).
	facMetagraph *chain.MetagraphCache

	// AdminPassword is the password of every miner's admin panel (user AdminUser): random,
	// kept in the data directory.
	AdminPassword string

	// ExecutorID labels every container this devnet's executors start (docker.LabelExecutor):
	// "horde-dev-" and a suffix, random or derived from a kept data dir (see executorID).
	ExecutorID string

	// Classes is the class registry every role uses: the default one, with always_on.test
	// worth 1 (0 upstream), so that the test class's work earns points, weights and a price.
	Classes *hwclass.Registry

	ports   map[string]uint16 // by role, in a kept data dir (ports.go)
	runtime *docker.Runtime
	// stopExecutors ends the executors first at Close (their containers removed), so
	// that none sees its miner go away and reports that as a failure.
	stopExecutors context.CancelFunc
	http          *http.Client // the devnet's own requests (the dev user's API key); closed by Close
	stores        []*store.DB
	servers       []*http.Server
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	tempDir       string
	closeErr      error
	once          sync.Once

	// runCtx and execCtx are the roles' and the executors' contexts, for roles started
	// while the devnet runs (AddMiner).
	runCtx, execCtx context.Context
}

// Start builds and starts a devnet. On error everything already started is stopped again.
func Start(ctx context.Context, cfg Config) (_ *Devnet, err error) {
	if cfg.JobBinary == "" {
		return nil, errors.New("devnet: config: JobBinary is required (the executable the job image is assembled from)")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	tempDir, err := cfg.makeDataDir()
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	execCtx, stopExecutors := context.WithCancel(runCtx)
	d := &Devnet{cfg: cfg, log: cfg.Logger, cancel: cancel, stopExecutors: stopExecutors, tempDir: tempDir,
		ExecutorID: executorID(cfg.DataDir, tempDir != ""), http: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}}
	d.runCtx, d.execCtx = runCtx, execCtx
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.Classes, err = hwclass.Default().WithRelativeValues(map[protocol.ExecutorClass]float64{protocol.ExecutorClassAlwaysOnTest: 1}); err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}

	// The admin password's hash costs a fifth of a second of CPU: computed while the
	// engine assembles the images.
	type hashed struct {
		hash string
		err  error
	}
	adminHash := make(chan hashed, 1)
	if d.AdminPassword, err = keptSecret(filepath.Join(cfg.DataDir, "admin-password"), 16); err != nil {
		return nil, err
	}
	go func() {
		h, err := minerweb.HashPassword(d.AdminPassword)
		adminHash <- hashed{h, err}
	}()
	// The Docker engine first: without it nothing can run, so fail before anything else.
	runtimeErr := d.startRuntime(ctx, runCtx)
	ah := <-adminHash
	if runtimeErr != nil {
		return nil, runtimeErr
	}
	if ah.err != nil {
		return nil, fmt.Errorf("devnet: admin password: %w", ah.err)
	}

	if err := d.makeNodes(); err != nil {
		return nil, err
	}
	if d.Chain, err = d.newChain(); err != nil {
		return nil, err
	}
	if err := d.openStores(ctx); err != nil {
		return nil, err
	}
	if err := d.startMetagraphCaches(ctx, runCtx); err != nil {
		return nil, err
	}
	for _, m := range d.Miners {
		if err := d.startMiner(ctx, execCtx, m, ah.hash); err != nil {
			return nil, err
		}
	}
	if err := d.announceAxons(ctx, runCtx); err != nil {
		return nil, err
	}
	if cfg.Facilitator {
		if err := d.startFacilitator(ctx, runCtx); err != nil {
			return nil, err
		}
	}
	for _, v := range d.Validators {
		if err := d.startValidator(ctx, runCtx, v); err != nil {
			return nil, err
		}
	}
	d.Validator, d.ValidatorStore = d.Validators[0].Validator, d.Validators[0].Store
	d.Miner, d.MinerStore, d.MinerAddr = d.Miners[0].Miner, d.Miners[0].Store, d.Miners[0].Addr

	// Ready means routable: every validator honours every miner's manifest, and (with a
	// facilitator) every validator is linked to it and has told it its free executors, so
	// that the first job is dispatched at once.
	if err := d.waitForManifests(ctx); err != nil {
		return nil, err
	}
	if cfg.Facilitator {
		if err := d.linkFacilitator(ctx, runCtx); err != nil {
			return nil, err
		}
	}

	if err := d.savePorts(); err != nil {
		return nil, err
	}
	d.wg.Go(func() { _ = d.Chain.Run(runCtx) })
	d.log.Info("devnet up", "validators", len(d.Validators), "miners", len(d.Miners), "facilitator", d.FacilitatorURL,
		"miner_addr", d.MinerAddr.String(), "data_dir", cfg.DataDir, "block_time", cfg.BlockTime)
	return d, nil
}

func (c *Config) setDefaults() error {
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
	if c.Validators == 0 {
		c.Validators = 1
	}
	if c.Miners == 0 {
		c.Miners = max(len(c.MinerSpecs), 1)
	}
	switch {
	case c.Validators < 0 || c.Miners < 0 || c.Executors < 0:
		return errors.New("devnet: config: Validators, Miners and Executors must not be negative")
	case len(c.MinerSpecs) > c.Miners:
		return fmt.Errorf("devnet: config: %d MinerSpecs for %d miners; give one per miner at most", len(c.MinerSpecs), c.Miners)
	}
	if c.UserCredits == 0 {
		c.UserCredits = DefaultUserCredits
	}
	if c.BenchBinary != "" && c.BenchImage == "" {
		c.BenchImage = "horde-jobs/bench:dev"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// minerSpec is miner i's offer.
func (c *Config) minerSpec(i int) MinerSpec {
	if i < len(c.MinerSpecs) {
		return c.MinerSpecs[i]
	}
	return MinerSpec{
		Manifest: protocol.Manifest{{Class: c.ExecutorClass, Count: c.Executors + i}},
		Costs:    map[protocol.ExecutorClass]float64{c.ExecutorClass: DefaultMinerCost(i)},
	}
}

// ValidatorDevURI is validator i's dev secret URI.
func ValidatorDevURI(i int) string {
	if uris := []string{ValidatorURI, "//Charlie"}; i < len(uris) {
		return uris[i]
	}
	return fmt.Sprintf("//Validator%d", i+1)
}

// MinerDevURI is miner i's dev secret URI.
func MinerDevURI(i int) string {
	if uris := []string{MinerURI, "//Dave", "//Eve"}; i < len(uris) {
		return uris[i]
	}
	return fmt.Sprintf("//Miner%d", i+1)
}

// makeDataDir creates the data directory, or a temporary one when none is configured, which
// it returns so that Close can remove it.
func (c *Config) makeDataDir() (tempDir string, err error) {
	if c.DataDir != "" {
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return "", fmt.Errorf("devnet: data dir %s: %w", c.DataDir, err)
		}
		// Job directories are bind-mounted into containers: the path must be absolute.
		if abs, err := filepath.Abs(c.DataDir); err == nil {
			c.DataDir = abs
		}
		return "", nil
	}
	if tempDir, err = os.MkdirTemp("", "horde-dev-"); err != nil {
		return "", fmt.Errorf("devnet: %w", err)
	}
	c.DataDir = tempDir
	return tempDir, nil
}

// DataDir is where the devnet keeps its state.
func (d *Devnet) DataDir() string { return d.cfg.DataDir }

// BlockTime is the simulated chain's block interval.
func (d *Devnet) BlockTime() time.Duration { return d.cfg.BlockTime }

// JobImage is the hello job's image tag.
func (d *Devnet) JobImage() string { return d.cfg.JobImage }

// workDir holds the executors' job directories.
func (d *Devnet) workDir() string { return filepath.Join(d.cfg.DataDir, "jobs") }

// makeNodes derives every validator's and miner's key, stake and offer.
func (d *Devnet) makeNodes() error {
	for i := range d.cfg.Validators {
		k, err := keys.FromURI(ValidatorDevURI(i))
		if err != nil {
			return fmt.Errorf("devnet: %w", err)
		}
		stake := uint64(otherValidatorStake)
		if i == 0 {
			stake = firstValidatorStake
		}
		d.Validators = append(d.Validators, &ValidatorNode{URI: ValidatorDevURI(i), Hotkey: k.SS58(), Stake: stake})
	}
	for i := range d.cfg.Miners {
		k, err := keys.FromURI(MinerDevURI(i))
		if err != nil {
			return fmt.Errorf("devnet: %w", err)
		}
		d.Miners = append(d.Miners, &MinerNode{URI: MinerDevURI(i), Hotkey: k.SS58(), Spec: d.cfg.minerSpec(i)})
	}
	return nil
}

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

// benchImage is the validators' benchmark image: empty (benchmarks off) without BenchBinary.
func (d *Devnet) benchImage() string {
	if d.cfg.BenchBinary == "" {
		return ""
	}
	return d.cfg.BenchImage
}

// openStores opens every role's database at once: each applies its migrations, and on a
// fresh data directory that is most of the start-up time.
func (d *Devnet) openStores(ctx context.Context) error {
	type opening struct {
		name string
		dst  **store.DB
	}
	var all []opening
	for i, v := range d.Validators {
		all = append(all, opening{numbered("validator", i) + ".db", &v.Store})
	}
	for i, m := range d.Miners {
		all = append(all, opening{numbered("miner", i) + ".db", &m.Store})
	}
	if d.cfg.Facilitator {
		all = append(all, opening{"facilitator.db", &d.FacilitatorStore})
	}
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, o := range all {
		wg.Go(func() {
			*o.dst, errs[i] = store.Open(ctx, store.Config{DSN: "sqlite:" + filepath.Join(d.cfg.DataDir, o.name), Logger: d.log})
		})
	}
	wg.Wait()
	for _, o := range all {
		if *o.dst != nil {
			d.stores = append(d.stores, *o.dst)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	return nil
}

// numbered names the i-th role's files: "validator", then "validator2", "validator3" …, so
// that a data dir of the one-validator devnet keeps working.
func numbered(role string, i int) string {
	if i == 0 {
		return role
	}
	return fmt.Sprintf("%s%d", role, i+1)
}

// startMetagraphCaches creates the roles' metagraph caches (one per role, as each runs in
// its own process in production), refreshes them on every block until runCtx ends, and
// waits for their first metagraph.
func (d *Devnet) startMetagraphCaches(ctx, runCtx context.Context) error {
	var caches []*chain.MetagraphCache
	for _, dst := range d.caches() {
		c, err := chain.NewMetagraphCache(chain.CacheConfig{Chain: d.Chain, NetUID: NetUID, Logger: d.log})
		if err != nil {
			return fmt.Errorf("devnet: %w", err)
		}
		*dst = c
		caches = append(caches, c)
		d.wg.Go(func() { _ = c.Run(runCtx) })
	}
	for _, c := range caches {
		if err := c.Wait(ctx); err != nil {
			return fmt.Errorf("devnet: %w", err)
		}
	}
	return nil
}

func (d *Devnet) caches() []**chain.MetagraphCache {
	var out []**chain.MetagraphCache
	for _, m := range d.Miners {
		out = append(out, &m.metagraph)
	}
	for _, v := range d.Validators {
		out = append(out, &v.metagraph)
	}
	return out
}

// startMiner serves the miner on a loopback port, with its admin panel and its executors
// running in this process until execCtx ends, and has it check (and announce) its axon.
func (d *Devnet) startMiner(ctx, execCtx context.Context, m *MinerNode, adminHash string) error {
	key, err := keys.FromURI(m.URI)
	if err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	lis, err := d.minerListener(m)
	if err != nil {
		return err
	}
	m.Addr = netip.MustParseAddrPort(lis.Addr().String())
	m.adminHash = adminHash
	execCtx, m.stopExecutors = context.WithCancel(execCtx) // KillMiner stops this miner's alone
	execs := &localExecutors{
		ctx: execCtx, wg: &d.wg, runtime: d.minerRuntime(m.Spec), classes: d.Classes, workDir: d.workDir(),
		minerURL: "ws://" + m.Addr.String(), log: d.log,
	}
	m.Miner, err = miner.New(miner.Config{
		Keypair: key, Chain: d.Chain, Metagraph: m.metagraph, NetUID: NetUID, Store: m.Store, Executors: execs,
		Manifest:   m.Spec.Manifest,
		ClassCosts: m.Spec.Costs,
		Classes:    d.Classes,
		// Upstream's miners serve validators with at least 1000 stake.
		MinValidatorStake: 1000 * raoPerTAO,
		Axon:              m.Addr,
		Clock:             d.cfg.Clock,
		Logger:            d.log,
	})
	if err != nil {
		lis.Close()
		return err
	}
	if n, err := m.Miner.Recover(ctx); err != nil {
		lis.Close()
		_ = m.Miner.Close()
		return err
	} else if n > 0 {
		d.log.Warn("jobs of an earlier run failed", "miner", m.URI, "jobs", n)
	}
	web, err := minerweb.New(minerweb.Config{Miner: m.Miner, Store: m.Store, Username: AdminUser, PasswordHash: adminHash, Logger: d.log})
	if err != nil {
		lis.Close()
		_ = m.Miner.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", m.Miner.Handler())
	web.Register(mux)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	d.servers = append(d.servers, srv)
	m.srv = srv
	d.wg.Go(func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("miner server stopped", "miner", m.URI, "err", err)
		}
	})
	// The miner's own check announces the axon (the simulator can serve one, unlike Pylon);
	// announceAxons produces the block that includes it.
	if st := m.Miner.CheckAxon(ctx); !st.OK {
		return fmt.Errorf("devnet: miner %s axon: %w", m.URI, st.Err)
	}
	return nil
}

// announceAxons produces the block that includes the miners' axons, has every cache read
// it, so that the validators can dial the miners at once, and then starts the miners'
// checks of their axons (every tempo) and manifests: started earlier, a check would not
// find the axon on chain yet and announce it again, inside the serving rate limit.
func (d *Devnet) announceAxons(ctx, runCtx context.Context) error {
	d.Chain.Advance(1)
	for _, c := range d.caches() {
		if err := (*c).Refresh(ctx); err != nil {
			return fmt.Errorf("devnet: %w", err)
		}
	}
	for _, m := range d.Miners {
		d.startMinerLoops(runCtx, m)
	}
	return nil
}

// startValidator starts one validator with what `horde validator run` runs beside it: the
// miner links (manifests, class values), the receipts pulls, the weights once per tempo and
// the books saved every minute. The facilitator link comes later (linkFacilitator).
func (d *Devnet) startValidator(ctx, runCtx context.Context, v *ValidatorNode) error {
	key, err := keys.FromURI(v.URI)
	if err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	v.Validator, err = validator.New(validator.Config{
		Keypair: key, Chain: d.Chain, Metagraph: v.metagraph, NetUID: NetUID, Store: v.Store,
		Classes: d.Classes, Clock: d.cfg.Clock, Logger: d.log,
		BenchImage: d.benchImage(), BenchRate: d.cfg.BenchRate, BenchSeconds: d.cfg.BenchSeconds,
	})
	if err != nil {
		return err
	}
	if n, err := v.Validator.Recover(ctx); err != nil {
		return err
	} else if n > 0 {
		d.log.Warn("jobs of an earlier run are horde_failed", "validator", v.URI, "jobs", n)
	}
	if _, err := v.Validator.LoadState(ctx); err != nil {
		return fmt.Errorf("devnet: validator %s: %w (start on a fresh data dir)", v.URI, err)
	}
	v.syncer, err = receiptsync.New(receiptsync.Config{
		Store: v.Store, Egress: egress.Policy{Allow: egress.Loopback}, Logger: d.log,
		IsValidator: func(h string) bool {
			n, ok := v.metagraph.Neuron(chain.Hotkey(h))
			return ok && n.ValidatorPermit
		},
	})
	if err != nil {
		return err
	}
	d.wg.Go(func() { v.Validator.RunStateSaver(runCtx, stateSaveInterval) })
	d.wg.Go(func() { _ = v.Validator.RunMinerLinks(runCtx) })
	d.wg.Go(func() { _ = v.Validator.RunWeights(runCtx) })
	d.wg.Go(func() {
		clock.Every(runCtx, receiptsInterval, func() {
			if err := v.pullReceipts(runCtx); err != nil && runCtx.Err() == nil {
				// Miners that are down are normal; the next pull tries again.
				d.log.Debug("receipts pull incomplete", "validator", v.URI, "err", err)
			}
		})
	})
	return nil
}

// pullReceipts pulls the active receipts pages of every miner serving an axon.
func (v *ValidatorNode) pullReceipts(ctx context.Context) error {
	v.syncMu.Lock()
	defer v.syncMu.Unlock()
	mg := v.metagraph.Latest()
	if mg == nil {
		return nil
	}
	var miners []receiptsync.Miner
	for _, n := range mg.Neurons {
		if n.Axon.IsServing() && string(n.Hotkey) != v.Hotkey {
			miners = append(miners, receiptsync.Miner{Hotkey: string(n.Hotkey), Base: "http://" + n.Axon.AddrPort().String()})
		}
	}
	_, err := v.syncer.SyncAll(ctx, miners)
	return err
}

// SyncReceipts has every validator pull every miner's receipts pages now, as each does every
// 10 seconds in the background: the miners' countersignatures then count in the scores.
func (d *Devnet) SyncReceipts(ctx context.Context) error {
	var errs []error
	for _, v := range d.Validators {
		if err := v.pullReceipts(ctx); err != nil {
			errs = append(errs, fmt.Errorf("devnet: validator %s: %w", v.URI, err))
		}
	}
	return errors.Join(errs...)
}

// waitForManifests waits until every validator honours a manifest of every miner.
func (d *Devnet) waitForManifests(ctx context.Context) error {
	return waitFor(ctx, "the validators' links to the miners", func() string {
		var missing []string
		for _, v := range d.Validators {
			heard := map[string]bool{}
			for _, mm := range v.Validator.Manifests() {
				heard[mm.Miner] = mm.Honoured != nil
			}
			for _, m := range d.Miners {
				if !heard[m.Hotkey] {
					missing = append(missing, v.URI+"→"+m.URI)
				}
			}
		}
		return strings.Join(missing, ", ")
	})
}

// waitFor polls ready, which names what is still missing ("" when nothing is), until it is
// ready, readyTimeout has passed, or ctx ends.
func waitFor(ctx context.Context, what string, ready func() string) error {
	tctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		missing := ready()
		if missing == "" {
			return nil
		}
		select {
		case <-tctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("devnet: %s are not up after %s: still missing %s (run with -v to see why)", what, readyTimeout, missing)
		case <-t.C:
		}
	}
}

// expirySweepInterval is how often a running devnet removes abandoned job containers.
const expirySweepInterval = time.Minute

func (d *Devnet) sweepExpired(ctx context.Context) {
	if err := d.runtime.SweepExpired(ctx); err != nil && ctx.Err() == nil {
		d.log.Warn("could not remove abandoned job containers", "err", err)
	}
}

// newChain is the simulated chain with every validator (with its permit and stake) and
// every miner registered.
func (d *Devnet) newChain() (*sim.Chain, error) {
	permit := true
	var neurons []sim.NeuronSpec
	for _, v := range d.Validators {
		neurons = append(neurons, sim.NeuronSpec{Hotkey: chain.Hotkey(v.Hotkey), Coldkey: chain.Coldkey("5DevColdkey" + devName(v.URI)),
			Stake: v.Stake, ValidatorPermit: &permit})
	}
	for _, m := range d.Miners {
		neurons = append(neurons, sim.NeuronSpec{Hotkey: chain.Hotkey(m.Hotkey), Coldkey: chain.Coldkey("5DevColdkey" + devName(m.URI))})
	}
	return sim.New(sim.Genesis{
		NetUID:         NetUID,
		Hyperparams:    sim.DefaultHyperparams(),
		BlockTime:      d.cfg.BlockTime,
		RelaxedAxonIPs: true, // the miners listen on loopback
		Neurons:        neurons,
	})
}

// devName is a dev URI's name: "Alice" for //Alice.
func devName(uri string) string { return strings.TrimLeft(uri, "/") }

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

// RunJob runs spec from the first validator on the first miner, directly (no facilitator).
func (d *Devnet) RunJob(ctx context.Context, spec protocol.V2JobRequest) (*validator.JobResult, error) {
	return d.Validator.RunJob(ctx, d.Miner.Hotkey(), spec)
}

// Close stops everything the devnet started and waits for it. It is safe on a devnet that
// failed half-way through Start, and safe to call twice.
func (d *Devnet) Close() error {
	d.once.Do(func() {
		// Executors first, then the miners, then the rest: each role is then stopped before
		// its peers drop their connections to it, and none logs a peer's going as a failure.
		d.stopExecutors()
		for _, m := range d.Miners {
			if m.Miner != nil {
				_ = m.Miner.Close()
			}
		}
		d.cancel()
		// Shut down together: each waits up to 5 s for its requests in progress.
		var sw sync.WaitGroup
		for _, srv := range d.servers {
			sw.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(ctx)
			})
		}
		sw.Wait()
		d.wg.Wait()
		d.http.CloseIdleConnections()
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

	runtime  executor.Runtime
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
		// Jobs through the facilitator upload their outputs to its blob store, on loopback.
		Egress: egress.Policy{Allow: egress.Loopback},
		Logger: l.log,
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

// keptSecret returns the secret kept in the file at path, creating it (mode 0600, n random
// bytes in text form) when there is none, so that a restart on the same data dir keeps it.
func keptSecret(path string, n int) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= n {
		return strings.TrimSpace(string(b)), nil
	}
	fresh := rand.Text()
	for len(fresh) < n {
		fresh += rand.Text()
	}
	fresh = fresh[:n]
	if err := os.WriteFile(path, []byte(fresh+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("devnet: %w", err)
	}
	return fresh, nil
}
