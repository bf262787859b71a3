package minerd

import (
	"context"
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/chain/backend"
	"github.com/computehorde/horde/internal/clock"
	"github.com/computehorde/horde/internal/config"
	"github.com/computehorde/horde/internal/execmgr"
	"github.com/computehorde/horde/internal/executor/docker"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/miner"
	"github.com/computehorde/horde/internal/minerweb"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

// sweepInterval is how often the miner removes job containers abandoned past their deadline.
const sweepInterval = time.Minute

// Options are what the command adds to the configuration.
type Options struct {
	Logger *slog.Logger
	// Ready is called once the miner serves, with its listening address.
	Ready func(addr netip.AddrPort)
	// ExecutorBinary is the horde executable executors run from; empty means this one.
	ExecutorBinary string
}

// Run runs the miner until ctx ends, then shuts it down cleanly: no new jobs, running jobs
// get ShutdownGrace to finish, executors still running are stopped, and the database is
// closed.
func Run(ctx context.Context, cfg Config, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	// Job directories are bind-mounted into containers: the path must be absolute.
	if abs, err := filepath.Abs(cfg.DataDir); err == nil {
		cfg.DataDir = abs
	}
	key, err := keys.LoadHotkey(cfg.Wallet.Path, cfg.Wallet.Name, cfg.Wallet.Hotkey)
	if err != nil {
		return fmt.Errorf("wallet %s hotkey %s: %w", cfg.Wallet.Name, cfg.Wallet.Hotkey, err)
	}
	log.Info("miner starting", "hotkey", key.SS58(), "config", strings.TrimSpace(config.Describe(&cfg)))
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "jobs"), 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}

	op, err := backend.Open(ctx, cfg.Chain.Settings(), backend.Options{Hotkey: chain.Hotkey(key.SS58()), Logger: log, WaitForChain: true})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	runCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer func() { stopBackground(); wg.Wait() }()

	cache, err := op.Follow(ctx, runCtx, &wg, log)
	if err != nil {
		return err
	}
	if _, ok := cache.Neuron(chain.Hotkey(key.SS58())); !ok {
		log.Warn("this hotkey is not registered on the subnet: validators will not find the miner until it is",
			"hotkey", key.SS58(), "netuid", op.NetUID)
	}

	db, err := store.Open(ctx, store.Config{DSN: cfg.DSN(), Logger: log})
	if err != nil {
		return err
	}
	defer db.Close()

	// This miner's executors label their containers and job directories with its executor
	// ID. None runs yet, so whatever carries the ID was left by an earlier run that died
	// (its executors die with it): removed now. Containers and job directories past their
	// deadline, whoever left them, are removed now and every minute.
	execID := ExecutorID(cfg.DataDir)
	sweeper, err := docker.New(ctx, docker.Options{ExecutorID: execID, WorkDir: filepath.Join(cfg.DataDir, "jobs"), Logger: log})
	if err != nil {
		return fmt.Errorf("docker engine: %w", err)
	}
	defer sweeper.Close()
	if err := sweeper.Sweep(ctx); err != nil {
		log.Warn("could not remove an earlier run's executors' containers", "err", err)
	}
	sweep := func() {
		if err := sweeper.SweepExpired(runCtx); err != nil && runCtx.Err() == nil {
			log.Warn("could not remove abandoned job containers", "err", err)
		}
	}
	sweep()
	wg.Go(func() { clock.Every(runCtx, sweepInterval, sweep) })

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	addr := netip.MustParseAddrPort(ln.Addr().String())
	var minerRef atomic.Pointer[miner.Miner] // set once the miner exists
	execs, err := newExecutors(ctx, &cfg, o, addr, execID, log, func(c protocol.Manifest) {
		if mn := minerRef.Load(); mn != nil {
			mn.SetCapacity(c)
		}
	})
	if err != nil {
		ln.Close()
		return err
	}
	var axon netip.AddrPort
	if cfg.ExternalAddress != "" {
		axon = netip.MustParseAddrPort(cfg.ExternalAddress)
	}
	m, err := miner.New(miner.Config{
		Keypair: key, Chain: op.Chain, Metagraph: cache, NetUID: op.NetUID, Store: db, Executors: execs,
		Manifest:             cfg.Manifest(),
		MinValidatorStake:    cfg.minStakeRao(),
		ExecutorStartTimeout: time.Duration(cfg.Executors.StartTimeout),
		Axon:                 axon,
		ClassCosts:           cfg.ClassCosts(),
		ManifestStatePath:    filepath.Join(cfg.DataDir, "manifest-state.json"),
		WalletName:           cfg.Wallet.Name,
		HotkeyName:           cfg.Wallet.Hotkey,
		Logger:               log,
	})
	if err != nil {
		ln.Close()
		_ = execs.Close()
		return err
	}
	if d, ok := execs.(*execmgr.Docker); ok {
		// The hosts up now, and every change later, set what admission may run.
		minerRef.Store(m)
		m.SetCapacity(d.Manifest())
	}
	if n, err := m.Recover(ctx); err != nil {
		ln.Close()
		_ = execs.Close()
		return err
	} else if n > 0 {
		log.Warn("jobs of an earlier run failed; their validators are told when they connect", "jobs", n)
	}
	web, err := minerweb.New(minerweb.Config{Miner: m, Store: db, Username: cfg.Admin.Username, PasswordHash: cfg.Admin.PasswordHash, Logger: log})
	if err != nil {
		ln.Close()
		_ = execs.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", m.Handler())
	web.Register(mux)
	// Slow or huge headers are refused before any handler (and its connection caps) runs.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10, IdleTimeout: 2 * time.Minute}
	stopStatus, err := serveStatus(runCtx, &wg, StatusSocket(cfg.DataDir), m, log)
	if err != nil {
		ln.Close()
		_ = execs.Close()
		return err
	}
	defer stopStatus()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	wg.Go(func() { _ = m.RunAxonCheck(runCtx) })
	wg.Go(func() { _ = m.RunManifest(runCtx) })
	log.Info("miner serving", "listen", addr, "manifest", cfg.Manifest(), "chain", op.HyperparamsSource)
	if o.Ready != nil {
		o.Ready(addr)
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
		serveErr = fmt.Errorf("serving on %s: %w", addr, serveErr)
	}
	return errors.Join(serveErr, shutdown(log, &cfg, srv, m, execs))
}

// shutdown stops accepting connections and jobs, gives running jobs the grace period, then
// drops the connections and stops the executors still running.
func shutdown(log *slog.Logger, cfg *Config, srv *http.Server, m *miner.Miner, execs executors) error {
	grace := time.Duration(cfg.ShutdownGrace)
	log.Info("miner stopping: no new connections or jobs", "running_jobs", m.InFlight(), "grace", grace)
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	// Shutdown closes the listener at once; the websockets it cannot see (hijacked) stay up
	// for the jobs still running.
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	if left := m.Drain(ctx); left > 0 {
		log.Warn("stopping with jobs still running; their validators will time them out", "running_jobs", left)
	}
	m.Close()
	err := <-shut
	if errors.Is(err, context.DeadlineExceeded) {
		err = nil // hijacked connections, which Close has dropped
	}
	return errors.Join(err, execs.Close())
}

// executorDialAddr is the address executors on this machine dial: the listening address, or
// 127.0.0.1 when the miner listens on every interface. Always IPv4 loopback: Go listens on
// "0.0.0.0:PORT" with a dual-stack socket that reports [::]:PORT and takes IPv4 too, while ::1
// is missing where IPv6 is off (containers, ipv6.disable=1), as a miner installed in a Debian
// container by scripts/install_miner.sh showed.
func executorDialAddr(listen netip.AddrPort) netip.AddrPort {
	if listen.Addr().IsUnspecified() {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), listen.Port())
	}
	return listen
}

// executorArgs are the `executor serve` flags the configuration implies.
func executorArgs(cfg *Config) []string {
	args := []string{"--work-dir", filepath.Join(cfg.DataDir, "jobs"), "--max-volume-bytes", strconv.FormatInt(cfg.Executors.MaxVolumeBytes, 10)}
	if len(cfg.Executors.AllowEgress) > 0 {
		args = append(args, "--allow-egress", strings.Join(cfg.Executors.AllowEgress, ","))
	}
	return args
}

// ExecutorID labels the containers and job directories of this miner's executors: derived
// from the data directory, so a restarted miner finds what its earlier run left.
func ExecutorID(dataDir string) string {
	sum := sha256.Sum256([]byte(dataDir))
	return "horde-miner-" + hex.EncodeToString(sum[:4])
}

// executors is an executor manager the miner process owns.
type executors interface {
	miner.ExecutorManager
	Close() error
}

// newExecutors builds the configured executor manager.
// onManifest receives the docker manager's manifest as its hosts come and go.
func newExecutors(ctx context.Context, cfg *Config, o Options, addr netip.AddrPort, execID string, log *slog.Logger,
	onManifest func(protocol.Manifest)) (executors, error) {
	minerURL := "ws://" + executorDialAddr(addr).String()
	args := append(executorArgs(cfg), "--executor-id", execID)
	if cfg.Executors.Manager == "process" {
		p := &execmgr.Process{
			Binary: o.ExecutorBinary, MinerURL: minerURL, Args: args, Logger: log,
			Classes: map[protocol.ExecutorClass]int{}, HostGPUs: cfg.Executors.GPUs,
		}
		for k, n := range cfg.Executors.Classes {
			p.Classes[protocol.ExecutorClass(k)] = n
		}
		// Now, so that more GPU executors than this machine has GPUs fail the start.
		if err := p.AssignGPUs(ctx); err != nil {
			return nil, fmt.Errorf("executors: %w", err)
		}
		return p, nil
	}
	if cfg.Executors.MinerURL != "" {
		minerURL = cfg.Executors.MinerURL
	}
	binary := ""
	if cfg.Executors.BuildImage {
		binary = o.ExecutorBinary
		if binary == "" {
			self, err := os.Executable()
			if err != nil {
				return nil, fmt.Errorf("executors.build_image: finding the horde executable: %w", err)
			}
			binary = self
		}
	}
	var hosts []execmgr.Host
	for _, h := range cfg.Executors.Hosts {
		eh := execmgr.Host{Name: h.Name, Endpoint: h.Endpoint, ExecutorEndpoint: h.ExecutorEndpoint, GPUs: h.GPUs, Classes: map[protocol.ExecutorClass]int{}}
		if h.TLSCA != "" || h.TLSCert != "" || h.TLSKey != "" {
			eh.TLS = &execmgr.TLSFiles{CA: h.TLSCA, Cert: h.TLSCert, Key: h.TLSKey}
		}
		for k, n := range h.Classes {
			eh.Classes[protocol.ExecutorClass(k)] = n
		}
		hosts = append(hosts, eh)
	}
	return execmgr.NewDocker(ctx, execmgr.DockerConfig{
		Hosts: hosts, Image: cfg.Executors.Image, Binary: binary, MinerURL: minerURL, ExecutorID: execID,
		// The manager passes the miner URL, executor ID and work dir itself.
		WorkDir: filepath.Join(cfg.DataDir, "jobs"), Args: executorArgs(cfg)[2:], Logger: log,
		OnManifestChange: onManifest,
	})
}
