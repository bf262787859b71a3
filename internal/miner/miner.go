// Package miner is the ComputeHorde miner role: it serves validators over the upstream
// websocket protocol, spawns one executor per accepted job through an [ExecutorManager],
// relays the executor's reports, and verifies, countersigns and stores receipts.
package miner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/clock"
	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
	"github.com/computehorde/horde/internal/wsconn"
)

// Paths of the two websocket endpoints, as upstream names them.
const (
	ValidatorPathPrefix = "/v0.1/validator_interface/"
	ExecutorPathPrefix  = "/v0.1/executor_interface/"
)

// ExecutorManager starts executors. Start must return once the executor is launched (not
// finished); the executor then connects to the miner's executor endpoint with req.Token.
// Implementations must be safe for concurrent use.
type ExecutorManager interface {
	Start(ctx context.Context, req ExecutorRequest) error
}

// MinExecutorStartTimeout is the least time an executor gets to connect when the wait
// follows its class's spin-up time: starting a process or container on a busy host takes
// a few seconds even for classes that are always on.
const MinExecutorStartTimeout = 5 * time.Second

// startTimeout is how long an executor of class may take to connect.
func (m *Miner) startTimeout(class protocol.ExecutorClass) time.Duration {
	if m.cfg.ExecutorStartTimeout > 0 {
		return m.cfg.ExecutorStartTimeout
	}
	c, err := m.cfg.Classes.Lookup(class)
	if err != nil {
		return MinExecutorStartTimeout
	}
	return max(c.SpinUp, MinExecutorStartTimeout)
}

// ExecutorKiller is implemented by executor managers that can stop the executor of a job,
// used when it does not connect in time.
type ExecutorKiller interface {
	Kill(ctx context.Context, jobUUID string) error
}

// ExecutorRequest describes the executor to launch for one job.
type ExecutorRequest struct {
	Token         string
	JobUUID       string
	ExecutorClass protocol.ExecutorClass
}

// Config holds a miner's dependencies and settings.
type Config struct {
	Keypair *keys.Keypair // the miner's hotkey; required
	Chain   chain.Chain   // writes (serve_axon); required
	// Metagraph is the process's metagraph cache over Chain, kept fresh by its owner (its
	// Run); every read of the metagraph goes through it, so no connection waits on the
	// chain. Required.
	Metagraph *chain.MetagraphCache
	NetUID    chain.NetUID      // subnet the miner serves
	Store     *store.DB         // required
	Executors ExecutorManager   // required
	Manifest  protocol.Manifest // classes offered, in announcement order; required

	// MinValidatorStake is the stake (rao) a validator needs to connect.
	MinValidatorStake uint64
	// AuthMaxAge bounds how old (or how far in the future) a validator's auth timestamp may
	// be. Zero means upstream's 10 s.
	AuthMaxAge time.Duration
	// ExecutorStartTimeout bounds how long an accepted job waits for its executor to connect;
	// zero means the class's spin-up time (Classes), at least MinExecutorStartTimeout. An
	// executor that misses it is killed and its job fails as executor_spinup_failed.
	ExecutorStartTimeout time.Duration
	// Classes gives each class's spin-up time; nil means hwclass.Default().
	Classes *hwclass.Registry

	// MaxValidatorConns caps the validator connections open at once, authenticated or not;
	// MaxValidatorConnsPerIP caps those from one remote IP address (of the TCP connection,
	// not of any forwarding header). A connection over either cap is refused before the
	// websocket upgrade with HTTP 503 and Retry-After. Zero means 256 and 16.
	MaxValidatorConns, MaxValidatorConnsPerIP int
	// ValidatorAuthTimeout bounds how long a validator may take, once connected, to send
	// its auth message; it is then told why in a GenericError and disconnected. Zero means
	// 10 s.
	ValidatorAuthTimeout time.Duration
	// ValidatorIdleTimeout disconnects (with a GenericError) an authenticated validator that
	// has sent no frame, not even a websocket ping, for this long while none of the jobs it
	// started on the connection is in flight. Zero means 5 min: upstream validators ping
	// every 20 s, and a job in flight keeps its connection open however quiet it is.
	ValidatorIdleTimeout time.Duration

	// Axon is the address validators dial, which the chain must show for this hotkey (see
	// [Miner.CheckAxon]); the zero value skips the check.
	Axon netip.AddrPort
	// WalletName and HotkeyName name the operator's Bittensor wallet in the btcli command the
	// axon check suggests; empty means btcli's own default, "default".
	WalletName, HotkeyName string

	// ClassCosts is the miner's cost of one executor of a class for one hour, in the unit
	// of the validators' published rates: alpha per executor-hour, compared with
	// V0ClassValuesMessage's RewardRate × RelativeValue × Multiplier for the class. A class
	// whose best published rate is below its cost is left out of the offered manifest (see
	// manifest.go); a class with no cost is always offered. Costs must be finite and >= 0.
	ClassCosts map[protocol.ExecutorClass]float64
	// ManifestStatePath is a small JSON file keeping the manifest's last change time, the
	// offered manifest and the validators' latest rates across restarts, so a restart is
	// not a manifest change (the 2-hour rule); empty keeps nothing, and the manifest at
	// start then counts as a change at start time.
	ManifestStatePath string
	// Clock is the time of the manifest rules (the 2-hour window, rate freshness) and the
	// time the validators' own timestamps are checked against (auth freshness, work
	// intervals); nil means the real clock.
	Clock clock.Clock

	Logger *slog.Logger // nil means slog.Default()
}

func (c *Config) validate() error {
	switch {
	case c.Keypair == nil:
		return errors.New("miner: config: Keypair is required")
	case c.Chain == nil:
		return errors.New("miner: config: Chain is required")
	case c.Metagraph == nil:
		return errors.New("miner: config: Metagraph is required (a chain.MetagraphCache over Chain, started with its Run)")
	case c.Store == nil:
		return errors.New("miner: config: Store is required")
	case c.Executors == nil:
		return errors.New("miner: config: Executors is required")
	case len(c.Manifest) == 0:
		return errors.New("miner: config: Manifest is empty; offer at least one executor class")
	}
	seen := map[protocol.ExecutorClass]bool{}
	for _, e := range c.Manifest {
		switch {
		case !e.Class.Valid():
			return fmt.Errorf("miner: config: manifest names %q, which is no executor class", e.Class)
		case seen[e.Class]:
			return fmt.Errorf("miner: config: manifest lists %s twice", e.Class)
		case e.Count < 0:
			return fmt.Errorf("miner: config: manifest count for %s is negative", e.Class)
		}
		seen[e.Class] = true
	}
	switch {
	case c.MaxValidatorConns < 0 || c.MaxValidatorConnsPerIP < 0:
		return errors.New("miner: config: validator connection caps must not be negative (zero means the default)")
	case c.ValidatorAuthTimeout < 0 || c.ValidatorIdleTimeout < 0:
		return errors.New("miner: config: validator timeouts must not be negative (zero means the default)")
	}
	for class, cost := range c.ClassCosts {
		switch {
		case !class.Valid():
			return fmt.Errorf("miner: config: class costs name %q, which is no executor class", class)
		case math.IsNaN(cost) || math.IsInf(cost, 0) || cost < 0:
			return fmt.Errorf("miner: config: cost of %s is %v; give a finite cost >= 0 per executor-hour", class, cost)
		}
	}
	if c.Axon != (netip.AddrPort{}) {
		if a := c.Axon.Addr(); !a.IsValid() || a.IsUnspecified() || c.Axon.Port() == 0 {
			return fmt.Errorf("miner: config: Axon %s is not an address validators can dial; "+
				"set the public ip:port of the miner's validator endpoint, or leave it empty to skip the axon check", c.Axon)
		}
	}
	return nil
}

// Miner serves validators and executors. Create it with [New] and mount [Miner.Handler].
type Miner struct {
	cfg     Config
	hotkey  string
	log     *slog.Logger
	replays *replayCache
	limits  *connLimiter // validator connection caps
	noisy   logLimiter   // rate-limits the logs an unauthenticated peer can cause

	mu      sync.Mutex
	byToken map[string]*job           // guarded by mu
	byUUID  map[string]*job           // guarded by mu
	conns   map[*wsconn.Conn]struct{} // live websockets; guarded by mu
	closed  bool                      // guarded by mu

	axon atomic.Pointer[AxonStatus] // the last axon check's outcome; nil before the first

	draining atomic.Bool // set by Drain: new jobs are declined

	offer *manifestManager // the offered manifest (manifest.go)

	// asked records when each validator was last declined a class (share.go): it counts as
	// asking for askWindow. Guarded by mu.
	asked  map[askKey]time.Time
	events eventLog // recent declines and failures, for Status

	// owed are the reports Recover found for each validator, sent when it connects.
	// Guarded by mu.
	owed map[string][]protocol.Message

	wg       sync.WaitGroup // executor start/timeout goroutines
	stopOnce sync.Once
	stop     chan struct{}
}

// New validates cfg and returns a miner.
func New(cfg Config) (*Miner, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.AuthMaxAge == 0 {
		cfg.AuthMaxAge = 10 * time.Second
	}
	if cfg.Classes == nil {
		cfg.Classes = hwclass.Default()
	}
	if cfg.MaxValidatorConns == 0 {
		cfg.MaxValidatorConns = defaultMaxValidatorConns
	}
	if cfg.MaxValidatorConnsPerIP == 0 {
		cfg.MaxValidatorConnsPerIP = defaultMaxValidatorConnsPerIP
	}
	if cfg.ValidatorAuthTimeout == 0 {
		cfg.ValidatorAuthTimeout = defaultValidatorAuthTimeout
	}
	if cfg.ValidatorIdleTimeout == 0 {
		cfg.ValidatorIdleTimeout = defaultValidatorIdleTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	hotkey := cfg.Keypair.Public().SS58()
	log := cfg.Logger.With("role", "miner", "hotkey", shortKey(hotkey))
	return &Miner{
		cfg:     cfg,
		hotkey:  hotkey,
		log:     log,
		replays: newReplayCache(),
		limits:  newConnLimiter(cfg.MaxValidatorConns, cfg.MaxValidatorConnsPerIP),
		byToken: make(map[string]*job),
		byUUID:  make(map[string]*job),
		conns:   make(map[*wsconn.Conn]struct{}),
		stop:    make(chan struct{}),
		offer:   newManifestManager(&cfg, log),
	}, nil
}

// Hotkey returns the miner's SS58 hotkey.
func (m *Miner) Hotkey() string { return m.hotkey }

// Handler returns the HTTP handler serving both websocket endpoints.
func (m *Miner) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ValidatorPathPrefix+"{hotkey}", m.serveValidator)
	mux.HandleFunc("GET "+ExecutorPathPrefix+"{token}", m.serveExecutor)
	mux.Handle(receiptsPagePattern, m.receiptPagesHandler())
	return mux
}

// Close stops background work and drops every live websocket; http.Server.Shutdown does not
// reach hijacked connections. Jobs whose executors are still running are not waited for.
func (m *Miner) Close() error {
	m.stopOnce.Do(func() { close(m.stop) })
	m.mu.Lock()
	m.closed = true
	for c := range m.conns {
		c.CloseNow()
	}
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}

// stopping reports whether Close has been called; errors caused by the shutdown itself are
// then not worth a warning.
func (m *Miner) stopping() bool {
	select {
	case <-m.stop:
		return true
	default:
		return false
	}
}

// accept upgrades r to a websocket and registers it so Close can drop it. It returns a nil
// conn when the upgrade failed or the miner is closed; otherwise release must be called when
// the connection's handler returns.
func (m *Miner) accept(w http.ResponseWriter, r *http.Request, peer string) (conn *wsconn.Conn, release func()) {
	conn, err := wsconn.Accept(w, r)
	if err != nil {
		m.log.Warn(peer+" websocket upgrade failed", "err", err)
		return nil, nil
	}
	return m.track(conn)
}

// track registers an accepted conn so Close can drop it; it returns a nil conn when the
// miner is closed, else the release to call when the handler returns.
func (m *Miner) track(conn *wsconn.Conn) (_ *wsconn.Conn, release func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		conn.CloseNow()
		return nil, nil
	}
	m.conns[conn] = struct{}{}
	return conn, func() {
		conn.CloseNow()
		m.mu.Lock()
		delete(m.conns, conn)
		m.mu.Unlock()
	}
}

// manifest returns the offered manifest's announcement (manifest.go); it is shared, not to
// be modified.
func (m *Miner) manifest() *protocol.V0ExecutorManifestRequest { return m.offer.offered.Load() }

// capacity returns the offered executors of class that the executor manager can run now:
// 0 for a class not offered.
func (m *Miner) capacity(class protocol.ExecutorClass) int {
	n := m.offer.offered.Load().Manifest.Count(class)
	if a := m.offer.available.Load(); a != nil {
		n = min(n, a.Manifest.Count(class))
	}
	return n
}

func shortKey(ss58 string) string {
	if len(ss58) > 10 {
		return ss58[:10]
	}
	return ss58
}

// now is the time validators' timestamps are checked against.
func (m *Miner) now() time.Time {
	if m.cfg.Clock != nil {
		return m.cfg.Clock.Now()
	}
	return time.Now()
}
